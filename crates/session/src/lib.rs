//! Starting a session for a resolved config: the target's process, the agent next to it, the
//! intproxy, and the environment the user process runs with. Shared by `mirrord exec` and the IDE
//! sidecar. Both run inside the `mirrord` binary, which this crate re-runs as `mirrord intproxy`
//! and `mirrord sandbox serve`.

#![forbid(unsafe_code)]

pub mod logs;

pub use kube::{ListedTargets, list_targets};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mirrord_config::ResolvedConfig;
use mirrord_config::resolved::Target;
use mirrord_protocol::env::{EnvVar, GetEnvRequest};
use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::ids::RequestId;
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
use mirrord_protocol::token::SessionToken;
use mirrord_protocol::version::ProtocolVersion;

/// Environment variables the layer reads (see `layer/`).
pub const LAYER_INTPROXY_ADDR_ENV: &str = "MIRRORD_LAYER_INTPROXY_ADDR";
pub const LAYER_TOKEN_ENV: &str = "MIRRORD_LAYER_SESSION_TOKEN";
/// The name of the agent's abstract unix socket that hands out file descriptors (local targets).
pub const LAYER_AGENT_FDS_ENV: &str = "MIRRORD_LAYER_AGENT_FDS";
pub const RESOLVED_CONFIG_ENV: &str = "MIRRORD_RESOLVED_CONFIG";
/// The environment variable that carries the session token to `mirrord intproxy`.
pub const INTPROXY_TOKEN_ENV: &str = "MIRRORD_SESSION_TOKEN";

/// Why a session could not start. Each message says what to do where the user can act.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "local targets need root: the agent enters the target's namespaces (run mirrord with sudo)"
    )]
    NotRoot,
    #[error("target process {0} does not exist")]
    NoSuchProcess(u32),
    #[error(
        "Kubernetes targets are not supported yet ({0}); use a local target `pid/PID` or `sandbox/NAME`"
    )]
    KubernetesTarget(String),
    /// A Kubernetes operation failed; the message ends with what the user can do, if anything.
    #[error("{0}")]
    Kubernetes(String),
    #[error("cannot start sandbox `{name}`: {message}")]
    Sandbox { name: String, message: String },
    #[error("cannot find {what} (looked at {looked_at}); set ${env} to its path")]
    MissingArtifact {
        what: &'static str,
        looked_at: String,
        env: &'static str,
    },
    #[error("cannot start the {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} could not start: {message} (its log: {log})")]
    HelperFailed {
        what: &'static str,
        message: String,
        log: String,
    },
    #[error("the {what} did not start within {seconds} s; see its log at {log}")]
    Startup {
        what: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("cannot read the target's environment: {0}")]
    Environment(String),
    /// The session's log directory is unsafe or cannot be made.
    #[error(transparent)]
    Logs(#[from] logs::LogError),
    #[error("cannot read the env file {path}: {source}")]
    EnvFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    pub token: SessionToken,
    pub intproxy_addr: SocketAddr,
    /// The agent's abstract unix socket for passing file descriptors, when the agent runs on this
    /// machine (see `mirrord_protocol::fd_channel`).
    pub agent_fd_socket: Option<String>,
    pub target_pid: Option<u32>,
    pub agent_log: PathBuf,
    pub intproxy_log: PathBuf,
    /// The agent and intproxy processes, to notice when they exit or to end the session early.
    pub processes: SessionProcesses,
}

/// The helper processes of a session (children of the process that started it).
#[derive(Debug, Default)]
pub struct SessionProcesses {
    agent: Option<Child>,
    intproxy: Option<Child>,
}

/// Which helper processes of a session are still running (see [`Session::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub agent_running: bool,
    pub intproxy_running: bool,
}

impl Session {
    /// The agent's process id, while this session holds it.
    pub fn agent_pid(&self) -> Option<u32> {
        self.processes.agent.as_ref().map(Child::id)
    }

    /// The intproxy's process id, while this session holds it.
    pub fn intproxy_pid(&self) -> Option<u32> {
        self.processes.intproxy.as_ref().map(Child::id)
    }

