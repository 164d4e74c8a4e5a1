//! The LSP server: standard requests for config documents and the custom `mirrord/*` requests,
//! each handled behind a panic guard so that one failing request becomes a JSON-RPC error and
//! the sidecar keeps serving.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use mirrord_config::{Format, Overrides, Severity};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::documents::{self, Document, Documents, MAX_DOCUMENT_BYTES};
use crate::errors;
use crate::language::{self, ClientSupport};
use crate::launch::{self, Plan};
use crate::protocol::{
    EndSessionParams, EndSessionResult, Ide, InitializationOptions, ListTargetsParams,
    ListTargetsResult, PatchLaunchConfigParams, PatchLaunchConfigResult, SessionEvent,
    SessionEventParams, VerifyConfigParams, VerifyConfigResult,
};
use crate::sessions::{Sessions, StartTicket};
use crate::targets::Targets;
use crate::watch::{self, ConfigWatcher};

/// How long after an edit a document is checked, unless the client says otherwise.
const DEFAULT_DIAGNOSTICS_DELAY: Duration = Duration::from_millis(100);

/// The LSP backend.
#[derive(Debug, Clone)]
pub struct Backend {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    documents: Mutex<Documents>,
    /// The last diagnostics computed per URI, with the version they are for (for quick fixes).
    checked: Mutex<HashMap<String, (i32, Vec<mirrord_config::Diagnostic>)>>,
    generations: Mutex<HashMap<String, u64>>,
    settings: Mutex<Settings>,
    sessions: Sessions,
    targets: Targets,
    watcher: Mutex<Option<ConfigWatcher>>,
    event_rx: Mutex<Option<mpsc::UnboundedReceiver<SessionEventParams>>>,
    next_progress: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shared")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Settings {
    diagnostics_delay: Duration,
    watch_files: bool,
    folders: Vec<PathBuf>,
    support: ClientSupport,
    work_done_progress: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A future that turns a panic of `inner` into `Err(payload)`.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = std::result::Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Runs a request handler; a panic becomes an [`errors::INTERNAL_PANIC`] error.
async fn guard<T>(method: &'static str, handler: impl Future<Output = Result<T>>) -> Result<T> {
    match (CatchPanic {
        inner: Box::pin(handler),
    })
    .await
    {
        Ok(result) => result,
        Err(payload) => {
            tracing::error!(method, "request handler panicked");
            Err(errors::panic(method, payload.as_ref()))
        }
    }
}

/// Runs a notification handler; a panic is logged.
async fn guard_notification(method: &'static str, handler: impl Future<Output = ()>) {
    if let Err(payload) = (CatchPanic {
        inner: Box::pin(handler),
    })
    .await
    {
        let error = errors::panic(method, payload.as_ref());
        tracing::error!(method, message = %error.message, "notification handler panicked");
    }
}

/// Parameters of the internal request a malformed message becomes (see `stdio`).
#[derive(Debug, serde::Deserialize)]
pub struct InvalidMessageParams {
    code: i64,
    message: String,
}

fn uri_key(uri: &Uri) -> String {
    uri.as_str().to_owned()
}

fn uri_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|path| path.into_owned())
}

/// A workspace folder given as a path or a `file://` URI.
fn folder_path(text: &str) -> Option<PathBuf> {
    if text.starts_with("file:") {
        text.parse::<Uri>().ok().as_ref().and_then(uri_path)
    } else {
        Some(PathBuf::from(text))
    }
}

