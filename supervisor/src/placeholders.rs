//! Remote directories, made real: a directory of the target that the program opens becomes a
//! directory of the supervisor's own, holding one empty entry per remote entry (a subdirectory for
//! a directory, a symbolic link for a link, an empty file for anything else), and the program gets
//! a descriptor of it. `getdents64`, `fstat`, `fchdir` and `close` on it are then plain system calls
//! that nobody intercepts, and the names and types they show are the target's.
//!
//! A path inside such a directory (a `*at` call relative to its descriptor, or a working directory
//! set with `fchdir`) is mapped back to the target's path before the `fs` policy decides on it, so
//! the program can never reach the placeholder's empty files through it.
//!
//! All placeholders of a session live under one directory of the supervisor's (mode 0700), removed
//! when the supervisor ends.

use std::{
    collections::HashMap,
    io,
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    sync::Mutex,
};

use mirrord_protocol::files::{DirEntry, FileType};

/// The session's placeholder directories.
#[derive(Debug)]
pub(crate) struct Placeholders {
    root: PathBuf,
    /// Placeholder number → the target directory it stands for.
    directories: Mutex<HashMap<u64, Vec<u8>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Placeholders {
    /// Creates the root directory, `base/mirrord-syscall-<pid>`.
    /// Also removes the roots of supervisors that are gone (killed before they could).
    pub(crate) fn new(base: &Path) -> io::Result<Self> {
        sweep_stale(base);
        let root = base.join(format!("mirrord-syscall-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::DirBuilder::new().mode(0o700).create(&root)?;
        Ok(Self {
            root,
            directories: Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// Makes a placeholder for target directory `target` with `entries`, and returns its path.
    pub(crate) fn create(&self, target: &[u8], entries: &[DirEntry]) -> io::Result<PathBuf> {
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.root.join(number.to_string());
        std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
        for entry in entries {
            if entry.name.is_empty()
                || entry.name == b"."
                || entry.name == b".."
                || entry.name.contains(&b'/')
            {
                continue;
            }
            let path = dir.join(std::ffi::OsStr::from_bytes(&entry.name));
            let made = match entry.file_type {
                FileType::Directory => std::fs::DirBuilder::new().mode(0o755).create(&path),
                FileType::Symlink => std::os::unix::fs::symlink("/", &path),
                _ => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&path)
                    .map(drop),
            };
            if let Err(error) = made {
                tracing::warn!(%error, path = %path.display(), "cannot make a placeholder entry");
            }
        }
        self.directories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(number, target.to_vec());
        Ok(dir)
    }

    /// The target path that the absolute, normal `path` stands for, when it lies inside a
    /// placeholder (the placeholder itself or anything under it).
    pub(crate) fn target_path(&self, path: &[u8]) -> Option<Vec<u8>> {
        let rest = path.strip_prefix(self.root.as_os_str().as_bytes())?;
        let rest = rest.strip_prefix(b"/")?;
        let (number, below) = match rest.iter().position(|byte| *byte == b'/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, &b""[..]),
        };
        let number: u64 = std::str::from_utf8(number).ok()?.parse().ok()?;
        let directories = self
            .directories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let target = directories.get(&number)?;
        let mut mapped = target.clone();
        if mapped != b"/" || below.is_empty() {
            mapped.extend_from_slice(below);
        } else {
            mapped.extend_from_slice(&below[1..]);
        }
        Some(mapped)
    }
}

impl Placeholders {
    /// Removes every placeholder (the program is done with them).
    pub(crate) fn remove_all(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes `base/mirrord-syscall-PID` directories whose process no longer exists.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("mirrord-syscall-"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        self.remove_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, file_type: FileType) -> DirEntry {
        DirEntry {
            name: name.as_bytes().to_vec(),
            inode: 1,
            file_type,
        }
    }

    #[test]
    fn a_placeholder_lists_the_targets_names_and_maps_paths_back() {
        let base = std::env::temp_dir().join(format!("mirrord-ph-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let placeholders = Placeholders::new(&base).unwrap();
        let dir = placeholders
            .create(
                b"/app",
                &[
                    entry("config.yaml", FileType::Regular),
                    entry("data", FileType::Directory),
                    entry("link", FileType::Symlink),
                    entry("..", FileType::Directory),
                ],
            )
            .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                format!(
                    "{}:{}",
                    entry.file_name().to_string_lossy(),
                    if kind.is_dir() {
                        "d"
                    } else if kind.is_symlink() {
                        "l"
                    } else {
                        "f"
                    }
                )
            })
            .collect();
        names.sort();
        assert_eq!(names, ["config.yaml:f", "data:d", "link:l"]);

        let dir_bytes = dir.as_os_str().as_bytes().to_vec();
        assert_eq!(
            placeholders.target_path(&dir_bytes).as_deref(),
            Some(&b"/app"[..])
        );
        let mut inside = dir_bytes.clone();
        inside.extend_from_slice(b"/data/x");
        assert_eq!(
            placeholders.target_path(&inside).as_deref(),
            Some(&b"/app/data/x"[..])
        );
        assert_eq!(placeholders.target_path(b"/etc/hosts"), None);
        drop(placeholders);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
