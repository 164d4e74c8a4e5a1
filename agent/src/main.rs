//! `mirrord-agent`: runs in (or next to) the target and serves one session's clients.
//!
//! It serves file operations inside the target's root, the target's environment, DNS as the
//! target resolves, and outgoing TCP/UDP from the target's network namespace. Clients must open
//! with a hello carrying the session token (given in `$MIRRORD_AGENT_TOKEN`, never on the command
//! line). The agent exits a second after its session's client (the intproxy) left, after
//! `--communication-timeout` seconds without any client, or when the target process is gone.
//!
//! On start it prints one line to stdout, `MIRRORD_AGENT_LISTENING=ADDR`, for whoever started it;
//! logs go to stderr.

mod dns;

mod env;
mod fd_server;
mod files;
mod incoming;
/// The link's writer, one file shared with the intproxy.
#[path = "../../crates/intproxy/src/link_writer.rs"]
mod link_writer;
mod namespace;
mod outgoing_fd;
mod session;
mod undo;

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
    #[arg(long, conflicts_with = "container_id")]
    target_pid: Option<u32>,
    /// The target container's ID (as Kubernetes reports it, with or without the `containerd://`
    /// prefix): the agent finds the container's main process itself by scanning `/proc/*/cgroup`,
    /// which works for containerd, CRI-O and Docker alike. Needs the host PID namespace (or the
    /// target's, for an ephemeral container).
    #[arg(long)]
    container_id: Option<String>,
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
    /// When a port starts being stolen, close the target's connections already on it, so that
    /// their clients reconnect into the redirect (`agent.flush_connections`).
    #[arg(long)]
    flush_connections: bool,
    /// How redirect rules are made: `nftables` (an owned table, removed by the kernel with the
    /// agent; kernel 5.12 or newer), `iptables` (a chain of the agent's, removed by a watchdog
    /// process), or `auto` (nftables, else iptables).
    #[arg(long, value_enum, default_value_t = RedirectBackend::Auto)]
    redirect_backend: RedirectBackend,
    /// Also hand open files to layers on this machine over the abstract unix socket NAME (see
    /// `mirrord_protocol::fd_channel`); for agents started next to the user's process.
    #[arg(long, value_name = "NAME")]
    fd_socket: Option<String>,
    /// Write logs as JSON lines (`agent.json_log`).
    #[arg(long)]
    json_log: bool,
    /// When the session ends, delete this copy of the target (`copy_target`) and restore the
    /// workload of `--scaled-down`, through the API server with the pod's service account (see
    /// `undo.rs`).
    #[arg(long, value_name = "NAMESPACE/POD")]
    copy_pod: Option<String>,
    /// The workload the session scaled down for the copy (`deployment/NAME`, `statefulset/NAME`).
    #[arg(long, value_name = "KIND/NAME", requires = "copy_pod")]
    scaled_down: Option<String>,
    /// The session's id, as in the workload's `mirrord.dev/scaled-down-by` annotation.
    #[arg(long, requires = "copy_pod")]
    session_id: Option<String>,
    /// Internal: run as the iptables watchdog of chain CHAIN (see `incoming::iptables`).
    #[arg(long, value_name = "CHAIN", hide = true, requires = "watch_netns")]
    iptables_watchdog: Option<String>,
    /// Internal: the network namespace the watchdog's chain is in.
    #[arg(long, hide = true)]
    watch_netns: Option<std::path::PathBuf>,
}

/// See `Args::redirect_backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RedirectBackend {
    Auto,
    Nftables,
    Iptables,
}

/// The agent's redirect rules, in whichever backend made them.
#[derive(Debug)]
pub(crate) enum Redirects {
    Nftables(incoming::nft::RedirectTable),
    Iptables(incoming::iptables::IptablesRedirects),
}

impl Redirects {
    fn name(&self) -> &str {
        match self {
            Redirects::Nftables(table) => table.name(),
            Redirects::Iptables(chain) => chain.name(),
        }
    }

