//! Connections to the upstream ClickHouse native port.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::protocol::exception::decode_exception;
use super::protocol::hello::{ClientHello, ServerHello};
use super::protocol::packets::{ClientCode, ServerCode};
use super::protocol::wire::Reader;
use super::protocol::{DecodeError, Revision};

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

/// The revision the health probe announces: old enough for every server, new enough for a Ping.
const PROBE_REVISION: Revision = Revision(54405);

/// Largest answer the probe reads (a server Hello is well under a kilobyte).
const PROBE_MAX_ANSWER: usize = 64 << 10;

/// Whether a ClickHouse answers on its native port at `addr`: connects, says Hello as user `default`, and
/// sends a Ping after the server's Hello. An Exception in answer to the Hello (that user may not log in)
/// counts as an answer too: it comes from a live server. The caller bounds the time.
pub async fn probe(addr: &str, connect_timeout: Duration) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("native port {addr}: {what}: {e}");
    let mut stream = connect(addr, connect_timeout)
        .await
        .map_err(|e| fail("cannot connect", &e))?;
    let hello = ClientHello {
        client_name: "aurora-proxy health probe".into(),
        version_major: 1,
        version_minor: 0,
        revision: PROBE_REVISION,
        database: Vec::new(),
        user: b"default".to_vec(),
        password: Vec::new(),
        interserver_tail: Vec::new(),
    };
    stream
        .write_all(&hello.encode_with_revision(PROBE_REVISION))
        .await
        .map_err(|e| fail("cannot send Hello", &e))?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match first_packet(&buf) {
            Ok(Answer::Hello(len)) => {
                buf.advance(len);
                break;
            }
            Ok(Answer::Exception) => return Ok(()),
            Err(DecodeError::Incomplete { .. }) => {}
            Err(e) => return Err(fail("unexpected answer to Hello", &e)),
        }
        read_some(&mut stream, &mut buf)
            .await
            .map_err(|e| fail("no Hello", &e))?;
    }
    stream
        .write_all(&[ClientCode::Ping as u8])
        .await
        .map_err(|e| fail("cannot send Ping", &e))?;
    loop {
        if let Some(&code) = buf.first() {
            return if u64::from(code) == ServerCode::Pong as u64 {
                Ok(())
            } else {
                Err(format!("native port {addr}: packet {code} in answer to Ping"))
            };
        }
        read_some(&mut stream, &mut buf)
            .await
            .map_err(|e| fail("no Pong", &e))?;
    }
}

enum Answer {
    /// A server Hello of this length.
    Hello(usize),
    Exception,
}

fn first_packet(buf: &[u8]) -> Result<Answer, DecodeError> {
    let mut r = Reader::new(buf);
    match ServerCode::from_u64(r.varuint()?) {
        Some(ServerCode::Hello) => Ok(Answer::Hello(ServerHello::decode(buf, PROBE_REVISION)?.1)),
        Some(ServerCode::Exception) => {
            decode_exception(&mut r)?;
            Ok(Answer::Exception)
        }
        _ => Err(DecodeError::malformed("not a Hello or an Exception")),
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    if buf.len() >= PROBE_MAX_ANSWER {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "answer too long"));
    }
    buf.reserve(4096);
    match stream.read_buf(buf).await? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")),
        _ => Ok(()),
    }
}