    /// Checks (without blocking) which helpers still run, reaping those that exited.
    pub fn poll(&mut self) -> SessionStatus {
        SessionStatus {
            agent_running: still_running(&mut self.processes.agent),
            intproxy_running: still_running(&mut self.processes.intproxy),
        }
    }

    /// Ends the session now: kills the intproxy, then the agent, and reaps both. Layers still
    /// connected see the agent lost; the agent's redirect rules go with it.
    pub fn end(&mut self) {
        for child in [&mut self.processes.intproxy, &mut self.processes.agent] {
            if let Some(mut process) = child.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

fn still_running(child: &mut Option<Child>) -> bool {
    match child.as_mut().map(Child::try_wait) {
        Some(Ok(None)) => true,
        Some(_) => {
            *child = None;
            false
        }
        None => false,
    }
}

/// Starts the agent and the intproxy for `config`, reporting each step to `progress`.
pub fn start(
    config: &ResolvedConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Session, SessionError> {
    let target_pid = match &config.target {
        Target::Targetless => None,
        Target::Kube { .. } => return kube::start(config, progress),
        Target::Pid { pid } => {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(SessionError::NoSuchProcess(*pid));
            }
            Some(*pid)
        }
        Target::Sandbox { name } => {
            ensure_root()?;
            progress(&format!("starting sandbox {name}"));
            let helper = vec![
                current_exe()?.into_os_string(),
                "sandbox".into(),
                "serve".into(),
            ];
            let info = mirrord_sandbox::Sandbox::up(name, &mirrord_sandbox::UpOptions::new(helper))
                .map_err(|error| SessionError::Sandbox {
                    name: name.clone(),
                    message: error.to_string(),
                })?;
            Some(info.target_pid)
        }
    };
    ensure_root()?;
    let token = new_token()?;
    let logs = logs::SessionLogs::create()?;

    progress("starting the agent");
    let (agent_log, agent_log_file) = logs.create_file("agent.log")?;
    // Listed in /proc/net/unix for everyone: named without any part of the token.
    let fd_socket = format!(
        "mirrord-agent-fds-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let agent_exe = artifact(
        "mirrord-agent",
        "the agent binary (mirrord-agent)",
        "MIRRORD_AGENT_BIN",
    )?;
    let mut agent = Command::new(agent_exe);
    if let Some(pid) = target_pid {
        agent.arg("--target-pid").arg(pid.to_string());
    }
    agent
        .arg("--communication-timeout")
        .arg(config.agent.communication_timeout.to_string())
        .args(
            config
                .agent
                .flush_connections
                .then_some("--flush-connections"),
        )
        .arg("--dns-timeout")
        .arg(config.agent.dns_timeout.to_string())
        .arg("--dns-attempts")
        .arg(config.agent.dns_attempts.to_string())
        .arg("--log-level")
        .arg(&config.agent.log_level)
        .args(config.agent.json_log.then_some("--json-log"))
        .arg("--fd-socket")
        .arg(&fd_socket)
        .env("MIRRORD_AGENT_TOKEN", token.to_string());
    let startup = Duration::from_secs(config.agent.startup_timeout.max(1));
    let (agent_addr, mut agent_process): (SocketAddr, Child) = spawn_and_read(
        agent,
        "agent",
        "MIRRORD_AGENT_LISTENING=",
        (agent_log_file, &agent_log),
        startup,
    )?;

    progress("starting the internal proxy");
    let (intproxy_log, intproxy_log_file) = intproxy_log(config, &logs)?;
    let mut intproxy = Command::new(current_exe()?);
    intproxy
        .arg("intproxy")
        .arg("--agent")
        .arg(agent_addr.to_string())
        .arg("--start-idle-timeout")
        .arg(config.internal_proxy.start_idle_timeout.to_string())
        .arg("--idle-timeout")
        .arg(config.internal_proxy.idle_timeout.to_string())
        .arg("--log-level")
        .arg(&config.internal_proxy.log_level)
        .args(config.internal_proxy.json_log.then_some("--json-log"))
        .env(INTPROXY_TOKEN_ENV, token.to_string());
    let (intproxy_addr, intproxy_process): (SocketAddr, Child) = match spawn_and_read(
        intproxy,
        "internal proxy",
        "MIRRORD_INTPROXY_LISTENING=",
        (intproxy_log_file, &intproxy_log),
        Duration::from_secs(15),
    ) {
        Ok(started) => started,
        Err(error) => {
            let _ = agent_process.kill();
            let _ = agent_process.wait();
            return Err(error);
        }
    };
    Ok(Session {
        token,
        intproxy_addr,
        agent_fd_socket: Some(fd_socket),
        target_pid,
        agent_log,
        intproxy_log,
        processes: SessionProcesses {
            agent: Some(agent_process),
            intproxy: Some(intproxy_process),
        },
    })
}

/// The intproxy's log: `internal_proxy.log_destination` when set (a file, or a directory ending in
/// `/` that gets a new file named after the session), else `intproxy.log` in the session's
/// log directory.
fn intproxy_log(
    config: &ResolvedConfig,
    logs: &logs::SessionLogs,
) -> Result<(PathBuf, std::fs::File), SessionError> {
    let path = match &config.internal_proxy.log_destination {
        Some(destination) if destination.ends_with('/') => {
            PathBuf::from(destination).join(format!("intproxy-{}.log", logs.session_name()))
        }
        Some(destination) => PathBuf::from(destination),
        None => return Ok(logs.create_file("intproxy.log")?),
    };
    let file = logs::open_destination(&path)?;
    Ok((path, file))
}

fn ensure_root() -> Result<(), SessionError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse::<u32>().ok());
    if effective_uid == Some(0) {
        Ok(())
    } else {
        Err(SessionError::NotRoot)
    }
}

fn new_token() -> Result<SessionToken, SessionError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|source| SessionError::Spawn {
            what: "session (no random source)",
            source,
        })?;
    Ok(SessionToken::from_bytes(bytes))
}

