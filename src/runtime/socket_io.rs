//! The TCP socket as tungstenite sees it. Reads come from the socket. Writes go to the socket
//! during the handshake; after it, the connection's writer takes the socket's write side (it
//! encodes the data frames itself) and what tungstenite still writes (pongs, a close reply) is
//! diverted into the connection's outbox, so that frames never interleave.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::outbox::Outbox;

pub struct SocketIo {
    read: OwnedReadHalf,
    write: WriteSide,
}

enum WriteSide {
    Socket(OwnedWriteHalf),
    Diverted(Arc<Outbox>),
}

impl SocketIo {
    pub fn new(stream: TcpStream) -> SocketIo {
        let (read, write) = stream.into_split();
        SocketIo { read, write: WriteSide::Socket(write) }
    }

    /// After the handshake: hands over the socket's write side; tungstenite's writes go to
    /// `outbox` from now on. `None` if it was handed over already.
    pub fn divert_writes(&mut self, outbox: Arc<Outbox>) -> Option<OwnedWriteHalf> {
        match std::mem::replace(&mut self.write, WriteSide::Diverted(outbox)) {
            WriteSide::Socket(write) => Some(write),
            WriteSide::Diverted(_) => None,
        }
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.write {
            WriteSide::Socket(write) => Pin::new(write).poll_write(cx, buf),
            WriteSide::Diverted(outbox) => {
                outbox.push_control(buf);
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.write {
            WriteSide::Socket(write) => Pin::new(write).poll_flush(cx),
            WriteSide::Diverted(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.write {
            WriteSide::Socket(write) => Pin::new(write).poll_shutdown(cx),
            // The writer shuts the socket down when it is done.
            WriteSide::Diverted(_) => Poll::Ready(Ok(())),
        }
    }
}
