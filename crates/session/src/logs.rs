//! Where a session's helpers log: a fresh directory per session under the user's state directory
//! (`$XDG_STATE_HOME/mirrord/logs`, else `~/.local/state/mirrord/logs`, the place the
//! `directories` crate gives), holding `agent.log` and `intproxy.log`.
//!
//! Sessions run as root, so the directory is checked before anything is written in it: it must be
//! a real directory (not a symbolic link), owned by the user running mirrord, and writable by no
//! one else; otherwise the session is refused with an error naming the directory. The check is
//! made on the opened directory, and everything below it is created through that descriptor
//! (`/proc/self/fd/N/…`), so a path swapped after the check is never followed. Each session gets
//! a directory of its own (`mkdir` 0700, which fails rather than reuse an existing name) and its
//! files are opened with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600. Names carry the time and the
//! process id, never any part of the session token. Only the newest [`KEPT_SESSIONS`] session
//! directories are kept.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many sessions' logs are kept; older session directories are removed when a session starts.
pub const KEPT_SESSIONS: usize = 20;

/// Every session directory's name starts with this.
const SESSION_PREFIX: &str = "session-";

/// Why a session's logs cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "cannot tell where to keep session logs: no home directory (set $HOME or $XDG_STATE_HOME)"
    )]
    NoStateDirectory,
    #[error("cannot create the log directory {path}: {source}")]
    CreateDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing the log directory {path}: it is a symbolic link or not a directory; remove it, or set $XDG_STATE_HOME to a directory of your own"
    )]
    NotADirectory { path: String },
    #[error(
        "refusing the log directory {path}: it is owned by uid {owner}, but mirrord runs as uid {uid}; remove it, or set $XDG_STATE_HOME to a directory of your own"
    )]
    Owner { path: String, owner: u32, uid: u32 },
    #[error(
        "refusing the log directory {path}: it is writable by its group or by everyone (mode {mode:o}); run `chmod go-w {path}` or remove it"
    )]
    Writable { path: String, mode: u32 },
    #[error("cannot create the log file {path}: {source}")]
    CreateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The log directory of one session.
#[derive(Debug)]
pub struct SessionLogs {
    /// The directory's path, for messages.
    path: PathBuf,
    /// The directory itself: files are created through it, never by path.
    directory: File,
}

impl SessionLogs {
    /// A new session directory under the user's state directory, pruning old ones.
    pub fn create() -> Result<SessionLogs, LogError> {
        let state = directories::ProjectDirs::from("", "", "mirrord")
            .and_then(|dirs| dirs.state_dir().map(Path::to_path_buf))
            .ok_or(LogError::NoStateDirectory)?;
        SessionLogs::create_in(&state.join("logs"))
    }

    /// A new session directory in `root` (created 0700 when missing, checked when present),
    /// keeping only the newest [`KEPT_SESSIONS`] session directories there.
    pub fn create_in(root: &Path) -> Result<SessionLogs, LogError> {
        let uid = effective_uid();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| LogError::CreateDirectory {
                path: root.display().to_string(),
                source,
            })?;
        // Parents the user does not own (`/`, `/home`) are fine; the state directory itself and
        // the logs directory must be the user's alone.
        if let Some(parent) = root.parent()
            && parent.file_name().is_some_and(|name| name == "mirrord")
        {
            check_directory(&open_directory(parent)?, parent, uid)?;
        }
        let root_directory = open_directory(root)?;
        check_directory(&root_directory, root, uid)?;

        let name = session_directory_name();
        let through = fd_path(&root_directory).join(&name);
        DirBuilder::new()
            .mode(0o700)
            .create(&through)
            .map_err(|source| LogError::CreateDirectory {
                path: root.join(&name).display().to_string(),
                source,
            })?;
        let path = root.join(&name);
        let directory = open_directory_at(&through, &path)?;
        prune(&root_directory, KEPT_SESSIONS);
        Ok(SessionLogs { path, directory })
    }

    /// The session's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the new file `name` (`agent.log`) in the session's directory: its path and the
    /// file, opened for writing.
    pub fn create_file(&self, name: &str) -> Result<(PathBuf, File), LogError> {
        let path = self.path.join(name);
        let file = create_new(&fd_path(&self.directory).join(name), &path)?;
        Ok((path, file))
    }

    /// The session directory's name, for log files kept elsewhere
    /// (`internal_proxy.log_destination` naming a directory).
    pub fn session_name(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Opens the user's own log file (`internal_proxy.log_destination`): never through a symbolic
/// link, created 0600 when missing, truncated when present.
pub fn open_destination(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| LogError::CreateFile {
            path: path.display().to_string(),
            source,
        })
}

/// Creates `through` (a path through a directory descriptor), failing if anything, a link
/// included, already has the name.
fn create_new(through: &Path, shown: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(through)
        .map_err(|source| LogError::CreateFile {
            path: shown.display().to_string(),
            source,
        })
}

fn open_directory(path: &Path) -> Result<File, LogError> {
    open_directory_at(path, path)
}

