//! Moving a relayed connection's bytes (TCP or unix stream) in both directions at once.
//!
//! The two directions always run independently: writing to a peer that is slow to read must never
//! stop us from reading what it sends (two echo servers facing each other would deadlock
//! otherwise).

use std::pin::pin;

use mirrord_protocol::Bytes;
use mirrord_protocol::agent_channel::ClientToAgent;
use mirrord_protocol::frame::MAX_IO_CHUNK;
use mirrord_protocol::ids::ConnectionId;
use mirrord_protocol::outgoing::ConnectionData;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::agent_link::{AgentLink, RelayEvent};

/// Which of the agent's connection streams a relayed connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// A connection the user process made (TCP or unix stream): `Outgoing*` messages.
    Outgoing,
    /// A connection the target received: `Incoming*` messages.
    Incoming,
}

/// Relays one connection between the user's socket (`reader`/`writer`) and the agent's
/// `connection_id` until both directions end ([`both`]); closing it is the caller's part.
pub(crate) async fn connection(
    link: &AgentLink,
    stream: Stream,
    connection_id: ConnectionId,
    (reader, writer): (impl AsyncRead + Unpin, impl AsyncWrite + Unpin),
    events: mpsc::UnboundedReceiver<RelayEvent>,
) {
    let data = |bytes: Vec<u8>| {
        let data = ConnectionData {
            connection_id,
            data: Bytes::from(bytes),
        };
        match stream {
            Stream::Outgoing => ClientToAgent::OutgoingData(data),
            Stream::Incoming => ClientToAgent::IncomingData(data),
        }
    };
    let shutdown = match stream {
        Stream::Outgoing => ClientToAgent::OutgoingShutdown { connection_id },
        Stream::Incoming => ClientToAgent::IncomingShutdown { connection_id },
    };
    both(
        user_to_agent(reader, link, data, shutdown),
        agent_to_user(events, writer),
    )
    .await;
}

/// Reads the user's socket until it ends, sending each chunk to the agent (`data`), then tells the
/// agent no more is coming (`shutdown`).
pub(crate) async fn user_to_agent(
    mut reader: impl AsyncRead + Unpin,
    link: &AgentLink,
    data: impl Fn(Vec<u8>) -> ClientToAgent,
    shutdown: ClientToAgent,
) {
    let mut buffer = vec![0u8; (MAX_IO_CHUNK as usize).min(256 * 1024)];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(length) => link.send(data(buffer[..length].to_vec())).await,
        }
    }
    link.send(shutdown).await;
}

/// How the agent's direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentSide {
    /// The remote peer sent everything (EOF); the user may still be sending.
    Finished,
    /// The connection is gone (closed by the agent, lost, or the user stopped reading).
    Gone,
}

/// Writes what the agent sends to the user's socket until the remote peer's EOF or a close.
pub(crate) async fn agent_to_user(
    mut events: mpsc::UnboundedReceiver<RelayEvent>,
    mut writer: impl AsyncWrite + Unpin,
) -> AgentSide {
    while let Some(event) = events.recv().await {
        match event {
            RelayEvent::Data(data) => {
                if writer.write_all(&data).await.is_err() {
                    return AgentSide::Gone;
                }
            }
            RelayEvent::Shutdown => {
                let _ = writer.shutdown().await;
                return AgentSide::Finished;
            }
            RelayEvent::Closed(error) => {
                if let Some(error) = error {
                    tracing::debug!(%error, "the agent closed a relayed connection");
                }
                return AgentSide::Gone;
            }
            RelayEvent::Datagram(_) => {}
        }
    }
    AgentSide::Gone
}

/// Runs both directions until both have finished, or until the agent's side is gone (the user's
/// side is then cut).
pub(crate) async fn both(
    user_to_agent: impl Future<Output = ()>,
    agent_to_user: impl Future<Output = AgentSide>,
) {
    let mut user_to_agent = pin!(user_to_agent);
    let mut agent_to_user = pin!(agent_to_user);
    tokio::select! {
        side = &mut agent_to_user => {
            if side == AgentSide::Finished {
                user_to_agent.await;
            }
        }
        () = &mut user_to_agent => {
            agent_to_user.await;
        }
    }
}
