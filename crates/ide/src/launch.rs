//! Patching a debug launch configuration so that the debuggee, and not the debugger, runs in the
//! target's context. Pure functions; the session itself is started by `sessions`.
//!
//! Steps: [`plan`] decides whether mirrord applies (not to `attach` requests, child sessions
//! carrying `__parentId`, or `env.MIRRORD_ACTIVE=0`) and what the debugger type needs;
//! [`apply_to_config`] writes that into the resolved config the layer reads; after the session
//! started, [`environment_changes`] reduces the session's environment to what the launch
//! configuration must set, and [`write_environment`] puts it where the debugger type reads it.
//!
//! What each debugger type needs (the debug adapter must keep talking to the debuggee over
//! loopback, which the layer would otherwise send to the target):
//!
//! | `type` | adjustment |
//! |---|---|
//! | `node`, `pwa-node`, `node-terminal` | the inspector listens on loopback: incoming loopback listeners stay local (`incoming.ignore_localhost`); explicit inspector ports (`port`, `--inspect*=` in `runtimeArgs` or `NODE_OPTIONS`) go to `incoming.ignore_ports`; `node-terminal` also skips the terminal's shell |
//! | `python`, `debugpy` | debugpy's adapter and launcher are python processes too, so they cannot be skipped by executable name without skipping the debuggee. The adapter is started by the editor without the launch environment and never loads the layer; the launcher and the debuggee connect back to it over loopback, so loopback outgoing connections stay local (`outgoing.ignore_localhost`). With a terminal console (VS Code's default) the shell and `env` that start the launcher are skipped |
//! | `go` | the debuggee takes the system-call path (Go makes its own system calls, so the layer cannot reach it): `dlvToolPath` becomes a wrapper ([`dlv_wrapper_script`]) that runs Delve under `mirrord supervise`; `dlv` (and `dlv-dap`), the go toolchain (`go`, `compile`, `link`, `asm`, `cgo`, `vet`, `gopls`) and the C toolchain cgo runs (`gcc`, `cc`, `cc1`, `as`, `ld`, `collect2`) are skipped, so their calls run untouched, while the debuggee — Delve's child, which inherits the seccomp filter — is served. The Delve the launch named goes to `MIRRORD_DLV_PATH` |
//! | `java` | the JDWP port from `-agentlib:jdwp=…address=` / `-Xrunjdwp` in `vmArgs` goes to `incoming.ignore_ports`; the debuggee connects to the adapter over loopback, so loopback outgoing stays local |
//! | `cppdbg` | `gdb`, `gdbserver`, `lldb-mi`, `lldb`, `lldb-server` are skipped; the environment goes to the `environment` array |
//! | `lldb` | `lldb`, `lldb-server`, `lldb-dap`, `lldb-vscode`, `codelldb`, `debugserver` are skipped |
//!
//! A setting the user's config states explicitly is never overridden; a warning says so instead.

use std::collections::BTreeMap;
use std::path::Path;

use mirrord_config::ResolvedConfig;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::Ide;

/// The debugger families the sidecar knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Debugger {
    /// `node`, `pwa-node`.
    Node,
    /// `node-terminal`: a terminal whose commands are debugged.
    NodeTerminal,
    /// `python`, `debugpy`.
    Python,
    /// `go` (Delve).
    Go,
    /// `java`.
    Java,
    /// `cppdbg` (gdb / lldb-mi).
    Cppdbg,
    /// `lldb` (CodeLLDB).
    Lldb,
    /// Any other type: the environment is added to `env`.
    Other(String),
}

impl Debugger {
    /// The family of a launch configuration's `type`.
    pub fn from_type(kind: &str) -> Debugger {
        match kind {
            "node" | "pwa-node" | "nodejs" => Debugger::Node,
            "node-terminal" => Debugger::NodeTerminal,
            "python" | "debugpy" => Debugger::Python,
            "go" => Debugger::Go,
            "java" => Debugger::Java,
            "cppdbg" => Debugger::Cppdbg,
            "lldb" | "codelldb" | "lldb-dap" => Debugger::Lldb,
            other => Debugger::Other(other.to_owned()),
        }
    }

    /// Whether the debug adapter accepts `null` in `env` to remove an inherited variable.
    fn env_accepts_null(&self) -> bool {
        matches!(self, Debugger::Node | Debugger::NodeTerminal)
    }
}