/// Opens a directory without following a symbolic link at its last component.
fn open_directory_at(path: &Path, shown: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => LogError::NotADirectory {
                path: shown.display().to_string(),
            },
            _ => LogError::CreateDirectory {
                path: shown.display().to_string(),
                source,
            },
        })
}

/// Refuses a directory that someone other than `uid` owns or could write to.
fn check_directory(directory: &File, path: &Path, uid: u32) -> Result<(), LogError> {
    let metadata = directory
        .metadata()
        .map_err(|source| LogError::CreateDirectory {
            path: path.display().to_string(),
            source,
        })?;
    if metadata.uid() != uid {
        return Err(LogError::Owner {
            path: path.display().to_string(),
            owner: metadata.uid(),
            uid,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LogError::Writable {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// The path that reaches an open directory itself, whatever happens to its name meanwhile.
fn fd_path(directory: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", directory.as_raw_fd()))
}

/// `session-<seconds since the epoch, 12 digits>-<nanoseconds>-<pid>`: sorts by start time and
/// says nothing about the session's token.
fn session_directory_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{SESSION_PREFIX}{:012}-{:09}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

/// Removes all but the newest `keep` session directories of the log directory.
fn prune(root_directory: &File, keep: usize) {
    let through = fd_path(root_directory);
    let Ok(entries) = std::fs::read_dir(&through) else {
        return;
    };
    let mut sessions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(SESSION_PREFIX))
        .collect();
    sessions.sort();
    let excess = sessions.len().saturating_sub(keep);
    for name in &sessions[..excess] {
        // `remove_dir_all` does not follow symbolic links inside the tree. Best effort: what
        // cannot be removed now is tried again by the next session.
        let _ = std::fs::remove_dir_all(through.join(name));
    }
}

/// The effective user id of this process (from `/proc/self/status`; 0 if it cannot be read,
/// which makes every directory not owned by root fail the ownership check).
pub(crate) fn effective_uid() -> u32 {
    let mut status = String::new();
    let _ = File::open("/proc/self/status").and_then(|mut file| file.read_to_string(&mut status));
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse::<u32>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "mirrord-logs-test-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn session_logs_are_private_files_in_a_private_directory() {
        let base = scratch("private");
        let root = base.join("mirrord").join("logs");
        let logs = SessionLogs::create_in(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(logs.path()), 0o700);
        let (path, mut file) = logs.create_file("agent.log").unwrap();
        std::io::Write::write_all(&mut file, b"line\n").unwrap();
        assert_eq!(path, logs.path().join("agent.log"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line\n");
        // A second file of the same name is refused rather than truncated.
        assert!(matches!(
            logs.create_file("agent.log"),
            Err(LogError::CreateFile { .. })
        ));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let base = scratch("writable");
        let root = base.join("logs");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = SessionLogs::create_in(&root).unwrap_err();
        assert!(
            matches!(error, LogError::Writable { mode: 0o777, .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&root.display().to_string()));
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "nothing written"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_directory_owned_by_someone_else_is_refused() {
        let base = scratch("owner");
        let root = base.join("logs");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = std::fs::metadata(&root).unwrap().uid();
        // Checked against a uid that is not the owner's, as for a directory another user made.
        let error = check_directory(&open_directory(&root).unwrap(), &root, owner + 1).unwrap_err();
        assert!(
            matches!(error, LogError::Owner { owner: o, .. } if o == owner),
            "{error}"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_planted_symbolic_link_is_never_followed() {
        let base = scratch("symlink");
        let victim = base.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        // The log directory itself is a link to a directory of the attacker's choosing.
        let elsewhere = base.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = base.join("logs");
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let error = SessionLogs::create_in(&root).unwrap_err();
        assert!(matches!(error, LogError::NotADirectory { .. }), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // A link planted where the user's own log destination is.
        let destination = base.join("intproxy.log");
        std::os::unix::fs::symlink(&victim, &destination).unwrap();
        assert!(open_destination(&destination).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn only_the_newest_sessions_are_kept() {
        let base = scratch("prune");
        let root = base.join("logs");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        for index in 0..KEPT_SESSIONS + 5 {
            let old = root.join(format!("{SESSION_PREFIX}{index:012}-000000000-1"));
            std::fs::create_dir(&old).unwrap();
            std::fs::write(old.join("agent.log"), "old\n").unwrap();
        }
        std::fs::write(root.join("notes.txt"), "kept\n").unwrap();
        let logs = SessionLogs::create_in(&root).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEPT_SESSIONS + 1, "{left:?}");
        assert!(
            left.contains(&"notes.txt".to_owned()),
            "other files are left alone"
        );
        assert!(left.contains(&logs.session_name()));
        assert!(!left.contains(&format!("{SESSION_PREFIX}{:012}-000000000-1", 5)));
        assert!(left.contains(&format!("{SESSION_PREFIX}{:012}-000000000-1", 6)));
        std::fs::remove_dir_all(base).unwrap();
    }
}
