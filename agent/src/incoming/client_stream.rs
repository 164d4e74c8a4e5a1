//! A connection delivered to the client, as a byte stream the agent itself reads and writes:
//! what is written becomes `IncomingData` messages, what the client sends is read back. The HTTP
//! filter speaks HTTP/1.1 to the local app over it, with no in-memory pipe and no relay task in
//! between (each request and response would otherwise cross two more task wake-ups and copies).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use mirrord_protocol::agent_channel::AgentToClient;
use mirrord_protocol::ids::ConnectionId;
use mirrord_protocol::outgoing::{ConnectionClosed, ConnectionData};
use mirrord_protocol::{Bytes, MAX_IO_CHUNK};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::{ClientData, IncomingSink};

/// A message on its way into the session's (bounded) outbox: `true` once queued.
type Sending = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Connection `connection_id` of the client, as a stream. Dropping it closes the connection (the
/// client is told, and the connection id is forgotten).
pub(crate) struct ClientStream<S: IncomingSink> {
    connection_id: ConnectionId,
    sink: Arc<S>,
    from_client: mpsc::UnboundedReceiver<ClientData>,
    /// What the client sent and has not been read yet.
    unread: Vec<u8>,
    /// Where the unread bytes of `unread` start.
    read_from: usize,
    /// The client sent a shutdown: reading gives end-of-file from now on.
    client_done: bool,
    /// The last message written, until it is in the outbox (a writer is slowed by a slow client).
    sending: Option<Sending>,
    /// The client is gone: writing fails.
    gone: bool,
    shut_down: bool,
}

impl<S: IncomingSink> ClientStream<S> {
    pub(crate) fn new(
        connection_id: ConnectionId,
        sink: Arc<S>,
        from_client: mpsc::UnboundedReceiver<ClientData>,
    ) -> Self {
        ClientStream {
            connection_id,
            sink,
            from_client,
            unread: Vec::new(),
            read_from: 0,
            client_done: false,
            sending: None,
            gone: false,
            shut_down: false,
        }
    }

    /// Starts queueing `message` for the client.
    fn start_sending(&mut self, message: AgentToClient) {
        let sink = Arc::clone(&self.sink);
        self.sending = Some(Box::pin(async move { sink.send(message).await }));
    }

    /// Waits until the message being queued is in the outbox.
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(sending) = &mut self.sending {
            let queued = ready!(sending.as_mut().poll(cx));
            self.sending = None;
            if !queued {
                self.gone = true;
            }
        }
        if self.gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: IncomingSink> AsyncRead for ClientStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.read_from == this.unread.len() {
            if this.client_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.from_client.poll_recv(cx)) {
                Some(ClientData::Data(bytes)) => {
                    this.unread = bytes;
                    this.read_from = 0;
                }
                Some(ClientData::Shutdown) => this.client_done = true,
                None => return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            }
        }
        let available = &this.unread[this.read_from..];
        let count = available.len().min(buf.remaining());
        buf.put_slice(&available[..count]);
        this.read_from += count;
        Poll::Ready(Ok(()))
    }
}

impl<S: IncomingSink> AsyncWrite for ClientStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        if this.shut_down {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Taken at once; the next write (or flush) waits until this one is queued.
        let count = buf.len().min(MAX_IO_CHUNK as usize);
        this.start_sending(AgentToClient::IncomingData(ConnectionData {
            connection_id: this.connection_id,
            data: Bytes::from(&buf[..count]),
        }));
        Poll::Ready(Ok(count))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_sent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        if !this.shut_down {
            this.shut_down = true;
            let connection_id = this.connection_id;
            this.start_sending(AgentToClient::IncomingShutdown { connection_id });
            ready!(this.poll_sent(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: IncomingSink> Drop for ClientStream<S> {
    fn drop(&mut self) {
        let connection_id = self.connection_id;
        let sink = Arc::clone(&self.sink);
        // What was written is queued before the close, in order.
        let sending = self.sending.take();
        sink.forget(connection_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(sending) = sending {
                    sending.await;
                }
                let closed = ConnectionClosed {
                    connection_id,
                    error: None,
                };
                sink.send(AgentToClient::IncomingClosed(closed)).await;
            });
        }
    }
}