/// What the debugger needs from the session's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustments {
    /// Executable names the layer must leave alone.
    pub skip_processes: Vec<String>,
    /// Ports the debugger listens on: incoming traffic to them is not mirrored or stolen.
    pub ignore_incoming_ports: Vec<u16>,
    /// Listeners on loopback stay local (the debugger listens there).
    pub incoming_localhost_stays_local: bool,
    /// Connections to loopback stay local (the debuggee connects to its adapter there).
    pub outgoing_localhost_stays_local: bool,
    /// What was decided, for the user.
    pub notes: Vec<String>,
}

/// Whether and how to patch a launch configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Return it as it is.
    Untouched {
        /// Why, for the warnings.
        reason: String,
    },
    /// Start a session and patch it.
    Patch {
        /// The debugger family.
        debugger: Debugger,
        /// What the debugger needs.
        adjustments: Adjustments,
        /// The launch configuration's own environment (`None`: removed by it).
        launch_env: BTreeMap<String, Option<String>>,
    },
}

const SHELLS: &[&str] = &["bash", "sh", "dash", "zsh", "fish"];
/// Delve, the go toolchain, and the C toolchain cgo runs: they keep this machine's view.
const GO_TOOLS: &[&str] = &[
    "dlv", "dlv-dap", "go", "gopls", "compile", "link", "asm", "cgo", "vet", "gcc", "cc", "cc1",
    "as", "ld", "collect2",
];
const CPPDBG_TOOLS: &[&str] = &["gdb", "gdbserver", "lldb-mi", "lldb", "lldb-server"];
const LLDB_TOOLS: &[&str] = &[
    "lldb",
    "lldb-server",
    "lldb-dap",
    "lldb-vscode",
    "codelldb",
    "debugserver",
];

