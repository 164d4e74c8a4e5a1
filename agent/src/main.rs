//! `mirrord-agent`: runs in (or next to) the target and serves one session's clients.
//!
//! It serves file operations inside the target's root, the target's environment, DNS as the
//! target resolves, and outgoing TCP/UDP from the target's network namespace. Clients must open
//! with a hello carrying the session token (given in `$MIRRORD_AGENT_TOKEN`, never on the command
//! line). The agent exits after `--communication-timeout` seconds without clients, or when the
//! target process is gone.
//!
//! On start it prints one line to stdout, `MIRRORD_AGENT_LISTENING=ADDR`, for whoever started it;
//! logs go to stderr.

mod dns;
mod env;
mod files;
mod incoming;
mod namespace;
mod session;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mirrord_protocol::token::SessionToken;

/// Serves a mirrord session from inside a target's namespaces.
#[derive(Debug, Parser)]
#[command(name = "mirrord-agent", version)]
struct Args {
    /// The target process; omit for a targetless session (this machine's own namespaces).
    #[arg(long)]
    target_pid: Option<u32>,
    /// Where to listen for clients.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seconds to stay alive with no client.
    #[arg(long, default_value_t = 30)]
    communication_timeout: u64,
    /// Seconds to wait for one DNS answer.
    #[arg(long, default_value_t = 1)]
    dns_timeout: u64,
    /// DNS attempts per query.
    #[arg(long, default_value_t = 1)]
    dns_attempts: u32,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// What every client session shares.
#[derive(Debug)]
pub(crate) struct AgentContext {
    pub(crate) token: SessionToken,
    pub(crate) target_pid: Option<u32>,
    pub(crate) root: files::TargetRoot,
    pub(crate) namespace: namespace::NamespaceWorker,
    pub(crate) resolver: dns::ResolverConfig,
    pub(crate) dns_limits: dns::DnsLimits,
    /// The redirect rules of every session, created with the first subscription.
    pub(crate) redirects: tokio::sync::Mutex<Option<incoming::nft::RedirectTable>>,
    /// Ports some session of this agent has subscribed.
    pub(crate) subscribed_ports: std::sync::Mutex<std::collections::HashSet<u16>>,
}

impl AgentContext {
    /// Marks `port` as subscribed; `false` if it already was.
    pub(crate) fn claim_port(&self, port: u16) -> bool {
        self.subscribed_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
    }

    /// Frees `port`.
    pub(crate) fn release_port(&self, port: u16) {
        self.subscribed_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&port);
    }

    /// Redirects the target's `port` to the agent's listener on `to_port`.
    pub(crate) async fn redirect(
        &self,
        port: u16,
        to_port: u16,
    ) -> mirrord_protocol::RemoteResult<()> {
        use mirrord_protocol::RemoteError;
        let mut redirects = self.redirects.lock().await;
        if redirects.is_none() {
            let socket = self
                .namespace
                .netfilter_socket()
                .await
                .map_err(|e| RemoteError::from(&e))?;
            let table = incoming::nft::RedirectTable::create(
                socket,
                format!("mirrord_agent_{}", std::process::id()),
            )
            .map_err(|e| {
                RemoteError::new(
                    mirrord_protocol::ErrorCode::from(&e),
                    format!("cannot create the redirect table (nftables): {e}"),
                )
            })?;
            tracing::info!(table = table.name(), "redirect table created");
            *redirects = Some(table);
        }
        let table = redirects.as_mut().expect("created above");
        table.redirect(port, to_port).map_err(|e| {
            RemoteError::new(
                mirrord_protocol::ErrorCode::from(&e),
                format!("cannot redirect port {port}: {e}"),
            )
        })
    }

    /// Removes the redirect of `port`.
    pub(crate) fn unredirect(&self, port: u16) {
        if let Ok(mut redirects) = self.redirects.try_lock() {
            if let Some(table) = redirects.as_mut() {
                if let Err(error) = table.remove(port) {
                    tracing::warn!(port, %error, "cannot remove a redirect");
                }
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let token_text = std::env::var("MIRRORD_AGENT_TOKEN")
        .map_err(|_| "MIRRORD_AGENT_TOKEN is not set".to_owned())?;
    let token: SessionToken = token_text
        .trim()
        .parse()
        .map_err(|error| format!("MIRRORD_AGENT_TOKEN is not a session token: {error}"))?;
    if let Some(pid) = args.target_pid {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("target process {pid} does not exist"));
        }
    }
    let root = files::TargetRoot::open(args.target_pid)
        .map_err(|error| format!("cannot open the target's root: {error}"))?;
    let namespace = namespace::NamespaceWorker::start(args.target_pid).map_err(|error| {
        let source = std::error::Error::source(&error)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        format!("{error}{source}")
    })?;
    let context = Arc::new(AgentContext {
        token,
        target_pid: args.target_pid,
        root,
        namespace,
        resolver: dns::ResolverConfig::load(args.target_pid),
        dns_limits: dns::DnsLimits {
            timeout: Duration::from_secs(args.dns_timeout.max(1)),
            attempts: args.dns_attempts.max(1),
        },
        redirects: tokio::sync::Mutex::new(None),
        subscribed_ports: std::sync::Mutex::new(std::collections::HashSet::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(serve(
        args.listen,
        Duration::from_secs(args.communication_timeout),
        context,
    ))
}

async fn serve(
    listen: SocketAddr,
    idle_limit: Duration,
    context: Arc<AgentContext>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    announce(address).map_err(|error| format!("cannot write to stdout: {error}"))?;
    tracing::info!(%address, target_pid = ?context.target_pid, "agent ready");

    let clients = Arc::new(AtomicUsize::new(0));
    let mut idle_since = Some(Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                clients.fetch_add(1, Ordering::SeqCst);
                idle_since = None;
                let (clients, context) = (Arc::clone(&clients), Arc::clone(&context));
                tokio::spawn(async move {
                    session::serve(stream, context).await;
                    clients.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ = tick.tick() => {
                if let Some(pid) = context.target_pid {
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        tracing::info!(pid, "the target process is gone; exiting");
                        return Ok(());
                    }
                }
                if clients.load(Ordering::SeqCst) == 0 {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= idle_limit {
                        tracing::info!(seconds = idle_limit.as_secs(), "no client; exiting");
                        return Ok(());
                    }
                } else {
                    idle_since = None;
                }
            }
        }
    }
}

#[allow(
    clippy::print_stdout,
    reason = "the one line the agent's starter reads"
)]
fn announce(address: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "MIRRORD_AGENT_LISTENING={address}")?;
    stdout.flush()
}
