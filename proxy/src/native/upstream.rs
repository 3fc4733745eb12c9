//! Connections to the upstream ClickHouse native port.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Opens a connection to `addr` (HOST:PORT) within `timeout`, with Nagle's algorithm off: the protocol is
/// request/response with small packets, and Nagle plus delayed ACKs would stall each one.
pub async fn connect(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(timeout)),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
