//! `mirrord/patchLaunchConfig`: [`prepare`] decides everything about a launch without starting
//! anything (tested on its own), then the handler starts the session, and [`finish`] writes the
//! session's environment into the launch configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirrord_config::{Overrides, ResolvedConfig, Severity};
use serde_json::Value;
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::Result;

use super::Backend;
use super::guard::guard;
use super::workspace::{folder_path, inside_workspace};
use crate::errors;
use crate::launch::{self, Debugger, Plan};
use crate::protocol::{
    ConfigInvalidData, PatchLaunchConfigParams, PatchLaunchConfigResult, SessionFailedData,
    TargetRequiredData,
};
use crate::sessions::{Sessions, StartTicket};

/// Ends the session of a `patchLaunchConfig` request that was dropped (cancelled) before it
/// answered.
struct AbandonOnDrop {
    sessions: Sessions,
    ticket: Arc<StartTicket>,
    armed: bool,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!("patchLaunchConfig was cancelled; ending its session");
            self.sessions.abandon(&self.ticket);
        }
    }
}

/// What [`prepare`] decided.
#[derive(Debug)]
pub(crate) enum Preparation {
    /// mirrord leaves this launch alone: answer this.
    Untouched(PatchLaunchConfigResult),
    /// Start a session.
    Start(Box<Prepared>),
}

/// Everything a session start needs, decided without starting anything.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The config the session runs with (the debugger's adjustments applied).
    pub(crate) config: ResolvedConfig,
    /// What the debuggee would get without mirrord: the sidecar's environment overlaid with the
    /// launch configuration's.
    pub(crate) local_env: BTreeMap<String, String>,
    /// The launch configuration's own environment (`None`: removed by it).
    pub(crate) launch_env: BTreeMap<String, Option<String>>,
    /// The debugger family.
    pub(crate) debugger: Debugger,
    /// For the user: config warnings and what was adjusted for the debugger.
    pub(crate) warnings: Vec<String>,
    /// The workspace folder (canonical).
    pub(crate) folder: PathBuf,
}

