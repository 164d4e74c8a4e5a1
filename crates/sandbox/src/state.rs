//! The state directory, `/run/mirrord/sandbox/`: one directory per sandbox holding
//! `sandbox.json`, the pod spec, pid files and logs, plus the lock file that serialises `up`
//! and `down` across processes.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::{SandboxError, validate_name};

/// The root of all sandbox state, e.g. `/run/mirrord/sandbox`.
#[derive(Debug, Clone)]
pub(crate) struct StateRoot {
    root: PathBuf,
}

/// Holds the global sandbox lock until dropped (the kernel releases it if the process dies).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateRoot {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Takes the exclusive lock shared by every `up` and `down`, creating the root if needed.
    pub(crate) fn lock(&self) -> Result<StateLock, SandboxError> {
        fs::create_dir_all(&self.root)
            .map_err(|error| SandboxError::io(format!("create {}", self.root.display()), error))?;
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| SandboxError::io(format!("open {}", path.display()), error))?;
        file.lock()
            .map_err(|error| SandboxError::io(format!("lock {}", path.display()), error))?;
        Ok(StateLock { _file: file })
    }

    /// The directory of sandbox `name` (which may not exist).
    pub(crate) fn sandbox(&self, name: &str) -> SandboxDir {
        SandboxDir {
            dir: self.root.join(name),
        }
    }

    /// The names of every sandbox that has a state directory, sorted.
    pub(crate) fn names(&self) -> Result<Vec<String>, SandboxError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(SandboxError::io(
                    format!("list {}", self.root.display()),
                    error,
                ));
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| validate_name(name).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The state directory of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SandboxDir {
    dir: PathBuf,
}

impl SandboxDir {
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// `sandbox.json`: the [`crate::SandboxInfo`], written once the sandbox is ready.
    pub(crate) fn info_file(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }

    /// `addresses.json`: the slot's [`crate::SandboxAddresses`], written before anything is made
    /// on the host, so that removing a half-made sandbox finds its host route.
    pub(crate) fn addresses_file(&self) -> PathBuf {
        self.dir.join("addresses.json")
    }

    /// `pod.json`: the [`crate::pod::PodSpec`] the target process reads to set up its namespaces.
    pub(crate) fn pod_spec_file(&self) -> PathBuf {
        self.dir.join("pod.json")
    }

    /// `<service>.pid`, written by the service once it listens.
    pub(crate) fn pid_file(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.pid"))
    }

    /// `<service>.log`: the service's stdout and stderr.
    pub(crate) fn log_file(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.log"))
    }

    /// Mount point of the pod's root file system (mounted only inside the pod).
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Mount point of the writable layer over the pod's `/etc` (mounted only inside the pod).
    pub(crate) fn etc_layer(&self) -> PathBuf {
        self.dir.join("etc-layer")
    }

    pub(crate) fn create(&self) -> Result<(), SandboxError> {
        for dir in [self.dir.clone(), self.rootfs(), self.etc_layer()] {
            fs::create_dir_all(&dir)
                .map_err(|error| SandboxError::io(format!("create {}", dir.display()), error))?;
        }
        Ok(())
    }

    /// Removes the directory and everything in it; succeeds if it is already gone.
    pub(crate) fn remove(&self) -> Result<(), SandboxError> {
        match fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(SandboxError::io(
                format!("remove {}", self.dir.display()),
                error,
            )),
            _ => Ok(()),
        }
    }
}

/// Writes `value` as pretty JSON to `path`, atomically (readers never see half a file).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SandboxError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|error| SandboxError::State {
        path: path.to_owned(),
        source: error,
    })?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
        .map_err(|error| SandboxError::io(format!("write {}", path.display()), error))
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SandboxError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(SandboxError::io(format!("read {}", path.display()), error));
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| SandboxError::State {
            path: path.to_owned(),
            source: error,
        })
}

/// A service's pid file: created empty when the service starts (so it can be opened before the
/// service enters a mount namespace where the path is not visible), filled with the pid once the
/// service listens (as the service sees it: 1 for the target, the first process of its own PID
/// namespace). `up` reads a non-empty pid file as "ready to serve".
#[derive(Debug)]
pub struct PidFile {
    file: File,
}

impl PidFile {
    /// Creates (or empties) the pid file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
        })
    }

    /// Writes this process's pid, in one write so readers never see part of it.
    pub fn announce(mut self) -> io::Result<()> {
        self.file
            .write_all(format!("{}\n", std::process::id()).as_bytes())
    }
}

/// Whether the pid file at `path` holds a pid: its service listens.
pub(crate) fn is_announced(path: &Path) -> bool {
    read_pid_file(path).is_some()
}

/// The pid in `path`, if the file exists and holds one.
fn read_pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    fs::write(&temporary, contents)?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mirrord-sandbox-state-{test}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn json_round_trips_and_missing_is_none() {
        let root = scratch("json");
        let state = StateRoot::new(&root);
        let sandbox = state.sandbox("demo");
        sandbox.create().unwrap();
        assert_eq!(read_json::<Vec<u32>>(&sandbox.info_file()).unwrap(), None);
        write_json(&sandbox.info_file(), &vec![1u32, 2]).unwrap();
        assert_eq!(
            read_json::<Vec<u32>>(&sandbox.info_file()).unwrap(),
            Some(vec![1, 2])
        );
        fs::write(sandbox.info_file(), "{").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&sandbox.info_file()),
            Err(SandboxError::State { .. })
        ));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn names_lists_only_valid_sandbox_directories() {
        let root = scratch("names");
        let state = StateRoot::new(&root);
        assert!(state.names().unwrap().is_empty());
        let _lock = state.lock().unwrap();
        state.sandbox("b").create().unwrap();
        state.sandbox("a").create().unwrap();
        fs::create_dir_all(root.join("Not_A_Name")).unwrap();
        assert_eq!(state.names().unwrap(), ["a", "b"]);
        state.sandbox("a").remove().unwrap();
        state.sandbox("a").remove().unwrap();
        assert_eq!(state.names().unwrap(), ["b"]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn pid_file_holds_this_process() {
        let root = scratch("pid");
        fs::create_dir_all(&root).unwrap();
        let path = root.join("x.pid");
        assert_eq!(read_pid_file(&path), None);
        let pid_file = PidFile::create(&path).unwrap();
        assert_eq!(read_pid_file(&path), None);
        assert!(!is_announced(&path));
        pid_file.announce().unwrap();
        assert_eq!(read_pid_file(&path), Some(std::process::id()));
        assert!(is_announced(&path));
        fs::remove_dir_all(root).unwrap();
    }
}
