//! A buffered socket of the native protocol: bytes arrive into a buffer that framing reads from, and
//! complete packets leave from it. One per side of a proxied connection.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::ClientStream;

/// Smallest read buffer growth: large reads keep the syscall count low when a stream of blocks arrives.
const READ_CHUNK: usize = 256 * 1024;

/// One side of a proxied connection: the client (plain or TLS) or ClickHouse.
pub struct Peer<S = TcpStream> {
    pub stream: S,
    /// Received bytes not yet forwarded or consumed.
    pub buf: BytesMut,
    /// Buffer length below which framing the first packet again is pointless (it said it needs that many).
    pub needed: usize,
}

/// The client's side of a session.
pub type ClientPeer = Peer<ClientStream>;

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub fn new(stream: S) -> Peer<S> {
        Peer {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            needed: 0,
        }
    }

    /// Reads whatever the socket has; `Ok(0)` means the peer closed its side.
    ///
    /// # Cancellation safety
    /// Safe to use in `select!`: bytes that were read are in `buf` even if the future is dropped afterwards.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        let want = READ_CHUNK.max(self.needed.saturating_sub(self.buf.len()));
        self.buf.reserve(want);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Whether framing can make progress with the bytes buffered now.
    pub fn ready(&self) -> bool {
        !self.buf.is_empty() && self.buf.len() >= self.needed
    }

    /// Drops `n` bytes from the front of the buffer (the framing hint moves with the bytes).
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.needed = self.needed.saturating_sub(n);
    }

    /// Gives a large buffer back once what it held has left: a big packet's allocation (its pages touched) would
    /// otherwise stay with the connection for as long as it lives.
    pub fn compact(&mut self) {
        if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() <= READ_CHUNK {
            let mut fresh = BytesMut::with_capacity(READ_CHUNK);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
    }

    /// Writes bytes to this peer.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

/// Writes the first `n` buffered bytes of `from` to `to` and drops them from `from`.
pub async fn forward<A, B>(from: &mut Peer<A>, to: &mut Peer<B>, n: usize) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    if n == 0 {
        return Ok(());
    }
    to.stream.write_all(&from.buf[..n]).await?;
    from.consume(n);
    Ok(())
}
