//! The internal proxy (intproxy): one per session. It holds the session's only agent connection
//! and serves every layer instance — the user process and each child it forks or execs — over
//! loopback, so the layer stays small and never relays bytes itself.
//!
//! - Requests from layers get fresh ids on the agent connection and their responses are routed
//!   back by id, so any number of processes can share one agent.
//! - Outgoing connections: the intproxy opens the remote side through the agent and a loopback
//!   socket of its own that the layer connects the user's socket to; it relays the bytes. Unix
//!   stream connections to the target's sockets get a unix socket of its own instead.
//! - Files read from start to end are read ahead: the next chunk is on its way while the process
//!   consumes this one (see `read_ahead`).
//! - When the agent connection is lost, every pending and later remote request fails at once with
//!   `AgentLost`, and every layer is told.
//! - It exits when no layer has been connected for `idle_timeout` (or none came within
//!   `start_idle_timeout`).

#![forbid(unsafe_code)]

mod agent_link;
mod incoming;
mod layer_session;
mod link_writer;
mod pump;
mod read_ahead;
mod relay;
mod unix_relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mirrord_protocol::token::SessionToken;

pub use agent_link::{AgentLink, ConnectError};

/// Layer connections that may be saying hello at once (each has `layer_session::HELLO_DEADLINE`).
const MAX_HANDSHAKES: usize = 32;

/// How to run an intproxy.
#[derive(Debug, Clone)]
pub struct IntproxyOptions {
    /// The agent's address.
    pub agent_addr: SocketAddr,
    /// The session token, checked for layers and sent to the agent.
    pub token: SessionToken,
    /// Where to listen for layers (normally `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// How long to wait for the first layer.
    pub start_idle_timeout: Duration,
    /// How long to stay after the last layer left.
    pub idle_timeout: Duration,
}

/// Errors that stop the intproxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum IntproxyError {
    /// The agent could not be reached or refused us.
    #[error(transparent)]
    Agent(#[from] ConnectError),
    /// The layer listener could not be opened.
    #[error("cannot listen for layers on {address}")]
    Listen {
        /// Where.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running intproxy's listener, before it serves.
#[derive(Debug)]
pub struct Intproxy {
    listener: tokio::net::TcpListener,
    link: Arc<AgentLink>,
    options: IntproxyOptions,
    incoming: Arc<incoming::IncomingRegistry>,
    files: Arc<read_ahead::Files>,
    unix_relays: Arc<unix_relay::UnixRelays>,
}

impl Intproxy {
    /// Connects to the agent and opens the layer listener.
    pub async fn start(options: IntproxyOptions) -> Result<Intproxy, IntproxyError> {
        let link = AgentLink::connect(options.agent_addr, options.token.clone()).await?;
        Intproxy::start_with_link(options, link).await
    }

    /// Like [`Intproxy::start`], over an agent link opened some other way (e.g.
    /// [`AgentLink::connect_stream`] through a Kubernetes port-forward); `options.agent_addr` is
    /// not used.
    pub async fn start_with_link(
        options: IntproxyOptions,
        link: Arc<AgentLink>,
    ) -> Result<Intproxy, IntproxyError> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| IntproxyError::Listen {
                address: options.listen,
                source,
            })?;
        let incoming = Arc::new(incoming::IncomingRegistry::default());
        if let Some(deliveries) = link.take_incoming() {
            tokio::spawn(incoming::dispatch(
                Arc::clone(&link),
                Arc::clone(&incoming),
                deliveries,
            ));
        }
        let files = Arc::new(read_ahead::Files::new(Arc::clone(&link)));
        Ok(Intproxy {
            listener,
            link,
            files,
            options,
            incoming,
            unix_relays: Arc::default(),
        })
    }

    /// The address layers connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves layers until the idle timeouts say the session is over.
    pub async fn serve(self) {
        let layers = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let mut ever_connected = false;
        let mut idle_since = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                // A connection is accepted only when fewer than `MAX_HANDSHAKES` are still saying
                // hello; the others wait in the listen backlog.
                accepted = async {
                    let permit = Arc::clone(&handshakes).acquire_owned().await.ok()?;
                    Some((self.listener.accept().await, permit))
                } => {
                    let Some((Ok((stream, _)), permit)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    ever_connected = true;
                    layers.fetch_add(1, Ordering::SeqCst);
                    let (layers, link, token) = (Arc::clone(&layers), Arc::clone(&self.link), self.options.token.clone());
                    let (incoming, files) = (Arc::clone(&self.incoming), Arc::clone(&self.files));
                    let unix_relays = Arc::clone(&self.unix_relays);
                    tokio::spawn(async move {
                        layer_session::serve(stream, link, incoming, files, unix_relays, token, permit)
                            .await;
                        layers.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                _ = tick.tick() => {
                    if layers.load(Ordering::SeqCst) > 0 {
                        idle_since = Instant::now();
                        continue;
                    }
                    let limit = if ever_connected { self.options.idle_timeout } else { self.options.start_idle_timeout };
                    if idle_since.elapsed() >= limit {
                        tracing::info!(ever_connected, "no layer connected; the session is over");
                        return;
                    }
                }
            }
        }
    }
}
