//! The environment of a session: the target's variables (asked of the intproxy as a layer asks)
//! and the environment the user process runs with.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use mirrord_config::ResolvedConfig;
use mirrord_protocol::env::{EnvVar, GetEnvRequest};
use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::ids::RequestId;
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};

use crate::{
    LAYER_AGENT_FDS_ENV, LAYER_INTPROXY_ADDR_ENV, LAYER_TOKEN_ENV, RESOLVED_CONFIG_ENV, Session,
    SessionError,
};

/// Asks the session for the target's environment, as a layer would.
pub fn fetch_env(session: &Session, request: GetEnvRequest) -> Result<Vec<EnvVar>, SessionError> {
    let error = |message: String| SessionError::Environment(message);
    let mut stream = session
        .connect_as_layer(Duration::from_secs(30))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionProcesses;
    use mirrord_protocol::token::SessionToken;
    use std::path::PathBuf;

    fn session() -> Session {
        Session {
            token: SessionToken::from_bytes([7; 32]),
            intproxy_addr: "127.0.0.1:4000".parse().unwrap(),
            agent_fd_socket: Some("mirrord-agent-fds-test".into()),
            target_pid: None,
            agent_log: PathBuf::new(),
            intproxy_log: PathBuf::new(),
            processes: SessionProcesses::default(),
            notices: Vec::new(),
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
