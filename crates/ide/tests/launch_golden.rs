//! Golden tests for `mirrord/patchLaunchConfig`'s patching, one file per debugger type in
//! `tests/launch/`: the input (`ide`, `launchConfig`, optional mirrord `config`) and the
//! `expected` outcome — the patched launch configuration, what changed in the session's config,
//! and the warnings. The session is faked (fixed token, intproxy address and layer path; the
//! target's environment is `REMOTE_ENV`), everything else is the sidecar's own code, including
//! `mirrord_session::user_environment`.
//!
//! After an intended change: `UPDATE_EXPECT=1 cargo test -p mirrord-ide --test launch_golden`,
//! then review the diff.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mirrord_config::Overrides;
use mirrord_ide::launch::{self, Plan};
use mirrord_ide::protocol::Ide;
use mirrord_protocol::env::EnvVar;
use mirrord_protocol::token::SessionToken;
use mirrord_session::{Session, SessionProcesses};
use serde_json::{Value, json};

const SIDECAR_ENV: &[(&str, &str)] = &[
    ("HOME", "/home/dev"),
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("AWS_PROFILE", "dev"),
];
const REMOTE_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://db.sandbox.svc:5432/app"),
    ("SANDBOX_GREETING", "hello from sandbox demo"),
    ("LANG", "C.UTF-8"),
];
const LAYER: &str = "/opt/mirrord/libmirrord_layer.so";
/// Where the sidecar writes the Go launches' Delve wrapper (faked).
const DLV_WRAPPER: &str = "/home/dev/.local/state/mirrord/dlv-wrapper-0123456789abcdef";

fn fake_session() -> Session {
    Session {
        token: SessionToken::from_bytes([7; 32]),
        intproxy_addr: "127.0.0.1:4000".parse().expect("an address"),
        agent_fd_socket: Some("mirrord-agent-fds-4242".into()),
        target_pid: Some(4242),
        agent_log: PathBuf::new(),
        intproxy_log: PathBuf::new(),
        processes: SessionProcesses::default(),
        notices: Vec::new(),
    }
}

/// What the sidecar would answer for `case` (session faked).
fn outcome(case: &Value) -> Value {
    let ide: Ide = serde_json::from_value(case["ide"].clone()).expect("ide");
    let launch_config = &case["launchConfig"];
    let (debugger, adjustments, launch_env) = match launch::plan(launch_config, ide) {
        Plan::Untouched { reason } => return json!({ "untouched": reason }),
        Plan::Patch {
            debugger,
            adjustments,
            launch_env,
        } => (debugger, adjustments, launch_env),
    };
    let config_text = case.get("config").map_or_else(
        || r#"{ "target": "sandbox/demo" }"#.to_owned(),
        Value::to_string,
    );
    let loaded = mirrord_config::load_str(
        &config_text,
        mirrord_config::Format::Json,
        &Overrides::default(),
    );
    let mut config = loaded.config.expect("the case's config is valid");
    let file = serde_json::to_value(loaded.file.expect("a file config")).expect("serializes");
    let mut warnings = launch::apply_to_config(&mut config, Some(&file), &adjustments);

    let sidecar_env: BTreeMap<String, String> = SIDECAR_ENV
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let local = launch::local_environment(&sidecar_env, &launch_env);
    let remote: Vec<EnvVar> = REMOTE_ENV
        .iter()
        .map(|(name, value)| EnvVar {
            name: (*name).to_owned(),
            value: (*value).to_owned(),
        })
        .collect();
    let session_env = mirrord_session::user_environment(
        local
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        &remote,
        &config,
        &fake_session(),
        Path::new(LAYER),
    )
    .expect("the environment")
    .into_iter()
    .map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    })
    .collect();
    let changes = launch::environment_changes(&sidecar_env, &launch_env, &session_env);
    let (mut patched, _, env_warnings) = launch::patch(
        launch_config,
        &debugger,
        changes,
        Some(Path::new(DLV_WRAPPER)),
    );
    warnings.extend(env_warnings);
    // The resolved config is long; its relevant parts are shown under `sessionConfig`.
    redact_resolved_config(&mut patched, &config.skip_processes);
    let incoming = &config.feature.network.incoming;
    json!({
        "debugger": debugger,
        "launchConfig": patched,
        "sessionConfig": {
            "skip_processes": config.skip_processes,
            "incoming": {
                "ignore_ports": incoming.ignore_ports,
                "ports": incoming.ports,
                "ignore_localhost": incoming.ignore_localhost,
            },
            "outgoing": { "ignore_localhost": config.feature.network.outgoing.ignore_localhost },
        },
        "warnings": warnings,
    })
}

/// Replaces `MIRRORD_RESOLVED_CONFIG` (in `env` or cppdbg's `environment`) by a placeholder,
/// after checking it carries the adjusted config.
fn redact_resolved_config(patched: &mut Value, skip_processes: &[String]) {
    const NAME: &str = "MIRRORD_RESOLVED_CONFIG";
    let placeholder = json!("<resolved config, see sessionConfig>");
    let check = |value: &Value| {
        let resolved: Value = serde_json::from_str(value.as_str().expect("a string"))
            .expect("the resolved config is JSON");
        assert_eq!(resolved["skip_processes"], json!(skip_processes));
    };
    if let Some(value) = patched
        .get_mut("env")
        .and_then(Value::as_object_mut)
        .and_then(|env| env.get_mut(NAME))
    {
        check(value);
        *value = placeholder.clone();
    }
    for entry in patched
        .get_mut("environment")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if entry["name"] == NAME {
            check(&entry["value"]);
            entry["value"] = placeholder.clone();
        }
    }
}

#[test]
fn launch_configurations_are_patched_per_debugger_type() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/launch");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("tests/launch")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{} cases", files.len());
    let mut stale = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let mut case: Value = serde_json::from_str(&text).expect("a JSON case");
        let actual = outcome(&case);
        if case.get("expected") == Some(&actual) {
            continue;
        }
        if update {
            case["expected"] = actual;
            let mut pretty = serde_json::to_string_pretty(&case).expect("serializes");
            pretty.push('\n');
            std::fs::write(file, pretty).expect("writable");
        } else {
            stale.push(format!(
                "{}:\n{}",
                file.display(),
                serde_json::to_string_pretty(&actual).expect("serializes")
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "unexpected outcomes (UPDATE_EXPECT=1 to accept):\n{}",
        stale.join("\n")
    );
}