/// Decides a launch: whether mirrord applies, which config and target, what the debugger
/// needs. Reads the config file; starts nothing. `sidecar_env` is the sidecar's environment.
pub(crate) fn prepare(
    params: &PatchLaunchConfigParams,
    sidecar_env: &BTreeMap<String, String>,
) -> Result<Preparation> {
    let (debugger, adjustments, launch_env) = match launch::plan(&params.launch_config, params.ide)
    {
        Plan::Untouched { reason } => {
            return Ok(Preparation::Untouched(PatchLaunchConfigResult {
                launch_config: params.launch_config.clone(),
                session_id: None,
                target: None,
                environment: BTreeMap::new(),
                warnings: vec![reason],
            }));
        }
        Plan::Patch {
            debugger,
            adjustments,
            launch_env,
        } => (debugger, adjustments, launch_env),
    };
    let folder = folder_path(&params.workspace_folder)
        .and_then(|folder| folder.canonicalize().ok())
        .filter(|folder| folder.is_dir())
        .ok_or_else(|| {
            errors::error(
                errors::PATH_OUTSIDE_WORKSPACE,
                format!(
                    "the workspace folder {} does not exist",
                    params.workspace_folder
                ),
            )
        })?;
    let explicit = params
        .config_path
        .clone()
        .or_else(|| launch_env.get("MIRRORD_CONFIG_FILE").cloned().flatten())
        .filter(|path| !path.is_empty());
    let config_path = match explicit {
        Some(path) => Some(inside_workspace(&folder, &path)?),
        None => mirrord_config::discover::find_config(None, None, &folder)
            .map(|source| source.path().to_path_buf()),
    };

    let (mut overrides, problems) =
        Overrides::from_env(|name| launch_env.get(name).cloned().flatten());
    if !problems.is_empty() {
        return Err(errors::error_with_data(
            errors::CONFIG_INVALID,
            "the launch configuration's MIRRORD_* variables have errors",
            data(&ConfigInvalidData {
                diagnostics: problems,
                config_path: None,
            }),
        ));
    }
    if let Some(target) = &params.target {
        if mirrord_config::resolved::Target::parse(target).is_none() {
            return Err(errors::invalid_params(format!(
                "`{target}` is not a target path"
            )));
        }
        overrides.target = Some(target.clone());
    }
    let loaded = match &config_path {
        Some(path) => mirrord_config::load_file(path, &overrides).map_err(|error| {
            let detail = std::error::Error::source(&error)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            errors::error(errors::CONFIG_UNREADABLE, format!("{error}{detail}"))
        })?,
        None => mirrord_config::load_without_file(&overrides),
    };
    let shown_path = config_path.as_ref().map(|path| path.display().to_string());
    let Some(mut config) = loaded.config.clone() else {
        let count = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        return Err(errors::error_with_data(
            errors::CONFIG_INVALID,
            format!(
                "the mirrord config {} has {count} error{}",
                shown_path.as_deref().unwrap_or("(none)"),
                if count == 1 { "" } else { "s" }
            ),
            data(&ConfigInvalidData {
                diagnostics: loaded.diagnostics,
                config_path: shown_path,
            }),
        ));
    };
    let target_named = overrides.target.is_some()
        || loaded
            .file
            .as_ref()
            .is_some_and(|file| file.target.is_some());
    if !target_named {
        return Err(errors::error_with_data(
            errors::TARGET_REQUIRED,
            "no target: pick one (mirrord/listTargets) and send the request again with `target`",
            data(&TargetRequiredData {
                config_path: shown_path,
            }),
        ));
    }
    let mut warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Warning)
        .map(|diagnostic| {
            format!(
                "{}:{}:{}: {}",
                shown_path.as_deref().unwrap_or("config"),
                diagnostic.range.start.line + 1,
                diagnostic.range.start.character + 1,
                diagnostic.message
            )
        })
        .collect();
    let file_json = loaded
        .file
        .as_ref()
        .and_then(|file| serde_json::to_value(file).ok());
    warnings.extend(launch::apply_to_config(
        &mut config,
        file_json.as_ref(),
        &adjustments,
    ));
    let local_env = launch::local_environment(sidecar_env, &launch_env);
    Ok(Preparation::Start(Box::new(Prepared {
        config,
        local_env,
        launch_env,
        debugger,
        warnings,
        folder,
    })))
}

