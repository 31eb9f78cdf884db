//! A client connection whose small writes wait for the next one, so that a response head
//! and its body leave in one `writev`: one segment for the client to wake up for, one
//! system call for the gateway. Pingora writes the head, then the body; its own write
//! buffer (1 460 bytes by default) holds the head but sends a body of more than that
//! apart.
//!
//! Held bytes leave with the next write, on `flush` or on shutdown. Pingora flushes at the
//! end of every response, and after each chunk of a chunked or close-delimited body. Only
//! a piece of a body of declared length, shorter than 4 KiB and followed by a pause of the
//! node, waits for the next piece (Pingora's own buffer holds up to 1 460 bytes that way).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream as TcpConnection;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Writes shorter than this are held (a response head is a few hundred bytes).
const HOLD: usize = 4096;

/// A TCP connection with small writes held for the next one.
#[derive(Debug)]
pub struct Coalesced {
    inner: TcpConnection,
    held: Vec<u8>,
}

impl Coalesced {
    pub fn new(inner: TcpConnection) -> Self {
        Coalesced {
            inner,
            held: Vec::new(),
        }
    }

    /// Sends what is held.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.held.len() + buf.len() < HOLD {
                this.held.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            if this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
            let both = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let of_held = n.min(this.held.len());
            this.held.drain(..of_held);
            if n > of_held {
                return Poll::Ready(Ok(n - of_held));
            }
            // Only held bytes left: the rest of them, with `buf`, on the next turn.
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[async_trait]
impl Shutdown for Coalesced {
    async fn shutdown(&mut self) {
        // Held bytes first (Pingora's own shutdown would skip them).
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for Coalesced {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Coalesced {}

#[async_trait]
impl Peek for Coalesced {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl GetTimingDigest for Coalesced {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Coalesced {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Coalesced {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connected pair: the coalescing side and a plain reader.
    async fn pair() -> (Coalesced, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Coalesced::new(TcpConnection::from(client)), server)
    }

    /// What has arrived within a short wait (nothing if nothing came).
    async fn arrived(reader: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut buf = vec![0; 1 << 20];
        match tokio::time::timeout(Duration::from_millis(100), reader.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_head_waits_for_its_body_and_leaves_with_it() {
        let (mut writer, mut reader) = pair().await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n";
        let body = vec![b'x'; 10_000];
        writer.write_all(head).await.unwrap();
        assert!(arrived(&mut reader).await.is_empty(), "the head left alone");
        writer.write_all(&body).await.unwrap();
        writer.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < head.len() + body.len() {
            let more = arrived(&mut reader).await;
            assert!(
                !more.is_empty(),
                "{} bytes of {}",
                got.len(),
                head.len() + body.len()
            );
            got.extend(more);
        }
        assert_eq!(&got[..head.len()], head);
        assert_eq!(&got[head.len()..], &body[..]);
    }

    #[tokio::test]
    async fn held_bytes_leave_on_flush_and_on_shutdown() {
        let (mut writer, mut reader) = pair().await;
        writer.write_all(b"small").await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(arrived(&mut reader).await, b"small");
        writer.write_all(b"last").await.unwrap();
        Shutdown::shutdown(&mut writer).await;
        assert_eq!(arrived(&mut reader).await, b"last");
        assert!(
            arrived(&mut reader).await.is_empty(),
            "closed after the bytes"
        );
    }

    #[tokio::test]
    async fn large_writes_go_through_in_order() {
        let (mut writer, mut reader) = pair().await;
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut sent = Vec::new();
        for i in 0..50u8 {
            // Sizes on both sides of the hold, so held and direct writes alternate.
            let len = if i % 3 == 0 {
                10
            } else {
                3000 + 97 * i as usize
            };
            let chunk = vec![i; len];
            writer.write_all(&chunk).await.unwrap();
            sent.extend(chunk);
        }
        Shutdown::shutdown(&mut writer).await;
        assert_eq!(reading.await.unwrap(), sent);
    }
}