impl Backend {
    /// A backend sending to `client`; session events come from `event_rx`.
    pub fn new(
        client: Client,
        sessions: Sessions,
        event_rx: mpsc::UnboundedReceiver<SessionEventParams>,
    ) -> Backend {
        Backend {
            shared: Arc::new(Shared {
                client,
                documents: Mutex::default(),
                checked: Mutex::default(),
                generations: Mutex::default(),
                settings: Mutex::new(Settings {
                    diagnostics_delay: DEFAULT_DIAGNOSTICS_DELAY,
                    watch_files: true,
                    folders: Vec::new(),
                    support: ClientSupport::default(),
                    work_done_progress: false,
                }),
                sessions,
                targets: Targets::default(),
                watcher: Mutex::new(None),
                event_rx: Mutex::new(Some(event_rx)),
                next_progress: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    fn settings(&self) -> Settings {
        lock(&self.shared.settings).clone()
    }

    fn bump_generation(&self, uri: &str) -> u64 {
        let mut generations = lock(&self.shared.generations);
        let generation = generations.entry(uri.to_owned()).or_default();
        *generation += 1;
        *generation
    }

    fn generation(&self, uri: &str) -> u64 {
        lock(&self.shared.generations)
            .get(uri)
            .copied()
            .unwrap_or_default()
    }

    /// Checks an open document now and publishes its diagnostics.
    async fn check_open_document(&self, uri: &Uri, generation: u64) {
        let key = uri_key(uri);
        let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
            return;
        };
        let diagnostics = if document.too_large() {
            lock(&self.shared.checked).insert(key.clone(), (document.version, Vec::new()));
            vec![language::too_large_diagnostic(document.text.len())]
        } else {
            let (config_diagnostics, lsp) = language::check(uri, &document.text, document.format);
            lock(&self.shared.checked).insert(key.clone(), (document.version, config_diagnostics));
            lsp
        };
        if self.generation(&key) != generation {
            return;
        }
        self.shared
            .client
            .publish_diagnostics(uri.clone(), diagnostics, Some(document.version))
            .await;
    }

    /// Checks a config file on disk (not open in the editor) and publishes its diagnostics; a
    /// deleted file gets none.
    async fn check_disk_file(&self, path: &Path) {
        if lock(&self.shared.documents).is_open_path(path) {
            return;
        }
        let Some(uri) = Uri::from_file_path(path) else {
            return;
        };
        let diagnostics = match std::fs::read(path) {
            Ok(bytes) if bytes.len() > MAX_DOCUMENT_BYTES => {
                vec![language::too_large_diagnostic(bytes.len())]
            }
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let format = documents::format_of(Some(path), uri.as_str());
                language::check(&uri, &text, format).1
            }
            Err(_) => Vec::new(),
        };
        self.shared
            .client
            .publish_diagnostics(uri, diagnostics, None)
            .await;
    }

    fn is_config_document(uri: &Uri, language_id: &str) -> bool {
        language_id == documents::LANGUAGE_ID
            || uri_path(uri).is_some_and(|path| documents::is_config_path(&path))
            || documents::is_config_path(Path::new(uri.path().as_str()))
    }

    /// Forwards session events to the client and polls the sessions' helper processes.
    fn start_session_tasks(&self) {
        let Some(mut event_rx) = lock(&self.shared.event_rx).take() else {
            return;
        };
        let client = self.shared.client.clone();
        tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                client.send_notification::<SessionEvent>(event).await;
            }
        });
        let sessions = self.shared.sessions.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if sessions.count() > 0 {
                    let sessions = sessions.clone();
                    let _ = tokio::task::spawn_blocking(move || sessions.poll()).await;
                }
            }
        });
    }

    /// Watches the workspace folders' config files and checks those on disk once.
    fn start_watching(&self) {
        let settings = self.settings();
        if !settings.watch_files || settings.folders.is_empty() {
            return;
        }
        let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<PathBuf>();
        match ConfigWatcher::start(&settings.folders, changed_tx) {
            Ok(watcher) => *lock(&self.shared.watcher) = Some(watcher),
            Err(error) => tracing::warn!(%error, "cannot watch the workspace's config files"),
        }
        let backend = self.clone();
        tokio::spawn(async move {
            for folder in &settings.folders {
                for file in watch::config_files(folder) {
                    backend.check_disk_file(&file).await;
                }
            }
            while let Some(first) = changed_rx.recv().await {
                // Editors and tools write in bursts: collect for a moment, check each file once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut changed: HashSet<PathBuf> = HashSet::from([first]);
                while let Ok(more) = changed_rx.try_recv() {
                    changed.insert(more);
                }
                let files: Vec<PathBuf> = {
                    let mut watcher = lock(&backend.shared.watcher);
                    changed
                        .into_iter()
                        .filter_map(|path| watcher.as_mut()?.classify(&path))
                        .collect()
                };
                for file in files {
                    backend.check_disk_file(&file).await;
                }
            }
        });
    }

    /// Ends every session (on `shutdown`, `exit`, or when stdin closes).
    pub fn end_sessions(&self) {
        self.shared.sessions.end_all();
    }

    async fn progress_reporter(
        &self,
        token: Option<Value>,
    ) -> Option<
        tower_lsp_server::OngoingProgress<
            tower_lsp_server::Unbounded,
            tower_lsp_server::NotCancellable,
        >,
    > {
        let token = match token {
            Some(Value::String(text)) => NumberOrString::String(text),
            Some(Value::Number(number)) => NumberOrString::Number(number.as_i64()? as i32),
            _ if self.settings().work_done_progress => {
                let number = self
                    .shared
                    .next_progress
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let token = NumberOrString::String(format!("mirrord-session-{number}"));
                // A client that never answers must not hold the session start.
                let created = tokio::time::timeout(
                    Duration::from_secs(2),
                    self.shared.client.create_work_done_progress(token.clone()),
                )
                .await;
                if !matches!(created, Ok(Ok(()))) {
                    return None;
                }
                token
            }
            _ => return None,
        };
        Some(
            self.shared
                .client
                .progress(token, "mirrord")
                .with_message("starting a session")
                .begin()
                .await,
        )
    }
}

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

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        guard("initialize", async move {
            let options: InitializationOptions = params
                .initialization_options
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| errors::invalid_params(format!("initializationOptions: {error}")))?
                .unwrap_or_default();
            let mut folders: Vec<PathBuf> = params
                .workspace_folders
                .iter()
                .flatten()
                .filter_map(|folder| uri_path(&folder.uri))
                .collect();
            #[allow(
                deprecated,
                reason = "clients without workspace folders still send rootUri"
            )]
            if folders.is_empty()
                && let Some(root) = params.root_uri.as_ref().and_then(uri_path)
            {
                folders.push(root);
            }
            let snippets = params
                .capabilities
                .text_document
                .as_ref()
                .and_then(|text| text.completion.as_ref())
                .and_then(|completion| completion.completion_item.as_ref())
                .and_then(|item| item.snippet_support)
                .unwrap_or(false);
            let work_done_progress = params
                .capabilities
                .window
                .as_ref()
                .and_then(|window| window.work_done_progress)
                .unwrap_or(false);
            {
                let mut settings = lock(&self.shared.settings);
                settings.diagnostics_delay = options
                    .diagnostics_delay_ms
                    .map_or(DEFAULT_DIAGNOSTICS_DELAY, Duration::from_millis);
                settings.watch_files = options.watch_files.unwrap_or(true);
                settings.folders = folders;
                settings.support = ClientSupport { snippets };
                settings.work_done_progress = work_done_progress;
            }
            self.start_session_tasks();
            Ok(InitializeResult {
                capabilities: ServerCapabilities {
                    text_document_sync: Some(TextDocumentSyncCapability::Kind(
                        TextDocumentSyncKind::FULL,
                    )),
                    completion_provider: Some(CompletionOptions {
                        trigger_characters: Some(["\"", ":", "/", "."].map(str::to_owned).to_vec()),
                        ..CompletionOptions::default()
                    }),
                    hover_provider: Some(HoverProviderCapability::Simple(true)),
                    code_action_provider: Some(CodeActionProviderCapability::Options(
                        CodeActionOptions {
                            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                            ..CodeActionOptions::default()
                        },
                    )),
                    experimental: Some(json!({
                        "mirrord": {
                            "version": env!("CARGO_PKG_VERSION"),
                            "requests": crate::protocol::REQUESTS,
                            "notifications": crate::protocol::NOTIFICATIONS,
                        }
                    })),
                    ..ServerCapabilities::default()
                },
                server_info: Some(ServerInfo {
                    name: "mirrord".to_owned(),
                    version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                }),
                ..InitializeResult::default()
            })
        })
        .await
    }

    async fn initialized(&self, _: InitializedParams) {
        guard_notification("initialized", async {
            // Generate the schema now rather than on the first keystroke.
            tokio::task::spawn_blocking(|| {
                mirrord_config::schema::schema();
            });
            self.start_watching();
        })
        .await;
    }

    async fn shutdown(&self) -> Result<()> {
        let sessions = self.shared.sessions.clone();
        let _ = tokio::task::spawn_blocking(move || sessions.end_all()).await;
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        guard_notification("textDocument/didOpen", async move {
            let item = params.text_document;
            if !Self::is_config_document(&item.uri, &item.language_id) {
                return;
            }
            let key = uri_key(&item.uri);
            lock(&self.shared.documents).open(Document::new(
                key.clone(),
                uri_path(&item.uri),
                item.text,
                item.version,
            ));
            let generation = self.bump_generation(&key);
            self.check_open_document(&item.uri, generation).await;
        })
        .await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        guard_notification("textDocument/didChange", async move {
            let key = uri_key(&params.text_document.uri);
            let Some(change) = params.content_changes.into_iter().last() else {
                return;
            };
            if change.range.is_some() {
                tracing::warn!("ignoring an incremental change; the sidecar asked for full text");
                return;
            }
            if !lock(&self.shared.documents).change(&key, change.text, params.text_document.version)
            {
                return;
            }
            let generation = self.bump_generation(&key);
            let delay = self.settings().diagnostics_delay;
            let uri = params.text_document.uri;
            if delay.is_zero() {
                self.check_open_document(&uri, generation).await;
                return;
            }
            let backend = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if backend.generation(&key) == generation {
                    backend.check_open_document(&uri, generation).await;
                }
            });
        })
        .await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        guard_notification("textDocument/didClose", async move {
            let key = uri_key(&params.text_document.uri);
            let closed = lock(&self.shared.documents).close(&key);
            lock(&self.shared.checked).remove(&key);
            self.bump_generation(&key);
            let on_disk = closed
                .and_then(|document| document.path)
                .filter(|path| path.is_file() && documents::is_config_path(path));
            match on_disk {
                // The file stays in the workspace: show what is on disk.
                Some(path) => self.check_disk_file(&path).await,
                None => {
                    self.shared
                        .client
                        .publish_diagnostics(params.text_document.uri, Vec::new(), None)
                        .await;
                }
            }
        })
        .await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        guard_notification("workspace/didChangeWatchedFiles", async move {
            for change in params.changes {
                if let Some(path) = uri_path(&change.uri)
                    && documents::is_config_path(&path)
                {
                    self.check_disk_file(&path).await;
                }
            }
        })
        .await;
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        guard("textDocument/completion", async move {
            let position = params.text_document_position;
            let key = uri_key(&position.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let offset = document.offset(position.position.line, position.position.character);
            let support = self.settings().support;
            let targets = &self.shared.targets;
            let items =
                language::completion(&document, offset, support, &mut || targets.for_completion());
            Ok(Some(CompletionResponse::List(CompletionList {
                is_incomplete: false,
                items,
            })))
        })
        .await
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        guard("textDocument/hover", async move {
            let position = params.text_document_position_params;
            let key = uri_key(&position.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let offset = document.offset(position.position.line, position.position.character);
            Ok(language::hover(&document, offset))
        })
        .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        guard("textDocument/codeAction", async move {
            let key = uri_key(&params.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let cached = lock(&self.shared.checked)
                .get(&key)
                .filter(|(version, _)| *version == document.version)
                .map(|(_, diagnostics)| diagnostics.clone());
            let diagnostics = cached
                .unwrap_or_else(|| mirrord_config::check_str(&document.text, document.format).1);
            let actions = language::code_actions(
                &params.text_document.uri,
                &document,
                params.range,
                &diagnostics,
            );
            Ok(Some(actions))
        })
        .await
    }
}

/// The custom requests.
impl Backend {
    /// `mirrord/schema`.
    pub async fn schema(&self) -> Result<Value> {
        guard("mirrord/schema", async {
            Ok(mirrord_config::schema::schema().clone())
        })
        .await
    }

    /// `mirrord/listTargets`.
    pub async fn list_targets(&self, params: ListTargetsParams) -> Result<ListTargetsResult> {
        guard("mirrord/listTargets", async move {
            let backend = self.clone();
            tokio::task::spawn_blocking(move || backend.shared.targets.list(&params))
                .await
                .map_err(|error| errors::error(errors::TARGETS_FAILED, error.to_string()))?
                .map_err(|message| errors::error(errors::TARGETS_FAILED, message))
        })
        .await
    }

    /// `mirrord/verifyConfig`.
    pub async fn verify_config(&self, params: VerifyConfigParams) -> Result<VerifyConfigResult> {
        guard("mirrord/verifyConfig", async move {
            let (text, format) = match (params.text, params.uri) {
                (Some(text), _) => (text, params.format.unwrap_or(Format::Json)),
                (None, Some(uri)) => {
                    let open = lock(&self.shared.documents)
                        .get(&uri)
                        .map(|document| (document.text.clone(), document.format));
                    match open {
                        Some(found) => found,
                        None => {
                            let path = folder_path(&uri).ok_or_else(|| {
                                errors::invalid_params(format!("`{uri}` is not a file URI"))
                            })?;
                            let format = params
                                .format
                                .or_else(|| Format::from_path(&path))
                                .ok_or_else(|| {
                                    errors::error(
                                        errors::CONFIG_UNREADABLE,
                                        format!("cannot tell the format of {}: use a .json, .toml, .yaml or .yml extension", path.display()),
                                    )
                                })?;
                            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                            if size > MAX_DOCUMENT_BYTES as u64 {
                                return Err(too_large(size as usize));
                            }
                            let bytes = std::fs::read(&path).map_err(|error| {
                                errors::error(
                                    errors::CONFIG_UNREADABLE,
                                    format!("cannot read {}: {error}", path.display()),
                                )
                            })?;
                            let loaded = mirrord_config::load_bytes(&bytes, format, &Overrides::default());
                            return Ok(VerifyConfigResult {
                                valid: loaded.is_valid(),
                                diagnostics: loaded.diagnostics,
                                config: loaded.config,
                            });
                        }
                    }
                }
                (None, None) => {
                    return Err(errors::invalid_params("give `uri`, or `text` and `format`"));
                }
            };
            if text.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large(text.len()));
            }
            let loaded = mirrord_config::load_str(&text, format, &Overrides::default());
            Ok(VerifyConfigResult {
                valid: loaded.is_valid(),
                diagnostics: loaded.diagnostics,
                config: loaded.config,
            })
        })
        .await
    }

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
        let (debugger, adjustments, launch_env) =
            match launch::plan(&params.launch_config, params.ide) {
                Plan::Untouched { reason } => {
                    return Ok(PatchLaunchConfigResult {
                        launch_config: params.launch_config,
                        session_id: None,
                        warnings: vec![reason],
                    });
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
                json!({ "diagnostics": problems }),
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
                json!({ "diagnostics": loaded.diagnostics, "configPath": shown_path }),
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
                json!({ "configPath": shown_path }),
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
        let layer_path = mirrord_session::artifact(
            "libmirrord_layer.so",
            "the layer library (libmirrord_layer.so)",
            "MIRRORD_LAYER_PATH",
        )
        .map_err(|error| errors::error(errors::SESSION_FAILED, error.to_string()))?;
        let sidecar_env: BTreeMap<String, String> = std::env::vars_os()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let local_env = launch::local_environment(&sidecar_env, &launch_env);

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
                return Err(errors::error(
                    errors::SESSION_FAILED,
                    format!("cannot start the session: {error}"),
                ));
            }
            Err(error) => {
                return Err(errors::error(
                    errors::SESSION_FAILED,
                    format!("cannot start the session: {error}"),
                ));
            }
        };
        abandon.armed = false;
        let changes = launch::environment_changes(&sidecar_env, &launch_env, &started.environment);
        let (launch_config, env_warnings) =
            launch::write_environment(&params.launch_config, &debugger, &changes);
        warnings.extend(env_warnings);
        tracing::info!(session = %started.session_id, ?debugger, "session started for a launch configuration");
        Ok(PatchLaunchConfigResult {
            launch_config,
            session_id: Some(started.session_id),
            warnings,
        })
    }

    /// `mirrord/endSession`.
    pub async fn end_session(&self, params: EndSessionParams) -> Result<EndSessionResult> {
        guard("mirrord/endSession", async move {
            let sessions = self.shared.sessions.clone();
            let ended = tokio::task::spawn_blocking(move || {
                sessions.end(&params.session_id, "ended by mirrord/endSession")
            })
            .await
            .unwrap_or(false);
            Ok(EndSessionResult { ended })
        })
        .await
    }

    /// The internal request a malformed message becomes: answered with its error.
    pub async fn invalid_message(&self, params: InvalidMessageParams) -> Result<Value> {
        Err(Error {
            code: ErrorCode::from(params.code),
            message: params.message.into(),
            data: None,
        })
    }

    /// A request that panics, registered only with `MIRRORD_IDE_TEST_HOOKS=1` (tests show that
    /// a panic becomes an error response and the sidecar keeps serving).
    pub async fn test_panic(&self) -> Result<Value> {
        guard("$/mirrord/test/panic", async {
            if std::env::var_os(crate::TEST_HOOKS_ENV).is_some() {
                panic!("a panic requested by a test");
            }
            Ok(Value::Null)
        })
        .await
    }
}