    fn redirected_by_another(&mut self, port: u16) -> std::io::Result<Option<String>> {
        match self {
            Redirects::Nftables(table) => table.redirected_by_another(port),
            Redirects::Iptables(chain) => chain.redirected_by_another(port),
        }
    }

    fn redirect(&mut self, port: u16, to_port: u16) -> std::io::Result<()> {
        match self {
            Redirects::Nftables(table) => table.redirect(port, to_port),
            Redirects::Iptables(chain) => chain.redirect(port, to_port),
        }
    }

    fn remove(&mut self, port: u16) -> std::io::Result<()> {
        match self {
            Redirects::Nftables(table) => table.remove(port),
            Redirects::Iptables(chain) => chain.remove(port),
        }
    }
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
    pub(crate) redirects: tokio::sync::Mutex<Option<Redirects>>,
    /// Which backend makes them.
    pub(crate) redirect_backend: RedirectBackend,
    /// Ports some session of this agent has subscribed.
    pub(crate) subscribed_ports: std::sync::Mutex<std::collections::HashSet<u16>>,
    /// Close the target's existing connections on a port when stealing it starts.
    pub(crate) flush_connections: bool,
    /// Stolen connections waiting for a process on this machine to take them (see
    /// [`incoming::handover`]); `None` without a descriptor socket.
    pub(crate) handover: Option<Arc<incoming::handover::Handover>>,
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
            let created = self.create_redirects().await?;
            tracing::info!(table = created.name(), "redirect table created");
            *redirects = Some(created);
        }
        let table = redirects.as_mut().expect("created above");
        match table.redirected_by_another(port) {
            Ok(Some(other)) => {
                return Err(RemoteError::new(
                    mirrord_protocol::ErrorCode::AddrInUse,
                    format!(
                        "port {port} of the target is already taken by another mirrord session \
                         (its agent's redirect rules are {other}); two sessions cannot mirror or \
                         steal the same port"
                    ),
                ));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(port, %error, "cannot list the namespace's nftables chains");
            }
        }
        table.redirect(port, to_port).map_err(|e| {
            RemoteError::new(
                mirrord_protocol::ErrorCode::from(&e),
                format!("cannot redirect port {port}: {e}"),
            )
        })
    }

    /// The redirect rules' home: an owned nftables table, else (or when asked) an iptables chain.
    async fn create_redirects(&self) -> mirrord_protocol::RemoteResult<Redirects> {
        use mirrord_protocol::RemoteError;
        let nftables = async {
            let socket = self.namespace.netfilter_socket().await?;
            incoming::nft::RedirectTable::create(
                socket,
                format!("{}{}", incoming::nft::TABLE_PREFIX, std::process::id()),
            )
        };
        let nft_error = match self.redirect_backend {
            RedirectBackend::Iptables => None,
            RedirectBackend::Nftables | RedirectBackend::Auto => match nftables.await {
                Ok(table) => return Ok(Redirects::Nftables(table)),
                Err(error) if self.redirect_backend == RedirectBackend::Nftables => {
                    return Err(RemoteError::new(
                        mirrord_protocol::ErrorCode::from(&error),
                        format!("cannot create the redirect table (nftables): {error}"),
                    ));
                }
                Err(error) => {
                    tracing::info!(%error, "no owned nftables table here; using iptables");
                    Some(error)
                }
            },
        };
        let netns = std::path::PathBuf::from(format!(
            "/proc/{}/ns/net",
            self.target_pid.unwrap_or_else(std::process::id)
        ));
        tokio::task::spawn_blocking(move || incoming::iptables::IptablesRedirects::create(netns))
            .await
            .map_err(|error| RemoteError::new(mirrord_protocol::ErrorCode::Io, error.to_string()))?
            .map(Redirects::Iptables)
            .map_err(|error| {
                let message = match nft_error {
                    Some(nft) => {
                        format!("cannot make redirect rules: nftables: {nft}; iptables: {error}")
                    }
                    None => format!("cannot make redirect rules (iptables): {error}"),
                };
                RemoteError::new(mirrord_protocol::ErrorCode::from(&error), message)
            })
    }

    /// A warning for the user when nothing of the target listens on `port` (the subscription
    /// still goes ahead: the service may start later). `None` also when it cannot be told.
    pub(crate) async fn unlistened_warning(&self, port: u16) -> Option<String> {
        let socket = self.namespace.sock_diag_socket().await.ok()?;
        let listens =
            tokio::task::spawn_blocking(move || incoming::flush::listens_on(&socket, port))
                .await
                .ok()?
                .ok()?;
        (!listens).then(|| {
            format!(
                "nothing in the target listens on port {port}; its traffic is received anyway, \
                 but check the port (`port_mapping` maps a local port to the target's)"
            )
        })
    }

    /// Closes the target's connections already on `port` (see [`incoming::flush`]); failures
    /// are logged, since the subscription itself works.
    pub(crate) async fn flush_connections(&self, port: u16) {
        let socket = match self.namespace.sock_diag_socket().await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(port, %error, "cannot close the target's existing connections");
                return;
            }
        };
        let flushed = tokio::task::spawn_blocking(move || {
            incoming::flush::destroy_connections(&socket, port)
        })
        .await;
        match flushed {
            Ok(Ok(count)) => {
                tracing::info!(port, count, "closed the target's existing connections");
            }
            Ok(Err(error)) => {
                tracing::warn!(port, %error, "cannot close the target's existing connections");
            }
            Err(error) => tracing::warn!(port, %error, "closing connections panicked"),
        }
    }

    /// Removes the redirect of `port`.
    pub(crate) fn unredirect(&self, port: u16) {
        if let Ok(mut redirects) = self.redirects.try_lock()
            && let Some(table) = redirects.as_mut()
            && let Err(error) = table.remove(port)
        {
            tracing::warn!(port, %error, "cannot remove a redirect");
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    mirrord_logging::init(
        &mirrord_logging::LogOptions::new(&args.log_level, "info").json(args.json_log),
        mirrord_logging::LogTarget::Stderr,
    );
    if let (Some(chain), Some(netns)) = (&args.iptables_watchdog, &args.watch_netns) {
        return match incoming::iptables::watchdog(chain, netns) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, chain, "the iptables watchdog cannot start");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let undo = match undo::CopyUndo::from_args(
        args.copy_pod.as_deref(),
        args.scaled_down.as_deref(),
        args.session_id.as_deref(),
    ) {
        Ok(undo) => undo,
        Err(message) => {
            tracing::error!("{message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = run(args);
    // However the session ended, a copied target is undone before the agent leaves.
    if let Some(undo) = undo {
        undo.run();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> Result<(), String> {
    if let Some(container_id) = &args.container_id {
        let pid = container::find_main_pid(std::path::Path::new("/proc"), container_id)?;
        tracing::info!(container_id = %container_id, pid, "found the target container's process");
        args.target_pid = Some(pid);
    }
    let token_text = std::env::var("MIRRORD_AGENT_TOKEN")
        .map_err(|_| "MIRRORD_AGENT_TOKEN is not set".to_owned())?;
    let token: SessionToken = token_text
        .trim()
        .parse()
        .map_err(|error| format!("MIRRORD_AGENT_TOKEN is not a session token: {error}"))?;
    if let Some(pid) = args.target_pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(format!("target process {pid} does not exist"));
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
        redirect_backend: args.redirect_backend,
        subscribed_ports: std::sync::Mutex::new(std::collections::HashSet::new()),
        flush_connections: args.flush_connections,
        handover: args
            .fd_socket
            .is_some()
            .then(|| Arc::new(incoming::handover::Handover::default())),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    if let Some(name) = &args.fd_socket {
        let _entered = runtime.enter();
        fd_server::start(name, Arc::clone(&context))
            .map_err(|error| format!("cannot listen on the abstract socket @{name}: {error}"))?;
    }
    // An agent that undoes a copied target also ends its session on SIGTERM (its pod deleted),
    // so that the undo still runs.
    let undoes_copy = args.copy_pod.is_some();
    runtime.block_on(async {
        tokio::select! {
            served = serve(
                args.listen,
                Duration::from_secs(args.communication_timeout),
                context,
            ) => served,
            () = undo::terminated(undoes_copy) => Ok(()),
        }
    })
}

/// Threads for blocking work (file operations, descriptor clients); more work waits for one.
const MAX_BLOCKING_THREADS: usize = 32;
/// Connections that may be saying hello at once (each has `session::HELLO_DEADLINE` to finish).
const MAX_HANDSHAKES: usize = 32;
/// How long the agent stays after the session's last client left.
const SESSION_END_GRACE: Duration = Duration::from_secs(1);

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
    // Clients that were welcomed and are still connected; once the session's client has been and
    // gone, the session is over and the agent leaves (after `SESSION_END_GRACE`).
    let welcomed = Arc::new(AtomicUsize::new(0));
    let ever_welcomed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut session_over_since: Option<Instant> = None;
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let mut idle_since = Some(Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            // A connection is accepted only when fewer than `MAX_HANDSHAKES` are still saying hello;
            // the others wait in the listen backlog.
            accepted = async {
                let permit = Arc::clone(&handshakes).acquire_owned().await.ok()?;
                Some((listener.accept().await, permit))
            } => {
                let Some((Ok((stream, _)), permit)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                clients.fetch_add(1, Ordering::SeqCst);
                idle_since = None;
                let (clients, context) = (Arc::clone(&clients), Arc::clone(&context));
                let (welcomed, ever_welcomed) = (Arc::clone(&welcomed), Arc::clone(&ever_welcomed));
                tokio::spawn(async move {
                    let counted = Arc::clone(&welcomed);
                    let ended = session::serve(stream, context, permit, move || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        ever_welcomed.store(true, Ordering::SeqCst);
                    })
                    .await;
                    if ended == session::Ended::Served {
                        welcomed.fetch_sub(1, Ordering::SeqCst);
                    }
                    clients.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ = tick.tick() => {
                if let Some(pid) = context.target_pid
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        tracing::info!(pid, "the target process is gone; exiting");
                        return Ok(());
                    }
                if ever_welcomed.load(Ordering::SeqCst) && welcomed.load(Ordering::SeqCst) == 0 {
                    let since = *session_over_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= SESSION_END_GRACE {
                        tracing::info!("the session's client left; exiting");
                        return Ok(());
                    }
                } else {
                    session_over_since = None;
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

/// Finding a container's main process from its ID: every runtime (containerd, CRI-O, Docker, on
/// cgroup v1 or v2) puts the container's processes in a cgroup whose path contains the ID, and
/// `/proc/PID/cgroup` shows that path (relative, inside a cgroup namespace, but still with the ID).
mod container {
    use std::path::Path;

    /// The ID without a `runtime://` prefix, if it looks like a container ID (hex, 12+ chars).
    fn bare_id(container_id: &str) -> Result<&str, String> {
        let id = container_id
            .split_once("://")
            .map_or(container_id, |(_, id)| id)
            .trim();
        if id.len() < 12 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{container_id}` is not a container ID (expected hex, at least 12 characters, optionally prefixed like `containerd://`)"
            ));
        }
        Ok(id)
    }

    /// The parent pid from `/proc/PID/stat` (the command name may hold spaces and parentheses).
    fn parent_pid(proc_root: &Path, pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(1)?.parse().ok()
    }

    /// The container's main process: of the processes whose cgroup path holds the ID, the one
    /// whose parent is not in the container (its init); the lowest pid on a tie.
    pub(crate) fn find_main_pid(proc_root: &Path, container_id: &str) -> Result<u32, String> {
        let id = bare_id(container_id)?;
        let entries = std::fs::read_dir(proc_root)
            .map_err(|e| format!("cannot read {}: {e}", proc_root.display()))?;
        let mut members: Vec<u32> = entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).is_ok_and(
                    |cgroups| {
                        cgroups
                            .lines()
                            .filter_map(|line| line.splitn(3, ':').nth(2))
                            .any(|path| path.contains(id))
                    },
                )
            })
            .collect();
        members.sort_unstable();
        let main = members
            .iter()
            .copied()
            .find(|pid| parent_pid(proc_root, *pid).is_none_or(|parent| !members.contains(&parent)))
            .or_else(|| members.first().copied());
        main.ok_or_else(|| {
            format!(
                "no process of container {id} in {}/*/cgroup; the agent must run in the host's PID namespace (or share the target container's)",
                proc_root.display()
            )
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const CONTAINERD_ID: &str =
            "4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3";
        const CRIO_ID: &str = "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e";
        const DOCKER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

        /// A fake `/proc` with `(pid, ppid, cgroup file)` entries, in a directory of its own
        /// for each test (`label`), since tests run in parallel.
        fn fake_proc(label: &str, processes: &[(u32, u32, &str)]) -> std::path::PathBuf {
            let root = std::env::temp_dir()
                .join(format!("mirrord-agent-proc-{}-{label}", std::process::id(),));
            let _ = std::fs::remove_dir_all(&root);
            for (pid, ppid, cgroup) in processes {
                let dir = root.join(pid.to_string());
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("cgroup"), cgroup).unwrap();
                std::fs::write(
                    dir.join("stat"),
                    format!("{pid} (my (odd) app) S {ppid} 1 1 0 -1\n"),
                )
                .unwrap();
            }
            std::fs::create_dir_all(root.join("self")).unwrap();
            root
        }

        #[test]
        fn finds_containerd_cri_o_and_docker_containers() {
            let proc_root = fake_proc(
                "runtimes",
                &[
                    (1, 0, "0::/init.scope\n"),
                    (
                        4100,
                        4090,
                        &format!(
                            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c.slice/cri-containerd-{CONTAINERD_ID}.scope\n"
                        ),
                    ),
                    (
                        4101,
                        4100,
                        &format!(
                            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c.slice/cri-containerd-{CONTAINERD_ID}.scope\n"
                        ),
                    ),
                    (
                        5200,
                        5190,
                        &format!(
                            "12:pids:/kubepods/besteffort/pod7a8b/crio-{CRIO_ID}\n11:memory:/kubepods/besteffort/pod7a8b/crio-{CRIO_ID}\n0::/\n"
                        ),
                    ),
                    (
                        6300,
                        6290,
                        &format!("0::/system.slice/docker-{DOCKER_ID}.scope\n"),
                    ),
                    (7400, 1, "0::/user.slice\n"),
                ],
            );
            let check = |id: &str, expected: u32| {
                assert_eq!(find_main_pid(&proc_root, id).unwrap(), expected, "{id}");
            };
            check(CONTAINERD_ID, 4100);
            check(&format!("containerd://{CONTAINERD_ID}"), 4100);
            check(&format!("cri-o://{CRIO_ID}"), 5200);
            check(&format!("docker://{DOCKER_ID}"), 6300);
            check(&DOCKER_ID[..12], 6300);
            let missing = find_main_pid(&proc_root, "containerd://ffffffffffffffff").unwrap_err();
            assert!(
                missing.contains("no process of container ffffffffffffffff"),
                "{missing}"
            );
            let _ = std::fs::remove_dir_all(&proc_root);
        }

        /// Inside a cgroup namespace (an ephemeral container) other containers' paths are
        /// relative (`/../…`) but still carry the ID.
        #[test]
        fn finds_containers_from_inside_a_cgroup_namespace() {
            let proc_root = fake_proc(
                "cgroupns",
                &[
                    (
                        1,
                        0,
                        &format!("0::/../cri-containerd-{CONTAINERD_ID}.scope\n"),
                    ),
                    (40, 0, "0::/\n"),
                ],
            );
            assert_eq!(find_main_pid(&proc_root, CONTAINERD_ID).unwrap(), 1);
            let _ = std::fs::remove_dir_all(&proc_root);
        }

        #[test]
        fn rejects_what_is_not_a_container_id() {
            let error = find_main_pid(Path::new("/proc"), "containerd://").unwrap_err();
            assert!(error.contains("is not a container ID"), "{error}");
            assert!(find_main_pid(Path::new("/proc"), "api").is_err());
        }
    }
}