fn data(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The answer for a started session: `launch` with the variables that differ from what the
/// debuggee would get anyway written where `debugger` reads them, and those variables. A Go
/// launch's debugger is routed through `dlv_wrapper` (see [`launch::patch`]).
pub(crate) fn finish(
    launch: &Value,
    prepared: &Prepared,
    sidecar_env: &BTreeMap<String, String>,
    session_env: &BTreeMap<String, String>,
    dlv_wrapper: Option<&Path>,
) -> (Value, BTreeMap<String, Option<String>>, Vec<String>) {
    let changes = launch::environment_changes(sidecar_env, &prepared.launch_env, session_env);
    launch::patch(launch, &prepared.debugger, changes, dlv_wrapper)
}

/// Writes (when it is missing or stale) the wrapper a Go launch's `dlvToolPath` points at, for
/// this `mirrord` binary: `$XDG_STATE_HOME/mirrord/dlv-wrapper-<hash of the binary's path>`
/// (else under `~/.local/state`), replaced atomically, mode 0755.
fn write_dlv_wrapper() -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mirrord = std::env::current_exe()?;
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))
        .ok_or_else(|| std::io::Error::other("neither $XDG_STATE_HOME nor $HOME is set"))?;
    let dir = state.join("mirrord");
    std::fs::create_dir_all(&dir)?;
    // FNV-1a of the binary's path: one wrapper per installed mirrord.
    let hash = mirrord
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let path = dir.join(format!("dlv-wrapper-{hash:016x}"));
    let script = launch::dlv_wrapper_script(&mirrord);
    let current = std::fs::metadata(&path).is_ok_and(|meta| meta.permissions().mode() & 0o111 != 0)
        && std::fs::read_to_string(&path).is_ok_and(|text| text == script);
    if !current {
        let temporary = dir.join(format!(".dlv-wrapper-{hash:016x}.{}", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(script.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        drop(file);
        std::fs::rename(&temporary, &path)?;
    }
    Ok(path)
}

/// The `SessionFailed` error for `error`: its message, and the log that says more when a helper
/// failed to start (the plugins' "Show logs" opens it).
fn session_failed(error: &mirrord_session::SessionError) -> tower_lsp_server::jsonrpc::Error {
    use mirrord_session::SessionError;
    let message = format!("cannot start the session: {error}");
    match error {
        SessionError::HelperFailed { log, .. } | SessionError::Startup { log, .. } => {
            errors::error_with_data(
                errors::SESSION_FAILED,
                message,
                data(&SessionFailedData { log: log.clone() }),
            )
        }
        _ => errors::error(errors::SESSION_FAILED, message),
    }
}

/// The sidecar's own environment.
fn sidecar_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

impl Backend {
    /// `mirrord/patchLaunchConfig`.
    pub async fn patch_launch_config(
        &self,
        params: PatchLaunchConfigParams,
    ) -> Result<PatchLaunchConfigResult> {
        guard(
            "mirrord/patchLaunchConfig",
            self.patch_launch_config_inner(params),
        )
        .await
    }

    async fn patch_launch_config_inner(
        &self,
        params: PatchLaunchConfigParams,
    ) -> Result<PatchLaunchConfigResult> {
        let sidecar_env = sidecar_environment();
        let prepared = match prepare(&params, &sidecar_env)? {
            Preparation::Untouched(answer) => return Ok(answer),
            Preparation::Start(prepared) => prepared,
        };
        let layer_path = mirrord_session::artifact(
            "libmirrord_layer.so",
            "the layer library (libmirrord_layer.so)",
            "MIRRORD_LAYER_PATH",
        )
        .map_err(|error| errors::error(errors::SESSION_FAILED, error.to_string()))?;

        let progress = self.progress_reporter(params.work_done_token.clone()).await;
        let (step_tx, mut step_rx) = mpsc::unbounded_channel::<String>();
        let ticket = Arc::new(StartTicket::default());
        let mut abandon = AbandonOnDrop {
            sessions: self.shared.sessions.clone(),
            ticket: Arc::clone(&ticket),
            armed: true,
        };
        let sessions = self.shared.sessions.clone();
        let start_ticket = Arc::clone(&ticket);
        let (config, local_env) = (prepared.config.clone(), prepared.local_env.clone());
        let mut starting = tokio::task::spawn_blocking(move || {
            sessions.start(
                &config,
                &local_env,
                &layer_path,
                &start_ticket,
                &mut |step| {
                    let _ = step_tx.send(step.to_owned());
                },
            )
        });
        let outcome = loop {
            tokio::select! {
                step = step_rx.recv() => {
                    if let (Some(step), Some(progress)) = (step, progress.as_ref()) {
                        progress.report(step).await;
                    }
                }
                outcome = &mut starting => break outcome,
            }
        };
        if let Some(progress) = progress {
            progress.finish().await;
        }
        let started = match outcome {
            Ok(Ok(started)) => started,
            Ok(Err(error)) => {
                abandon.armed = false;
                return Err(session_failed(&error));
            }
            Err(error) => {
                return Err(errors::error(
                    errors::SESSION_FAILED,
                    format!("cannot start the session: {error}"),
                ));
            }
        };
        abandon.armed = false;
        if let Some(target) = &params.target {
            self.shared.recent.remember(&prepared.folder, target);
        }
        let dlv_wrapper = match prepared.debugger {
            Debugger::Go => write_dlv_wrapper()
                .inspect_err(|error| tracing::error!(%error, "cannot write the Delve wrapper"))
                .ok(),
            _ => None,
        };
        let (launch_config, environment, env_warnings) = finish(
            &params.launch_config,
            &prepared,
            &sidecar_env,
            &started.environment,
            dlv_wrapper.as_deref(),
        );
        // What the session says (other replicas still receive traffic) first, then the launch's.
        let mut warnings = started.notices.clone();
        warnings.extend(prepared.warnings);
        warnings.extend(env_warnings);
        tracing::info!(session = %started.session_id, debugger = ?prepared.debugger, "session started for a launch configuration");
        Ok(PatchLaunchConfigResult {
            launch_config,
            session_id: Some(started.session_id),
            target: Some(prepared.config.target.to_string()),
            environment,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Ide;
    use serde_json::json;
    use tower_lsp_server::jsonrpc::ErrorCode;

    /// A workspace folder with `files` (relative path → text).
    fn workspace(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let folder =
            std::env::temp_dir().join(format!("mirrord-prepare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        for (relative, text) in files {
            let path = folder.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&folder).unwrap();
        folder.canonicalize().unwrap()
    }

    fn params(
        folder: &std::path::Path,
        launch: Value,
        target: Option<&str>,
    ) -> PatchLaunchConfigParams {
        PatchLaunchConfigParams {
            launch_config: launch,
            workspace_folder: folder.display().to_string(),
            config_path: None,
            target: target.map(str::to_owned),
            ide: Ide::Vscode,
            work_done_token: None,
        }
    }

    fn sidecar_env() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("PATH".to_owned(), "/usr/bin".to_owned()),
            ("HOME".to_owned(), "/home/dev".to_owned()),
        ])
    }

    fn code(error: &tower_lsp_server::jsonrpc::Error) -> ErrorCode {
        error.code
    }

    #[test]
    fn a_session_whose_helper_failed_names_its_log_and_others_only_say_why() {
        use mirrord_session::SessionError;
        let failed = session_failed(&SessionError::HelperFailed {
            what: "agent",
            message: "cannot bind".to_owned(),
            log: "/state/mirrord/logs/session-1/agent.log".to_owned(),
        });
        assert_eq!(
            code(&failed),
            ErrorCode::ServerError(errors::SESSION_FAILED.code)
        );
        assert!(failed.message.contains("cannot bind"), "{}", failed.message);
        let data: SessionFailedData = serde_json::from_value(failed.data.unwrap()).unwrap();
        assert_eq!(data.log, "/state/mirrord/logs/session-1/agent.log");
        let missing = session_failed(&SessionError::NoSuchProcess(999_999_999));
        assert_eq!(
            missing.message,
            "cannot start the session: target process 999999999 does not exist"
        );
        assert_eq!(missing.data, None);
    }

    #[test]
    fn an_attach_request_is_answered_untouched_without_reading_anything() {
        let launch = json!({ "type": "node", "request": "attach", "port": 9229 });
        let outcome = prepare(
            &params(
                std::path::Path::new("/no/such/folder"),
                launch.clone(),
                None,
            ),
            &sidecar_env(),
        )
        .unwrap();
        let Preparation::Untouched(answer) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(answer.launch_config, launch);
        assert_eq!(answer.session_id, None);
        assert_eq!(answer.warnings.len(), 1);
    }

    #[test]
    fn no_target_anywhere_asks_for_one_with_the_config_named() {
        let folder = workspace(
            "no-target",
            &[(
                ".mirrord/mirrord.json",
                "{ \"feature\": { \"env\": true } }",
            )],
        );
        let launch = json!({ "type": "node", "request": "launch", "program": "app.js" });
        let error = prepare(&params(&folder, launch, None), &sidecar_env()).unwrap_err();
        assert_eq!(
            code(&error),
            ErrorCode::ServerError(errors::TARGET_REQUIRED.code)
        );
        let data: TargetRequiredData = serde_json::from_value(error.data.unwrap()).unwrap();
        assert_eq!(
            data.config_path.as_deref(),
            Some(
                folder
                    .join(".mirrord/mirrord.json")
                    .display()
                    .to_string()
                    .as_str()
            )
        );
    }

    #[test]
    fn a_node_launch_gets_the_picked_target_and_the_inspector_stays_local() {
        let folder = workspace(
            "node",
            &[(
                ".mirrord/mirrord.json",
                "{ \"feature\": { \"env\": true } }",
            )],
        );
        let launch = json!({
            "type": "node", "request": "launch", "program": "app.js",
            "env": { "APP_MODE": "dev", "HOME": null },
        });
        let outcome = prepare(
            &params(&folder, launch, Some("sandbox/demo")),
            &sidecar_env(),
        )
        .unwrap();
        let Preparation::Start(prepared) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(prepared.config.target.to_string(), "sandbox/demo");
        assert!(
            prepared.config.feature.network.incoming.ignore_localhost,
            "the inspector's loopback listener stays local"
        );
        assert_eq!(prepared.folder, folder);
        assert_eq!(
            prepared.local_env,
            BTreeMap::from([
                ("APP_MODE".to_owned(), "dev".to_owned()),
                ("PATH".to_owned(), "/usr/bin".to_owned()),
            ]),
            "the sidecar's environment overlaid with the launch's (HOME removed by it)"
        );
    }

    #[test]
    fn an_invalid_config_is_reported_with_its_diagnostics_and_path() {
        let folder = workspace(
            "invalid",
            &[(
                ".mirrord/mirrord.json",
                "{ \"target\": \"targetless\", \"feture\": {} }",
            )],
        );
        let launch = json!({ "type": "debugpy", "request": "launch", "program": "app.py" });
        let error = prepare(&params(&folder, launch, None), &sidecar_env()).unwrap_err();
        assert_eq!(
            code(&error),
            ErrorCode::ServerError(errors::CONFIG_INVALID.code)
        );
        let data: ConfigInvalidData = serde_json::from_value(error.data.unwrap()).unwrap();
        assert_eq!(data.diagnostics[0].path, "feture");
        assert!(data.config_path.unwrap().ends_with(".mirrord/mirrord.json"));
        let bad_target = prepare(
            &params(
                &folder,
                json!({ "type": "node", "request": "launch" }),
                Some("nonsense"),
            ),
            &sidecar_env(),
        )
        .unwrap_err();
        assert_eq!(code(&bad_target), ErrorCode::InvalidParams);
    }

    #[test]
    fn the_final_environment_joins_ld_preload_once_and_leaves_the_sidecars_variables_out() {
        let folder = workspace("finish", &[]);
        let launch = json!({
            "type": "node", "request": "launch", "program": "app.js",
            "env": { "LD_PRELOAD": "/usr/lib/libjemalloc.so" },
        });
        let Preparation::Start(prepared) = prepare(
            &params(&folder, launch.clone(), Some("targetless")),
            &sidecar_env(),
        )
        .unwrap() else {
            panic!("a session starts")
        };
        // What the session computes from `prepared.local_env` (mirrord_session::user_environment).
        let mut session_env = prepared.local_env.clone();
        session_env.insert(
            "LD_PRELOAD".to_owned(),
            "/m/libmirrord_layer.so /usr/lib/libjemalloc.so".to_owned(),
        );
        session_env.insert("MIRRORD_LAYER_SESSION_TOKEN".to_owned(), "t".to_owned());
        session_env.remove("HOME");
        let (patched, environment, _) =
            finish(&launch, &prepared, &sidecar_env(), &session_env, None);
        assert_eq!(
            environment,
            BTreeMap::from([
                ("HOME".to_owned(), None),
                (
                    "LD_PRELOAD".to_owned(),
                    Some("/m/libmirrord_layer.so /usr/lib/libjemalloc.so".to_owned())
                ),
                (
                    "MIRRORD_LAYER_SESSION_TOKEN".to_owned(),
                    Some("t".to_owned())
                ),
            ])
        );
        assert_eq!(
            patched["env"]["LD_PRELOAD"],
            "/m/libmirrord_layer.so /usr/lib/libjemalloc.so"
        );
        assert_eq!(
            patched["env"]["HOME"],
            Value::Null,
            "node removes variables"
        );
    }
}
