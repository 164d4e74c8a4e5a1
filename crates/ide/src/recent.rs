//! The targets each workspace used recently, kept by the sidecar so that every editor shows the
//! same "Recently used" group: most recent first, at most [`KEEP`] per workspace folder, saved in
//! `$XDG_STATE_HOME/mirrord/ide-recent-targets.json` (else `~/.local/state/…`) so that they
//! outlive the sidecar and are shared by the sidecars of several editor windows (the file is read
//! again on every use). A file that cannot be read or written only costs the recents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many targets are remembered per workspace folder.
pub const KEEP: usize = 5;

/// Recently used targets by workspace folder.
#[derive(Debug)]
pub struct RecentTargets {
    file: Option<PathBuf>,
    by_folder: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Default for RecentTargets {
    fn default() -> Self {
        RecentTargets::at(default_file())
    }
}

/// `$XDG_STATE_HOME/mirrord/ide-recent-targets.json`, else under `$HOME/.local/state`.
fn default_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))?;
    Some(state.join("mirrord").join("ide-recent-targets.json"))
}

/// The key of a workspace folder: its canonical path when it exists.
fn folder_key(folder: &Path) -> String {
    folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf())
        .display()
        .to_string()
}

impl RecentTargets {
    /// Recents saved in `file` (none: kept in memory only).
    pub fn at(file: Option<PathBuf>) -> RecentTargets {
        let by_folder = file
            .as_deref()
            .and_then(|file| std::fs::read(file).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        RecentTargets {
            file,
            by_folder: Mutex::new(by_folder),
        }
    }

    /// The targets `folder` used, most recent first.
    pub fn get(&self, folder: &Path) -> Vec<String> {
        let mut by_folder = self.lock();
        self.reload(&mut by_folder);
        by_folder
            .get(&folder_key(folder))
            .cloned()
            .unwrap_or_default()
    }

    /// What another sidecar saved since (the file wins over memory when it can be read).
    fn reload(&self, by_folder: &mut BTreeMap<String, Vec<String>>) {
        if let Some(saved) = self
            .file
            .as_deref()
            .and_then(|file| std::fs::read(file).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            *by_folder = saved;
        }
    }

    /// Records that `folder` used `target` now.
    pub fn remember(&self, folder: &Path, target: &str) {
        let mut by_folder = self.lock();
        self.reload(&mut by_folder);
        let recent = by_folder.entry(folder_key(folder)).or_default();
        recent.retain(|known| known != target);
        recent.insert(0, target.to_owned());
        recent.truncate(KEEP);
        if let Some(file) = &self.file {
            let saved = file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    let temporary = file.with_extension("json.tmp");
                    std::fs::write(&temporary, serde_json::to_vec_pretty(&*by_folder)?)?;
                    std::fs::rename(&temporary, file)
                });
            if let Err(error) = saved {
                tracing::warn!(%error, file = %file.display(), "cannot save the recently used targets");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<String>>> {
        self.by_folder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_per_folder_and_kept_across_restarts() {
        let dir = std::env::temp_dir().join(format!("mirrord-recent-{}", std::process::id()));
        let file = dir.join("state/recent.json");
        let (api, web) = (dir.join("api"), dir.join("web"));
        std::fs::create_dir_all(&api).unwrap();
        std::fs::create_dir_all(&web).unwrap();
        let recent = RecentTargets::at(Some(file.clone()));
        for target in [
            "pod/a", "pod/b", "pod/a", "pod/c", "pod/d", "pod/e", "pod/f",
        ] {
            recent.remember(&api, target);
        }
        recent.remember(&web, "sandbox/demo");
        let expected = ["pod/f", "pod/e", "pod/d", "pod/c", "pod/a"];
        assert_eq!(recent.get(&api), expected);
        assert_eq!(recent.get(&web), ["sandbox/demo"]);
        let other_window = RecentTargets::at(Some(file));
        assert_eq!(other_window.get(&api.join("../api")), expected);
        other_window.remember(&web, "targetless");
        assert_eq!(
            recent.get(&web),
            ["targetless", "sandbox/demo"],
            "read again on every use"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