/// The environment a launch configuration sets: `env` (object), or `environment`
/// (`[{name, value}]`, cppdbg).
pub fn launch_environment(launch: &Value) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    if let Some(object) = launch.get("env").and_then(Value::as_object) {
        for (name, value) in object {
            env.insert(name.clone(), scalar_text(value));
        }
    }
    if let Some(entries) = launch.get("environment").and_then(Value::as_array) {
        for entry in entries {
            if let Some(name) = entry.get("name").and_then(Value::as_str) {
                env.insert(name.to_owned(), entry.get("value").and_then(scalar_text));
            }
        }
    }
    env
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Decides whether mirrord applies to `launch` and what its debugger needs.
pub fn plan(launch: &Value, ide: Ide) -> Plan {
    let launch_env = launch_environment(launch);
    if launch_env.get("MIRRORD_ACTIVE").and_then(Option::as_deref) == Some("0") {
        return Plan::Untouched {
            reason: "mirrord is turned off for this launch (env.MIRRORD_ACTIVE=0)".to_owned(),
        };
    }
    if launch.get("request").and_then(Value::as_str) == Some("attach") {
        return Plan::Untouched {
            reason: "an attach request runs no new process; mirrord applies to launch requests"
                .to_owned(),
        };
    }
    if launch.get("__parentId").is_some() {
        return Plan::Untouched {
            reason: "a child debug session inherits its parent's environment".to_owned(),
        };
    }
    let kind = launch.get("type").and_then(Value::as_str).unwrap_or("");
    let debugger = Debugger::from_type(kind);
    let mut adjustments = Adjustments::default();
    match &debugger {
        Debugger::Node | Debugger::NodeTerminal => {
            adjustments.incoming_localhost_stays_local = true;
            let mut ports = Vec::new();
            if let Some(port) = launch.get("port").and_then(Value::as_u64) {
                ports.extend(u16::try_from(port).ok());
            }
            for argument in string_list(launch.get("runtimeArgs")) {
                ports.extend(inspector_port(&argument));
            }
            if let Some(Some(options)) = launch_env.get("NODE_OPTIONS") {
                for argument in options.split_whitespace() {
                    ports.extend(inspector_port(argument));
                }
            }
            add_ports(&mut adjustments.ignore_incoming_ports, ports);
            adjustments.notes.push(
                "node: the inspector listens on loopback, so loopback listeners stay local"
                    .to_owned(),
            );
            if debugger == Debugger::NodeTerminal {
                add_names(&mut adjustments.skip_processes, SHELLS);
            }
        }
        Debugger::Python => {
            adjustments.outgoing_localhost_stays_local = true;
            adjustments.notes.push("python: debugpy's launcher and the debuggee connect to the debug adapter over loopback, so loopback connections stay local".to_owned());
            let console = launch.get("console").and_then(Value::as_str);
            let terminal = match ide {
                Ide::Vscode => console != Some("internalConsole"),
                Ide::Jetbrains => false,
            };
            if terminal {
                add_names(&mut adjustments.skip_processes, SHELLS);
                add_names(&mut adjustments.skip_processes, &["env"]);
            }
        }
        Debugger::Go => {
            add_names(&mut adjustments.skip_processes, GO_TOOLS);
            adjustments.notes.push("go: Delve runs under mirrord's system-call supervisor (dlvToolPath), so the debuggee sees the target whether it is built with cgo or statically; Delve and the go toolchain keep this machine's view".to_owned());
        }
        Debugger::Java => {
            adjustments.outgoing_localhost_stays_local = true;
            let ports: Vec<u16> = string_list(launch.get("vmArgs"))
                .iter()
                .flat_map(|arguments| arguments.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .filter_map(|argument| jdwp_port(&argument))
                .collect();
            add_ports(&mut adjustments.ignore_incoming_ports, ports);
            adjustments.notes.push("java: the debuggee talks JDWP to the debugger over loopback, so loopback connections stay local".to_owned());
        }
        Debugger::Cppdbg => add_names(&mut adjustments.skip_processes, CPPDBG_TOOLS),
        Debugger::Lldb => add_names(&mut adjustments.skip_processes, LLDB_TOOLS),
        Debugger::Other(kind) => adjustments.notes.push(format!(
            "unknown debugger type `{kind}`: the environment was added to `env`; if the debugger itself misbehaves, add it to `skip_processes`"
        )),
    }
    Plan::Patch {
        debugger,
        adjustments,
        launch_env,
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn add_names(list: &mut Vec<String>, names: &[&str]) {
    for name in names {
        if !list.iter().any(|known| known == name) {
            list.push((*name).to_owned());
        }
    }
}

fn add_ports(list: &mut Vec<u16>, ports: impl IntoIterator<Item = u16>) {
    for port in ports {
        if port != 0 && !list.contains(&port) {
            list.push(port);
        }
    }
}

/// The port of `--inspect`, `--inspect-brk`, `--inspect-wait` or `--inspect-port` (`=[host:]port`;
/// 9229 when none is given).
fn inspector_port(argument: &str) -> Option<u16> {
    let flag = [
        "--inspect-brk",
        "--inspect-wait",
        "--inspect-port",
        "--inspect",
    ]
    .into_iter()
    .find(|flag| argument.starts_with(flag))?;
    let rest = &argument[flag.len()..];
    if rest.is_empty() {
        return Some(9229);
    }
    let value = rest.strip_prefix('=')?;
    value.rsplit(':').next()?.parse().ok()
}

/// The port of a JDWP agent option (`-agentlib:jdwp=…,address=[host:]port` or `-Xrunjdwp:…`).
fn jdwp_port(argument: &str) -> Option<u16> {
    let options = argument
        .strip_prefix("-agentlib:jdwp=")
        .or_else(|| argument.strip_prefix("-Xrunjdwp:"))?;
    let address = options
        .split(',')
        .find_map(|option| option.strip_prefix("address="))?;
    address.rsplit(':').next()?.parse().ok()
}

/// Writes `adjustments` into the session's config. `file` is the config as written (JSON), to
/// tell the user's explicit settings apart from defaults. Returns the notes and warnings.
pub fn apply_to_config(
    config: &mut ResolvedConfig,
    file: Option<&Value>,
    adjustments: &Adjustments,
) -> Vec<String> {
    let mut notes = adjustments.notes.clone();
    for name in &adjustments.skip_processes {
        if !config.skip_processes.contains(name) {
            config.skip_processes.push(name.clone());
        }
    }
    let incoming = &mut config.feature.network.incoming;
    for port in &adjustments.ignore_incoming_ports {
        match &mut incoming.ports {
            Some(ports) => ports.retain(|listed| listed != port),
            None if !incoming.ignore_ports.contains(port) => incoming.ignore_ports.push(*port),
            None => {}
        }
    }
    let written = |pointer: &str| file.and_then(|file| file.pointer(pointer)).is_some();
    if adjustments.incoming_localhost_stays_local {
        if written("/feature/network/incoming/ignore_localhost") {
            if !incoming.ignore_localhost {
                notes.push("the config sets feature.network.incoming.ignore_localhost to false: the debugger's loopback listener may receive the target's traffic".to_owned());
            }
        } else {
            incoming.ignore_localhost = true;
        }
    }
    if adjustments.outgoing_localhost_stays_local {
        let outgoing = &mut config.feature.network.outgoing;
        if written("/feature/network/outgoing/ignore_localhost") {
            if !outgoing.ignore_localhost {
                notes.push("the config sets feature.network.outgoing.ignore_localhost to false: the debuggee may fail to reach its debug adapter".to_owned());
            }
        } else {
            outgoing.ignore_localhost = true;
        }
    }
    notes
}

/// What the launch configuration must set so that the debuggee gets `session_env` (the result
/// of `mirrord_session::user_environment` for the sidecar's environment overlaid with the launch
/// configuration's): variables that differ from what the debuggee would get anyway (`None`
/// removes one). The sidecar's own variables are left out unless changed, so its environment
/// is not copied into the launch configuration.
pub fn environment_changes(
    sidecar_env: &BTreeMap<String, String>,
    launch_env: &BTreeMap<String, Option<String>>,
    session_env: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut changes = BTreeMap::new();
    for (name, value) in session_env {
        let unchanged = match launch_env.get(name) {
            Some(launch_value) => launch_value.as_deref() == Some(value.as_str()),
            None => sidecar_env.get(name) == Some(value),
        };
        if !unchanged {
            changes.insert(name.clone(), Some(value.clone()));
        }
    }
    for (name, value) in launch_env {
        if value.is_some() && !session_env.contains_key(name) {
            changes.insert(name.clone(), None);
        }
    }
    for name in sidecar_env.keys() {
        if !session_env.contains_key(name) && !launch_env.contains_key(name) {
            changes.insert(name.clone(), None);
        }
    }
    changes
}

/// The sidecar's environment overlaid with the launch configuration's: what the debuggee would
/// get without mirrord.
pub fn local_environment(
    sidecar_env: &BTreeMap<String, String>,
    launch_env: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, String> {
    let mut env = sidecar_env.clone();
    for (name, value) in launch_env {
        match value {
            Some(value) => env.insert(name.clone(), value.clone()),
            None => env.remove(name),
        };
    }
    env
}

/// The variable that names the Delve the wrapper runs (`dlv` on `PATH` when unset).
pub const DLV_PATH_ENV: &str = "MIRRORD_DLV_PATH";

/// The wrapper a Go launch's `dlvToolPath` points at: runs the Delve named by
/// [`DLV_PATH_ENV`] under `mirrord supervise` (the session is named by the launch's
/// environment, which the Go extension gives `dlv` as well as the debuggee). `mirrord` is the
/// binary to run, absolute.
pub fn dlv_wrapper_script(mirrord: &Path) -> String {
    let quoted = mirrord.to_string_lossy().replace('\'', "'\\''");
    format!(
        "#!/bin/sh\n# Written by the mirrord IDE sidecar: runs Delve under mirrord's system-call supervisor,\n# so that the program it debugs sees the target (see ARCHITECTURE.md, crates/ide).\nexec '{quoted}' supervise -- \"${{{DLV_PATH_ENV}:-dlv}}\" \"$@\"\n"
    )
}

/// The final launch configuration, its environment changes and warnings: `changes` written
/// where `debugger` reads them, and for `go` the debugger routed through `dlv_wrapper` (the
/// Delve the launch named, resolved by the Go extension before mirrord sees the launch, goes to
/// [`DLV_PATH_ENV`]). Without a wrapper a Go launch gets a warning that the debuggee only has the
/// layer.
pub fn patch(
    launch: &Value,
    debugger: &Debugger,
    mut changes: BTreeMap<String, Option<String>>,
    dlv_wrapper: Option<&Path>,
) -> (Value, BTreeMap<String, Option<String>>, Vec<String>) {
    let mut warnings = Vec::new();
    let wrapper = match (debugger, dlv_wrapper) {
        (Debugger::Go, Some(wrapper)) => {
            let named = launch
                .get("dlvToolPath")
                .and_then(Value::as_str)
                .filter(|named| !named.is_empty() && Path::new(named) != wrapper);
            if let Some(named) = named {
                changes.insert(DLV_PATH_ENV.to_owned(), Some(named.to_owned()));
            }
            Some(wrapper)
        }
        (Debugger::Go, None) => {
            warnings.push("go: the Delve wrapper could not be written, so the debuggee has only the layer (libc calls); see the sidecar's log".to_owned());
            None
        }
        _ => None,
    };
    let (mut patched, env_warnings) = write_environment(launch, debugger, &changes);
    warnings.extend(env_warnings);
    if let (Some(wrapper), Some(object)) = (wrapper, patched.as_object_mut()) {
        object.insert(
            "dlvToolPath".to_owned(),
            Value::String(wrapper.display().to_string()),
        );
    }
    (patched, changes, warnings)
}

/// `launch` with `changes` written where `debugger` reads its environment. Returns the new
/// configuration and warnings about what could not be expressed.
pub fn write_environment(
    launch: &Value,
    debugger: &Debugger,
    changes: &BTreeMap<String, Option<String>>,
) -> (Value, Vec<String>) {
    let mut patched = launch.clone();
    let mut warnings = Vec::new();
    let Some(object) = patched.as_object_mut() else {
        return (
            patched,
            vec!["the launch configuration is not an object".to_owned()],
        );
    };
    let mut not_removed = Vec::new();
    if *debugger == Debugger::Cppdbg {
        let mut entries: Vec<Value> = object
            .get("environment")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (name, value) in changes {
            let position = entries
                .iter()
                .position(|entry| entry.get("name").and_then(Value::as_str) == Some(name));
            match (value, position) {
                (Some(value), Some(position)) => {
                    entries[position] = serde_json::json!({ "name": name, "value": value });
                }
                (Some(value), None) => {
                    entries.push(serde_json::json!({ "name": name, "value": value }));
                }
                (None, Some(position)) => {
                    entries.remove(position);
                }
                (None, None) => not_removed.push(name.clone()),
            }
        }
        object.insert("environment".to_owned(), Value::Array(entries));
    } else {
        let mut env: Map<String, Value> = object
            .get("env")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, value) in changes {
            match value {
                Some(value) => {
                    env.insert(name.clone(), Value::String(value.clone()));
                }
                None if debugger.env_accepts_null() => {
                    env.insert(name.clone(), Value::Null);
                }
                None => {
                    if env.remove(name).is_none() {
                        not_removed.push(name.clone());
                    }
                }
            }
        }
        object.insert("env".to_owned(), Value::Object(env));
    }
    if !not_removed.is_empty() {
        warnings.push(format!(
            "this debugger cannot remove inherited variables; the debuggee still sees {}",
            not_removed.join(", ")
        ));
    }
    (patched, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_debugger_ports() {
        assert_eq!(inspector_port("--inspect"), Some(9229));
        assert_eq!(inspector_port("--inspect-brk=9230"), Some(9230));
        assert_eq!(inspector_port("--inspect=0.0.0.0:9231"), Some(9231));
        assert_eq!(inspector_port("--inspector"), None);
        assert_eq!(
            jdwp_port("-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=*:5005"),
            Some(5005)
        );
        assert_eq!(
            jdwp_port("-Xrunjdwp:transport=dt_socket,address=8000"),
            Some(8000)
        );
    }

    #[test]
    fn environment_changes_leave_the_sidecars_own_variables_out() {
        let sidecar: BTreeMap<String, String> =
            [("HOME", "/h"), ("PATH", "/bin"), ("AWS_PROFILE", "dev")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let launch: BTreeMap<String, Option<String>> = [("PORT".to_owned(), Some("80".to_owned()))]
            .into_iter()
            .collect();
        let session: BTreeMap<String, String> = [
            ("HOME", "/h"),
            ("PATH", "/bin"),
            ("PORT", "80"),
            ("GREETING", "hi"),
            ("LD_PRELOAD", "/l.so"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let changes = environment_changes(&sidecar, &launch, &session);
        let expected: BTreeMap<String, Option<String>> = [
            ("AWS_PROFILE", None),
            ("GREETING", Some("hi")),
            ("LD_PRELOAD", Some("/l.so")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        assert_eq!(changes, expected);
    }
}
