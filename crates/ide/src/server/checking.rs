//! Checking config documents: open ones on every change, files on disk when they change outside
//! the editor (watched), with their diagnostics published.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tower_lsp_server::ls_types::Uri;

use super::{Backend, lock, uri_key};
use crate::documents::{self, MAX_DOCUMENT_BYTES};
use crate::language;
use crate::watch::{self, ConfigWatcher};

impl Backend {
    /// Checks an open document and publishes its diagnostics. The check runs off the runtime's
    /// thread, so other requests are answered meanwhile, and a newer version of the document (a
    /// new generation) stops it. The notification that asked for it is done at once, so `exit`
    /// and the end of stdin never wait for a check.
    pub(super) async fn check_open_document(&self, uri: &Uri, generation: u64) {
        let backend = self.clone();
        let uri = uri.clone();
        tokio::spawn(async move { backend.check_open_document_now(&uri, generation).await });
    }

    async fn check_open_document_now(&self, uri: &Uri, generation: u64) {
        let key = uri_key(uri);
        let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
            return;
        };
        let version = document.version;
        let diagnostics = if document.too_large() {
            lock(&self.shared.checked).insert(key.clone(), (version, Vec::new()));
            vec![language::too_large_diagnostic(document.text.len())]
        } else {
            let backend = self.clone();
            let (check_key, check_uri) = (key.clone(), uri.clone());
            let checked = tokio::task::spawn_blocking(move || {
                let stale = || backend.generation(&check_key) != generation;
                language::check_cancellable(&check_uri, &document.text, document.format, &stale)
            })
            .await;
            let Ok(Some((config_diagnostics, lsp))) = checked else {
                return;
            };
            if self.generation(&key) != generation {
                return;
            }
            lock(&self.shared.checked).insert(key.clone(), (version, config_diagnostics));
            lsp
        };
        if self.generation(&key) != generation {
            return;
        }
        self.shared
            .client
            .publish_diagnostics(uri.clone(), diagnostics, Some(version))
            .await;
    }

    /// Checks a config file on disk (not open in the editor) and publishes its diagnostics; a
    /// deleted file gets none.
    pub(super) async fn check_disk_file(&self, path: &Path) {
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
                let check_uri = uri.clone();
                tokio::task::spawn_blocking(move || language::check(&check_uri, &text, format).1)
                    .await
                    .unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        self.shared
            .client
            .publish_diagnostics(uri, diagnostics, None)
            .await;
    }

    /// Watches the workspace folders' config files and checks those on disk once.
    pub(super) fn start_watching(&self) {
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
}
