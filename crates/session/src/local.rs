//! Sessions whose agent runs on this machine: a target pid, a sandbox pod (brought up on
//! demand), or no target when no cluster is configured (with one, targetless sessions run their
//! agent in the cluster: see `cluster.rs`). The agent (`mirrord-agent`) enters the target's
//! namespaces, so targets need root; targetless needs none (the agent stays in this machine's
//! namespaces).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use mirrord_config::ResolvedConfig;
use mirrord_config::resolved::Target;

use crate::binaries::{artifact, current_exe};
use crate::intproxy::{AgentEndpoint, start_intproxy};
use crate::spawn::spawn_and_read;
use crate::{Session, SessionError, SessionProcesses, logs, new_token};

/// Starts a session for a local target (a pid, a sandbox, or none).
pub(crate) fn start(
    config: &ResolvedConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Session, SessionError> {
    let target_pid = match &config.target {
        Target::Targetless if crate::cluster::configured(config) => {
            return crate::cluster::start(config, progress);
        }
        Target::Targetless => None,
        Target::Kube { .. } => {
            return Err(SessionError::KubernetesTarget(config.target.to_string()));
        }
        Target::Pid { pid } => {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(SessionError::NoSuchProcess(*pid));
            }
            Some(*pid)
        }
        Target::Sandbox { name } => Some(start_sandbox(name, progress)?),
    };
    if target_pid.is_some() {
        ensure_root()?;
    }
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
    let intproxy = match start_intproxy(config, &logs, &token, AgentEndpoint::Local(agent_addr)) {
        Ok(started) => started,
        Err(error) => {
            let _ = agent_process.kill();
            let _ = agent_process.wait();
            return Err(error);
        }
    };
    Ok(Session {
        token,
        intproxy_addr: intproxy.addr,
        agent_fd_socket: Some(fd_socket),
        target_pid,
        agent_log,
        intproxy_log: intproxy.log,
        processes: SessionProcesses {
            agent: Some(agent_process),
            intproxy: Some(intproxy.process),
        },
        notices: Vec::new(),
    })
}

/// Brings up the sandbox pod `name` (if it is not up yet) and returns its service's pid.
fn start_sandbox(name: &str, progress: &mut dyn FnMut(&str)) -> Result<u32, SessionError> {
    ensure_root()?;
    progress(&format!("starting sandbox {name}"));
    let helper = vec![
        current_exe()?.into_os_string(),
        "sandbox".into(),
        "serve".into(),
    ];
    let info = mirrord_sandbox::Sandbox::up(name, &mirrord_sandbox::UpOptions::new(helper))
        .map_err(|error| SessionError::Sandbox {
            name: name.to_owned(),
            message: error.to_string(),
        })?;
    Ok(info.target_pid)
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
