//! Path resolution: where a path argument of a file call leads — the caller's path locally, a path
//! `mapping` rewrote, the target, or nowhere — decided by [`crate::fs_policy`] on the absolute, normal
//! form of the path (relative paths against the cwd, or against a directory opened on the target).

use std::{
    borrow::Cow,
    ffi::{CStr, CString, c_int},
    os::{fd::RawFd, unix::ffi::OsStrExt},
};

use mirrord_protocol::files::TargetPath;

use super::registry::verified;
use crate::{
    fd_table::{FDS, FdEntry},
    fs_policy::{self, Intent, Route},
    setup,
};

/// The hot-path shortcut: whether `path` is certainly local without any further look (see
/// [`fs_policy::FsPolicy::is_plainly_local`]). Pure: calls no libc function, needs no guard.
#[inline(always)]
pub(crate) fn is_plainly_local(path: &CStr) -> bool {
    setup::layer()
        .and_then(|layer| layer.fs.as_ref())
        .is_some_and(|policy| policy.is_plainly_local(path.to_bytes()))
}

/// Where a path argument leads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The caller's path, locally: call the original as it is.
    Local,
    /// Another path (rewritten by `mapping`), locally.
    LocalMapped(CString),
    /// On the target.
    Remote(TargetPath),
    /// Nowhere: `ENOENT`.
    NotFound,
}

/// Resolves a path argument (relative to `dirfd` when given and not `AT_FDCWD`, else to the cwd).
#[inline(always)]
pub(crate) fn resolve(dirfd: Option<RawFd>, path: &CStr, intent: Intent) -> Resolved {
    let Some(policy) = setup::layer().and_then(|layer| layer.fs.as_ref()) else {
        return Resolved::Local;
    };
    let bytes = path.to_bytes();
    // The hot path: most paths a program opens are its own libraries, caches and temporary files.
    if bytes.is_empty() || policy.is_plainly_local(bytes) {
        return Resolved::Local;
    }
    resolve_slowly(policy, dirfd, bytes, intent)
}

/// [`resolve`] for the paths that need the whole decision.
#[inline(never)]
fn resolve_slowly(
    policy: &fs_policy::FsPolicy,
    dirfd: Option<RawFd>,
    bytes: &[u8],
    intent: Intent,
) -> Resolved {
    let absolute: Cow<'_, [u8]> = if bytes[0] == b'/' {
        Cow::Borrowed(bytes)
    } else {
        match dirfd.filter(|fd| *fd != libc::AT_FDCWD) {
            Some(fd) => {
                // Relative to a directory opened on the target: the target's, whatever the lists say.
                return match FDS.get(fd) {
                    Some(FdEntry::RemoteFile(id)) => match verified(fd, id) {
                        Some(directory) => Resolved::Remote(TargetPath::from_bytes(
                            fs_policy::normalize(&fs_policy::absolute(
                                bytes,
                                directory.path.as_bytes(),
                            ))
                            .into_owned(),
                        )),
                        None => Resolved::Local,
                    },
                    _ => Resolved::Local,
                };
            }
            None => match std::env::current_dir() {
                Ok(cwd) => {
                    Cow::Owned(fs_policy::absolute(bytes, cwd.as_os_str().as_bytes()).into_owned())
                }
                Err(_) => return Resolved::Local,
            },
        }
    };
    let normal = fs_policy::normalize(&absolute);
    let decision = policy.decide(&normal, intent);
    match decision.route {
        // A local path is used as the caller gave it (the kernel resolves `..` through symlinks, which
        // the lexical normal form does not), unless `mapping` rewrote it.
        Route::Local if !decision.mapped => Resolved::Local,
        Route::Local => match CString::new(decision.path.into_owned()) {
            Ok(mapped) => Resolved::LocalMapped(mapped),
            Err(_) => Resolved::Local,
        },
        Route::Remote => Resolved::Remote(TargetPath::from_bytes(decision.path.into_owned())),
        Route::NotFound => Resolved::NotFound,
    }
}

/// Whether `open` flags change the file system.
pub(super) fn open_intent(flags: c_int) -> Intent {
    let access = flags & libc::O_ACCMODE;
    if access == libc::O_WRONLY
        || access == libc::O_RDWR
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
    {
        Intent::Write
    } else {
        Intent::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_intent_follows_the_flags() {
        assert_eq!(open_intent(libc::O_RDONLY), Intent::Read);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_CLOEXEC), Intent::Read);
        assert_eq!(open_intent(libc::O_WRONLY), Intent::Write);
        assert_eq!(open_intent(libc::O_RDWR), Intent::Write);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_CREAT), Intent::Write);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_TRUNC), Intent::Write);
    }

    #[test]
    fn an_inactive_layer_resolves_everything_locally() {
        assert_eq!(
            resolve(None, c"/app/config.yaml", Intent::Read),
            Resolved::Local
        );
    }
}