fn current_exe() -> Result<PathBuf, SessionError> {
    std::env::current_exe().map_err(|source| SessionError::Spawn {
        what: "session (cannot find the mirrord binary)",
        source,
    })
}

/// A file shipped beside the `mirrord` binary (or named by `env`).
pub fn artifact(
    file_name: &str,
    what: &'static str,
    env: &'static str,
) -> Result<PathBuf, SessionError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let beside = current_exe()?.with_file_name(file_name);
    if beside.exists() {
        return Ok(beside);
    }
    Err(SessionError::MissingArtifact {
        what,
        looked_at: beside.display().to_string(),
        env,
    })
}

/// Spawns a helper in its own process group (so the user's Ctrl-C goes to the user's process
/// only), logs its stderr to `log` (the file and its path), and waits for the `prefix`-line it
/// prints when ready.
fn spawn_and_read<T: std::str::FromStr>(
    mut command: Command,
    what: &'static str,
    prefix: &str,
    (log_file, log): (std::fs::File, &Path),
    timeout: Duration,
) -> Result<(T, Child), SessionError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child: Child = command
        .spawn()
        .map_err(|source| SessionError::Spawn { what, source })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (line_tx, line_rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
            match line.strip_prefix(&prefix) {
                Some(value) => Some(Ok(value.to_owned())),
                None => line
                    .strip_prefix(HELPER_FAILED_PREFIX)
                    .map(|message| Err(message.to_owned())),
            }
        });
        let _ = line_tx.send(found);
        // Keep draining so the helper never blocks on a full pipe.
        for _ in lines {}
    });
    let startup = || SessionError::Startup {
        what,
        seconds: timeout.as_secs(),
        log: log.display().to_string(),
    };
    match line_rx.recv_timeout(timeout) {
        Ok(Some(Err(message))) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(SessionError::HelperFailed {
                what,
                message,
                log: log.display().to_string(),
            })
        }
        Ok(Some(Ok(value))) => match value.trim().parse() {
            Ok(value) => Ok((value, child)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(startup())
            }
        },
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(startup())
        }
    }
}

/// What a helper (the intproxy) prints on stdout, followed by the reason on one line, when it
/// cannot start; `mirrord exec` shows the reason instead of waiting for its time limit.
pub const HELPER_FAILED_PREFIX: &str = "MIRRORD_FAILED=";