fn too_large(size: usize) -> Error {
    errors::error(
        errors::DOCUMENT_TOO_LARGE,
        format!(
            "the document is {size} bytes; mirrord checks config files of at most {MAX_DOCUMENT_BYTES} bytes"
        ),
    )
}

/// `path` (absolute, or relative to `folder`) when it exists inside `folder`. A path that leaves
/// the folder is refused as such whether or not it exists (checked on its spelling first, then
/// again after symlinks are resolved), so the answer never tells what exists outside.
fn inside_workspace(folder: &Path, path: &str) -> Result<PathBuf> {
    let joined = folder.join(path.replace("${workspaceFolder}", &folder.to_string_lossy()));
    let outside = |resolved: &Path| {
        errors::error_with_data(
            errors::PATH_OUTSIDE_WORKSPACE,
            format!(
                "the mirrord config {} is outside the workspace folder {}",
                resolved.display(),
                folder.display()
            ),
            json!({ "configPath": resolved.display().to_string() }),
        )
    };
    let spelled = lexically_normal(&joined);
    if !spelled.starts_with(folder) {
        return Err(outside(&spelled));
    }
    let resolved = joined.canonicalize().map_err(|error| {
        errors::error(
            errors::CONFIG_UNREADABLE,
            format!(
                "cannot read the mirrord config {}: {error}",
                joined.display()
            ),
        )
    })?;
    if !resolved.starts_with(folder) {
        return Err(outside(&resolved));
    }
    Ok(resolved)
}

/// `path` with `.` and `..` resolved on its spelling alone (no file system access).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Which editor a launch configuration came from does not change validation; kept for logs.
impl std::fmt::Display for Ide {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Ide::Vscode => "vscode",
            Ide::Jetbrains => "jetbrains",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp_server::jsonrpc::ErrorCode;

    #[test]
    fn paths_leaving_the_folder_are_refused_before_they_are_read() {
        let folder = std::env::temp_dir().canonicalize().unwrap();
        for path in [
            "../elsewhere/missing.json",
            "/etc/passwd",
            "sub/../../x.json",
        ] {
            let error = inside_workspace(&folder, path).unwrap_err();
            assert_eq!(
                error.code,
                ErrorCode::ServerError(errors::PATH_OUTSIDE_WORKSPACE.code),
                "{path}"
            );
        }
        let missing = inside_workspace(&folder, "no-such-dir/../missing-config.json").unwrap_err();
        assert_eq!(
            missing.code,
            ErrorCode::ServerError(errors::CONFIG_UNREADABLE.code)
        );
        assert_eq!(
            lexically_normal(Path::new("/a/./b/../c")),
            PathBuf::from("/a/c")
        );
    }
}
