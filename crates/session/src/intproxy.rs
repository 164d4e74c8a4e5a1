//! The one place the intproxy (`mirrord intproxy`) is started, for an agent on this machine or
//! one in the cluster: its arguments, its token, its log file, and the wait for its address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use mirrord_config::ResolvedConfig;
use mirrord_kube::{AgentPod, COPY_SESSION_ENV, CopySession, KUBE_SETTINGS_ENV, KubeSettings};
use mirrord_protocol::token::SessionToken;

use crate::binaries::current_exe;
use crate::logs::{self, SessionLogs};
use crate::spawn::spawn_and_read;
use crate::{INTPROXY_TOKEN_ENV, SessionError};

/// Where the intproxy reaches the agent.
pub(crate) enum AgentEndpoint<'a> {
    /// An agent on this machine, listening on this address.
    Local(SocketAddr),
    /// An agent pod, reached through a port-forward the intproxy opens with these settings
    /// (`mirrord exec` replaces itself with the user's command, so the port-forward cannot live
    /// in the process that started the session).
    Pod {
        pod: &'a AgentPod,
        settings: &'a KubeSettings,
        /// A copied target (`feature.copy_target`): the intproxy undoes it when the session ends,
        /// the one process of the session that lives exactly as long as it.
        copy: Option<&'a CopySession>,
    },
}

/// A started intproxy.
pub(crate) struct StartedIntproxy {
    /// Where layers connect.
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub process: Child,
}

/// The intproxy's command line and environment for `config`, the session's `token` and its agent.
fn intproxy_command(
    config: &ResolvedConfig,
    token: &SessionToken,
    agent: &AgentEndpoint<'_>,
) -> Result<Command, SessionError> {
    let mut intproxy = Command::new(current_exe()?);
    intproxy.arg("intproxy");
    match agent {
        AgentEndpoint::Local(addr) => {
            intproxy.arg("--agent").arg(addr.to_string());
        }
        AgentEndpoint::Pod {
            pod,
            settings,
            copy,
        } => {
            intproxy
                .arg("--agent-pod")
                .arg(pod.to_string())
                .env(KUBE_SETTINGS_ENV, settings.to_json());
            if let Some(copy) = copy {
                intproxy.env(COPY_SESSION_ENV, copy.to_json());
            }
        }
    }
    intproxy
        .arg("--start-idle-timeout")
        .arg(config.internal_proxy.start_idle_timeout.to_string())
        .arg("--idle-timeout")
        .arg(config.internal_proxy.idle_timeout.to_string())
        .arg("--log-level")
        .arg(&config.internal_proxy.log_level)
        .args(config.internal_proxy.json_log.then_some("--json-log"))
        .env(INTPROXY_TOKEN_ENV, token.to_string());
    Ok(intproxy)
}

/// Starts the intproxy and waits until it listens (longer for a pod: the port-forward is opened
/// first).
pub(crate) fn start_intproxy(
    config: &ResolvedConfig,
    logs: &SessionLogs,
    token: &SessionToken,
    agent: AgentEndpoint<'_>,
) -> Result<StartedIntproxy, SessionError> {
    let (log, log_file) = intproxy_log(config, logs)?;
    let startup = match agent {
        AgentEndpoint::Local(_) => Duration::from_secs(15),
        AgentEndpoint::Pod { .. } => Duration::from_secs(30),
    };
    let command = intproxy_command(config, token, &agent)?;
    let (addr, process) = spawn_and_read(
        command,
        "internal proxy",
        "MIRRORD_INTPROXY_LISTENING=",
        (log_file, &log),
        startup,
    )?;
    Ok(StartedIntproxy { addr, log, process })
}

/// The intproxy's log: `internal_proxy.log_destination` when set (a file, or a directory ending in
/// `/` that gets a new file named after the session), else `intproxy.log` in the session's
/// log directory.
fn intproxy_log(
    config: &ResolvedConfig,
    logs: &SessionLogs,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    /// The local and the cluster intproxy differ only in how they reach the agent.
    #[test]
    fn the_intproxy_command_differs_only_in_the_agent() {
        let mut config = ResolvedConfig::default();
        config.internal_proxy.start_idle_timeout = 42;
        config.internal_proxy.json_log = true;
        let token = SessionToken::from_bytes([3; 32]);
        let local = intproxy_command(
            &config,
            &token,
            &AgentEndpoint::Local("127.0.0.1:4000".parse().unwrap()),
        )
        .unwrap();
        let pod = AgentPod {
            namespace: "default".into(),
            pod_name: "mirrord-agent-x".into(),
            port: 4000,
        };
        let settings = KubeSettings::from_config(&config);
        let cluster = intproxy_command(
            &config,
            &token,
            &AgentEndpoint::Pod {
                pod: &pod,
                settings: &settings,
                copy: None,
            },
        )
        .unwrap();
        let common = [
            "--start-idle-timeout",
            "42",
            "--idle-timeout",
            &config.internal_proxy.idle_timeout.to_string(),
            "--log-level",
            &config.internal_proxy.log_level,
            "--json-log",
        ]
        .map(str::to_owned);
        assert_eq!(
            arguments(&local)[..3],
            ["intproxy", "--agent", "127.0.0.1:4000"]
        );
        assert_eq!(arguments(&local)[3..], common);
        assert_eq!(
            arguments(&cluster)[..3],
            ["intproxy", "--agent-pod", &pod.to_string()]
        );
        assert_eq!(arguments(&cluster)[3..], common);
        let env = |command: &Command, name: &str| {
            command
                .get_envs()
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value)
                .map(|value| value.to_string_lossy().into_owned())
        };
        for command in [&local, &cluster] {
            assert_eq!(
                env(command, INTPROXY_TOKEN_ENV),
                Some(token.to_string()),
                "the token goes by environment, never on the command line"
            );
            assert!(!arguments(command).contains(&token.to_string()));
        }
        assert_eq!(env(&local, KUBE_SETTINGS_ENV), None);
        assert_eq!(env(&cluster, KUBE_SETTINGS_ENV), Some(settings.to_json()));
    }
}