/// Asks the session for the target's environment, as a layer would.
pub fn fetch_env(session: &Session, request: GetEnvRequest) -> Result<Vec<EnvVar>, SessionError> {
    let error = |message: String| SessionError::Environment(message);
    let mut stream = TcpStream::connect_timeout(&session.intproxy_addr, Duration::from_secs(5))
        .map_err(|e| error(e.to_string()))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let hello = Hello::new(
        session.token.clone(),
        ClientKind::Layer {
            pid: std::process::id(),
            parent_pid: None,
        },
    );
    write_frame(&mut stream, &hello).map_err(|e| error(e.to_string()))?;
    let reply: HelloReply = read_frame(&mut stream).map_err(|e| error(e.to_string()))?;
    reply
        .check(ProtocolVersion::CURRENT)
        .map_err(|e| error(e.to_string()))?;
    let request = LayerToProxy::Request {
        id: RequestId(1),
        request: LayerRequest::GetEnv(request),
    };
    write_frame(&mut stream, &request).map_err(|e| error(e.to_string()))?;
    loop {
        match read_frame::<ProxyToLayer, _>(&mut stream).map_err(|e| error(e.to_string()))? {
            ProxyToLayer::Response {
                result: Ok(LayerResponse::Env(vars)),
                ..
            } => return Ok(vars),
            ProxyToLayer::Response {
                result: Err(remote),
                ..
            } => return Err(error(remote.to_string())),
            ProxyToLayer::Response { .. } => return Err(error("unexpected answer".to_owned())),
            ProxyToLayer::AgentLost { message } => return Err(error(message)),
            ProxyToLayer::Pong { .. } => {}
        }
    }
}

/// The environment the user process runs with: the local one, then the target's variables, the
/// env file, mappings and overrides, minus `unset`, plus what the layer needs.
pub fn user_environment(
    local: impl IntoIterator<Item = (OsString, OsString)>,
    remote: &[EnvVar],
    config: &ResolvedConfig,
    session: &Session,
    layer_path: &Path,
) -> Result<BTreeMap<OsString, OsString>, SessionError> {
    let env_config = &config.feature.env;
    let mut env: BTreeMap<OsString, OsString> = local.into_iter().collect();
    if env_config.enabled {
        for var in remote {
            env.insert(var.name.clone().into(), var.value.clone().into());
        }
    }
    if let Some(path) = &env_config.env_file {
        let text = std::fs::read_to_string(path).map_err(|source| SessionError::EnvFile {
            path: path.clone(),
            source,
        })?;
        for (name, value) in parse_env_file(&text) {
            env.insert(name.into(), value.into());
        }
    }
    for (pattern, replacement) in &env_config.mapping {
        let Ok(regex) = regex::Regex::new(pattern) else {
            continue;
        };
        let names: Vec<String> = env
            .keys()
            .filter_map(|k| k.to_str())
            .filter(|k| regex.is_match(k))
            .map(str::to_owned)
            .collect();
        for name in names {
            let value = regex.replace(&name, replacement.as_str()).into_owned();
            env.insert(name.into(), value.into());
        }
    }
    for (name, value) in &env_config.r#override {
        env.insert(name.into(), value.into());
    }
    let unset: Vec<String> = env_config
        .unset
        .iter()
        .map(|name| name.to_ascii_uppercase())
        .collect();
    env.retain(|name, _| {
        !name
            .to_str()
            .is_some_and(|name| unset.contains(&name.to_ascii_uppercase()))
    });

    let preload = match env.get(&OsString::from("LD_PRELOAD")) {
        Some(existing) if !existing.is_empty() => {
            let mut value = layer_path.as_os_str().to_owned();
            value.push(":");
            value.push(existing);
            value
        }
        _ => layer_path.as_os_str().to_owned(),
    };
    env.insert("LD_PRELOAD".into(), preload);
    env.insert(
        LAYER_INTPROXY_ADDR_ENV.into(),
        session.intproxy_addr.to_string().into(),
    );
    env.insert(LAYER_TOKEN_ENV.into(), session.token.to_string().into());
    // Named whenever the agent runs here: the layer uses it for outgoing sockets always and for
    // files only when `feature.fs.native_fds` is on.
    match &session.agent_fd_socket {
        Some(name) => {
            env.insert(LAYER_AGENT_FDS_ENV.into(), name.into());
        }
        None => {
            env.remove(&OsString::from(LAYER_AGENT_FDS_ENV));
        }
    }
    env.insert(RESOLVED_CONFIG_ENV.into(), config.to_json().into());
    // libuv (node) may do file I/O through io_uring, which no libc hook sees.
    env.insert("UV_USE_IO_URING".into(), "0".into());
    Ok(env)
}

