//! A client connection moved to the runtime of the thread that serves it.
//!
//! Pingora accepts connections on one thread and hands each to a random thread of its
//! runtime (one runtime per thread by default). The connection's readiness still comes from
//! the accepting thread's runtime, which then has to wake the serving thread for every
//! request: about half the connections cost two threads a wake-up per event. Registered
//! again from the serving thread (a duplicate of its descriptor; the accepted one is
//! closed), the connection wakes only the thread that serves it. Its writes are
//! [`Coalesced`].

use std::os::fd::{AsRawFd, BorrowedFd};

use pingora::protocols::l4::stream::Stream as TcpConnection;

use crate::coalesce::Coalesced;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};

/// `stream`, driven from now on by the current thread's runtime; as it was if it is not a
/// plain TCP connection, if that runtime is shared by all threads (nothing to gain), or if
/// the descriptor cannot be duplicated.
pub fn rehome(stream: Stream) -> Stream {
    let per_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
    if !per_thread {
        return stream;
    }
    let Some(tcp) = stream.as_any().downcast_ref::<TcpConnection>() else {
        return stream;
    };
    // SAFETY: the descriptor belongs to `stream`, alive for the whole borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) };
    let Ok(duplicate) = borrowed.try_clone_to_owned() else {
        return stream;
    };
    // The duplicate shares the socket, its options and its non-blocking mode.
    let Ok(tokio_tcp) = tokio::net::TcpStream::from_std(std::net::TcpStream::from(duplicate))
    else {
        return stream;
    };
    // Deregisters the accepted descriptor from the accepting runtime and closes it; the
    // socket stays open through the duplicate.
    drop(stream);
    let mut moved = TcpConnection::from(tokio_tcp);
    let fd = moved.as_raw_fd();
    moved.set_socket_digest(SocketDigest::from_raw_fd(fd));
    Box::new(Coalesced::new(moved))
}
