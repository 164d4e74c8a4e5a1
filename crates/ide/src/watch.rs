//! Watching the workspace's config files for changes made outside the editor (a `git checkout`,
//! a script, another editor), so their diagnostics follow.
//!
//! Only the places configs live are watched, never whole trees: each workspace folder itself
//! (for `mirrord.json` and `*.mirrord.json`) and its `.mirrord/` folder, both non-recursively.
//! A `.mirrord/` folder created later is picked up from the folder's own events.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::documents::is_config_path;

/// A running watcher.
pub struct ConfigWatcher {
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConfigWatcher")
            .field("watched", &self.watched)
            .finish()
    }
}

impl ConfigWatcher {
    /// Watches `folders`; changed config files are sent to `changed_tx`.
    pub fn start(
        folders: &[PathBuf],
        changed_tx: mpsc::UnboundedSender<PathBuf>,
    ) -> notify::Result<ConfigWatcher> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                let _ = changed_tx.send(path);
            }
        })?;
        let mut watcher = ConfigWatcher {
            watcher,
            watched: HashSet::new(),
        };
        for folder in folders {
            watcher.watch(folder);
            watcher.watch(&folder.join(".mirrord"));
        }
        Ok(watcher)
    }

    /// Watches `folder` (non-recursively) if it exists and is not watched yet.
    pub fn watch(&mut self, folder: &Path) {
        if self.watched.contains(folder) || !folder.is_dir() {
            return;
        }
        match self.watcher.watch(folder, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(folder.to_path_buf());
            }
            Err(error) => tracing::warn!(folder = %folder.display(), %error, "cannot watch"),
        }
    }

    /// What a changed path means: a config file to check again, or a new `.mirrord/` folder to
    /// watch.
    pub fn classify(&mut self, path: &Path) -> Option<PathBuf> {
        if path.file_name().is_some_and(|name| name == ".mirrord") && path.is_dir() {
            self.watch(path);
            return None;
        }
        is_config_path(path).then(|| path.to_path_buf())
    }
}

/// The config files in a workspace folder (the folder's `mirrord.json`, `*.mirrord.json`, and
/// everything in `.mirrord/`).
pub fn config_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for directory in [folder.to_path_buf(), folder.join(".mirrord")] {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && is_config_path(path))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}