/// `KEY=VALUE` lines; `#` comments, blank lines, `export ` prefixes and surrounding quotes allowed.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

/// What the remote environment request asks the agent for.
pub fn env_request(config: &ResolvedConfig) -> GetEnvRequest {
    GetEnvRequest {
        include: config.feature.env.include.clone().unwrap_or_default(),
        exclude: config.feature.env.exclude.clone(),
    }
}

/// Kubernetes targets: resolve the target, run the agent next to it (see `mirrord-kube`), and
/// start an intproxy that owns the port-forward to the agent (`mirrord exec` replaces itself with
/// the user's command, so the port-forward cannot live in this process). Also the target listing
/// shared by `mirrord ls` and the IDE sidecar.
mod kube {
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::time::Duration;

    use mirrord_config::ResolvedConfig;
    use mirrord_kube::{
        Cluster, KUBE_SETTINGS_ENV, KubeError, KubeSettings, ListOptions, TargetEntry,
        TargetListing, TargetPath, resolve_target, spawn_agent,
    };

    use super::{
        INTPROXY_TOKEN_ENV, Session, SessionError, SessionProcesses, current_exe, new_token,
        spawn_and_read,
    };

    /// What `mirrord ls` shows: the listing, and a note for stderr when only local targets are
    /// listed because no cluster is configured.
    #[derive(Debug, Clone)]
    pub struct ListedTargets {
        /// The targets.
        pub listing: TargetListing,
        /// Why only local targets are listed, if that is the case.
        pub note: Option<String>,
    }

