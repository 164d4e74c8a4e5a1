//! The LSP server: standard requests for config documents and the custom `mirrord/*` requests,
//! one module per handler, each behind a panic guard ([`guard`]) so that one failing request
//! becomes a JSON-RPC error and the sidecar keeps serving. This module holds the state they
//! share ([`Backend`]).

mod checking;
mod end_session;
mod guard;
mod list_targets;
mod lsp;
mod patch_launch_config;
mod schema;
mod verify_config;
mod workspace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{NumberOrString, Uri};

use crate::documents::{self, Documents};
use crate::language::ClientSupport;
use crate::protocol::{SessionEvent, SessionEventParams};
use crate::recent::RecentTargets;
use crate::sessions::Sessions;
use crate::targets::Targets;
use crate::watch::ConfigWatcher;

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
    recent: RecentTargets,
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

fn uri_key(uri: &Uri) -> String {
    uri.as_str().to_owned()
}

fn uri_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|path| path.into_owned())
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
                recent: RecentTargets::default(),
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

    /// Whether the sidecar serves this document (by languageId or file name).
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