    fn runtime() -> Result<tokio::runtime::Runtime, KubeError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KubeError::Client(format!("cannot start the async runtime: {e}")))
    }

    /// Lists targets: the cluster's (in `options.namespace`, else the config's
    /// `target.namespace`, else the kubeconfig's), or, when no cluster is configured, the running
    /// sandbox pods. Never fails just because there is no kubeconfig.
    pub fn list_targets(
        config: &ResolvedConfig,
        mut options: ListOptions,
    ) -> Result<ListedTargets, KubeError> {
        let settings = KubeSettings::from_config(config);
        if !settings.cluster_configured() {
            let targets = mirrord_sandbox::Sandbox::list()
                .unwrap_or_default()
                .into_iter()
                .map(|sandbox| TargetEntry {
                    path: format!("sandbox/{}", sandbox.name),
                    kind: "sandbox".to_owned(),
                    namespace: String::new(),
                    available: sandbox.is_running(),
                })
                .collect();
            return Ok(ListedTargets {
                listing: TargetListing {
                    targets,
                    ..TargetListing::default()
                },
                note: Some(
                    "no Kubernetes cluster is configured (no kubeconfig found); listing local targets only"
                        .to_owned(),
                ),
            });
        }
        if options.namespace.is_none() {
            options.namespace = config.target_namespace.clone();
        }
        let listing = runtime()?.block_on(async {
            let cluster = Cluster::connect(&settings).await?;
            mirrord_kube::list_targets(&cluster, &options).await
        })?;
        Ok(ListedTargets {
            listing,
            note: None,
        })
    }

    fn session_error(error: KubeError) -> SessionError {
        let message = match error.help() {
            Some(help) => format!("{error}\n  help: {help}"),
            None => error.to_string(),
        };
        SessionError::Kubernetes(message)
    }

    /// Starts a session for a Kubernetes target.
    pub(super) fn start(
        config: &ResolvedConfig,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Session, SessionError> {
        let Some(path) = TargetPath::from_target(&config.target) else {
            return Err(SessionError::Kubernetes(format!(
                "{} is not a Kubernetes target",
                config.target
            )));
        };
        let settings = KubeSettings::from_config(config);
        let token = new_token()?;
        let token_text = token.to_string();
        let logs = super::logs::SessionLogs::create()?;
        // Names the agent's pod, Secret and labels: random, never derived from the token.
        let session_id = format!("{}-{}", std::process::id(), &new_token()?.to_string()[..8]);
        let agent = runtime()
            .and_then(|runtime| {
                runtime.block_on(async {
                    progress("connecting to the cluster");
                    let cluster = Cluster::connect(&settings).await?;
                    progress(&format!("resolving {path}"));
                    let target =
                        resolve_target(&cluster, config.target_namespace.as_deref(), &path).await?;
                    progress(&format!(
                        "target: container {} of pod {}/{} on node {}",
                        target.container_name,
                        target.namespace,
                        target.pod_name,
                        target.node_name.as_deref().unwrap_or("?")
                    ));
                    spawn_agent(
                        &cluster,
                        config,
                        &target,
                        &token_text,
                        &session_id,
                        progress,
                    )
                    .await
                })
            })
            .map_err(session_error)?;

        progress("starting the internal proxy (port-forward to the agent)");
        let (intproxy_log, intproxy_log_file) = super::intproxy_log(config, &logs)?;
        let mut intproxy = Command::new(current_exe()?);
        intproxy
            .arg("intproxy")
            .arg("--agent-pod")
            .arg(agent.to_string())
            .arg("--start-idle-timeout")
            .arg(config.internal_proxy.start_idle_timeout.to_string())
            .arg("--idle-timeout")
            .arg(config.internal_proxy.idle_timeout.to_string())
            .arg("--log-level")
            .arg(&config.internal_proxy.log_level)
            .args(config.internal_proxy.json_log.then_some("--json-log"))
            .env(INTPROXY_TOKEN_ENV, &token_text)
            .env(KUBE_SETTINGS_ENV, settings.to_json());
        let (intproxy_addr, intproxy_process): (std::net::SocketAddr, Child) = spawn_and_read(
            intproxy,
            "internal proxy",
            "MIRRORD_INTPROXY_LISTENING=",
            (intproxy_log_file, &intproxy_log),
            Duration::from_secs(30),
        )?;
        Ok(Session {
            token,
            intproxy_addr,
            // The agent runs in the cluster: nothing to pass descriptors over.
            agent_fd_socket: None,
            target_pid: None,
            agent_log: PathBuf::from(format!(
                "`kubectl logs -n {} {}`",
                agent.namespace, agent.pod_name
            )),
            intproxy_log,
            processes: SessionProcesses {
                agent: None,
                intproxy: Some(intproxy_process),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an intproxy that could not reach the agent (e.g. "no forward found for port …")
    /// only left the reason in its log, and `mirrord exec` waited for its time limit and said "did
    /// not start within 30 s".
    #[test]
    fn a_helper_that_cannot_start_says_why_at_once() {
        let log =
            std::env::temp_dir().join(format!("mirrord-helper-failed-{}", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut helper = Command::new("sh");
        helper.args([
            "-c",
            "echo 'MIRRORD_FAILED=the port-forward to the agent failed: no forward found for port 4000'; sleep 600",
        ]);
        let result = spawn_and_read::<SocketAddr>(
            helper,
            "internal proxy",
            "MIRRORD_INTPROXY_LISTENING=",
            (log_file, &log),
            Duration::from_secs(600),
        );
        let _ = std::fs::remove_file(&log);
        let error = result.expect_err("the helper failed");
        assert!(
            matches!(&error, SessionError::HelperFailed { message, .. }
                if message == "the port-forward to the agent failed: no forward found for port 4000"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the internal proxy could not start: the port-forward")
        );
    }

    fn session() -> Session {
        Session {
            token: SessionToken::from_bytes([7; 32]),
            intproxy_addr: "127.0.0.1:4000".parse().unwrap(),
            agent_fd_socket: Some("mirrord-agent-fds-test".into()),
            target_pid: None,
            agent_log: PathBuf::new(),
            intproxy_log: PathBuf::new(),
            processes: SessionProcesses::default(),
        }
    }

    #[test]
    fn environment_precedence_and_layer_variables() {
        let mut config = ResolvedConfig::default();
        config
            .feature
            .env
            .r#override
            .insert("REGION".into(), "local".into());
        config.feature.env.unset.push("aws_profile".into());
        config
            .feature
            .env
            .mapping
            .insert(".+_TIMEOUT".into(), "1000".into());
        let local = vec![
            (OsString::from("HOME"), OsString::from("/home/me")),
            (OsString::from("AWS_PROFILE"), OsString::from("dev")),
            (OsString::from("LD_PRELOAD"), OsString::from("/other.so")),
        ];
        let remote = vec![
            EnvVar {
                name: "REGION".into(),
                value: "eu".into(),
            },
            EnvVar {
                name: "DB_TIMEOUT".into(),
                value: "5".into(),
            },
            EnvVar {
                name: "GREETING".into(),
                value: "hello".into(),
            },
        ];
        let env = user_environment(
            local,
            &remote,
            &config,
            &session(),
            Path::new("/lib/layer.so"),
        )
        .unwrap();
        let get = |name: &str| {
            env.get(&OsString::from(name))
                .map(|v| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("HOME").as_deref(), Some("/home/me"));
        assert_eq!(get("GREETING").as_deref(), Some("hello"));
        assert_eq!(
            get("REGION").as_deref(),
            Some("local"),
            "override beats the target"
        );
        assert_eq!(
            get("DB_TIMEOUT").as_deref(),
            Some("1000"),
            "mapping rewrites matching names"
        );
        assert_eq!(get("AWS_PROFILE"), None, "unset is case-insensitive");
        assert_eq!(
            get("LD_PRELOAD").as_deref(),
            Some("/lib/layer.so:/other.so"),
            "the layer is prepended, nothing dropped"
        );
        assert_eq!(get("UV_USE_IO_URING").as_deref(), Some("0"));
        assert_eq!(
            get(LAYER_INTPROXY_ADDR_ENV).as_deref(),
            Some("127.0.0.1:4000")
        );
        assert!(ResolvedConfig::from_json(&get(RESOLVED_CONFIG_ENV).unwrap()).is_ok());
    }

    #[test]
    fn the_agents_descriptor_socket_is_named_when_the_agent_runs_here() {
        let name = |config: &ResolvedConfig, session: &Session| {
            let stale = [(
                OsString::from(LAYER_AGENT_FDS_ENV),
                OsString::from("left-over-from-an-outer-session"),
            )];
            let env = user_environment(stale, &[], config, session, Path::new("/l.so")).unwrap();
            env.get(&OsString::from(LAYER_AGENT_FDS_ENV))
                .map(|v| v.to_string_lossy().into_owned())
        };
        let mut config = ResolvedConfig::default();
        assert_eq!(
            name(&config, &session()).as_deref(),
            Some("mirrord-agent-fds-test")
        );
        config.feature.fs.native_fds = false;
        assert_eq!(
            name(&config, &session()).as_deref(),
            Some("mirrord-agent-fds-test"),
            "outgoing sockets use it whatever native_fds says"
        );
        let mut cluster = session();
        cluster.agent_fd_socket = None;
        assert_eq!(name(&ResolvedConfig::default(), &cluster), None);
    }

    #[test]
    fn disabled_env_keeps_the_local_environment() {
        let mut config = ResolvedConfig::default();
        config.feature.env.enabled = false;
        let remote = vec![EnvVar {
            name: "GREETING".into(),
            value: "hello".into(),
        }];
        let env =
            user_environment(Vec::new(), &remote, &config, &session(), Path::new("/l.so")).unwrap();
        assert!(!env.contains_key(&OsString::from("GREETING")));
    }

    #[test]
    fn parses_env_files() {
        let text = "# comment\nA=1\nexport B = \"two words\"\n\nC='x=y'\nbroken\n";
        assert_eq!(
            parse_env_file(text),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "two words".to_owned()),
                ("C".to_owned(), "x=y".to_owned())
            ]
        );
    }
}
