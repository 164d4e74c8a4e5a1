//! Files: the safe logic behind the file shims. A path is decided by [`crate::fs_policy`] (through
//! [`resolve`]); a remote open gives the process a real placeholder fd (a memfd, or a private empty
//! directory for directories) that the fd table maps to a [`RemoteFile`] in the [`registry`]. Operations
//! on that fd ([`descriptors`]) go to the intproxy; `dup`s share the remote file (reference counted) and
//! the last `close` releases it. This module holds the operations on paths: `open`, the stat family on
//! paths, `access`, `mkdir`, `unlink`, `rmdir`, `rename`, `readlink` and extended attributes.
//!
//! With `$MIRRORD_LAYER_AGENT_FDS` set, remote opens of anything but directories get the target's own
//! descriptor instead ([`native`]); the layer then never sees that fd again.

mod descriptors;
pub(crate) mod dirs;
mod metadata;
pub(crate) mod native;
mod registry;
mod resolve;
pub(crate) mod shims;

use std::{
    ffi::{CStr, CString, c_int, c_uint},
    mem::MaybeUninit,
    os::{
        fd::{IntoRawFd, RawFd},
        unix::ffi::OsStringExt,
    },
    sync::{Mutex, OnceLock, atomic::AtomicU64},
};

use mirrord_protocol::{
    FileHandle, RemoteError,
    files::{AccessMode, FileRequest, FileResponse, FileType, Metadata, OpenFlags, TargetPath},
};

use crate::{
    connection::{file_request, unexpected},
    detour::{Outcome, copy_out, errno},
    fd_table::{FDS, FdEntry},
    fs_policy::Intent,
    process, setup,
};

pub(crate) use descriptors::{
    close, close_range, dup, dup_onto, fill_mapping, fstat, lseek, pread, pwrite, read, readv,
    write, writev,
};
pub(crate) use metadata::{to_stat, to_statx};
use registry::{ReadAhead, metadata_of, placeholder_identity, register, release};
pub(crate) use registry::{RemoteFile, forget_entry, lock_for_fork};
use resolve::open_intent;
pub(crate) use resolve::{Resolved, is_plainly_local, resolve};

/// The outcome of a libc call that returns -1 with errno on failure.
fn from_libc<T: PartialOrd + Default>(value: T) -> Outcome<T> {
    if value < T::default() {
        Outcome::Fail(errno())
    } else {
        Outcome::Handled(value)
    }
}

/// The outcome of a remote call.
fn remote<T>(result: Result<T, RemoteError>) -> Outcome<T> {
    match result {
        Ok(value) => Outcome::Handled(value),
        Err(error) => {
            tracing::debug!(%error, "remote file operation failed");
            Outcome::Fail(error.errno())
        }
    }
}

/// `open`, `openat` and friends. `local` runs the original with another path (and the caller's flags).
#[inline]
pub(crate) fn open(
    dirfd: Option<RawFd>,
    path: &CStr,
    flags: c_int,
    mode: c_uint,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        return Outcome::Bypass("local-only open flags");
    }
    match resolve(dirfd, path, open_intent(flags)) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(target_path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            open_remote(target_path, flags, mode)
        }
    }
}

/// A remote open. `O_PATH` (a descriptor that only names the file, for `fstat` and `*at` calls) is a
/// read-only open on the target, served through the intproxy like a directory.
pub(super) fn open_remote(path: TargetPath, flags: c_int, mode: c_uint) -> Outcome<c_int> {
    let only_names = flags & libc::O_PATH != 0;
    let open_flags = if only_names {
        OpenFlags {
            directory: flags & libc::O_DIRECTORY != 0,
            cloexec: flags & libc::O_CLOEXEC != 0,
            ..OpenFlags::READ_ONLY
        }
    } else {
        OpenFlags::from_raw(flags)
    };
    if let Some(layer) = setup::layer()
        && let Some(socket) = &layer.agent_fds
        && !open_flags.directory
        && !only_names
    {
        if crate::connection::agent_is_lost() {
            return remote(Err(RemoteError::agent_lost(
                "the agent connection was lost earlier",
            )));
        }
        match native::open(socket, &layer.endpoint.token, &path, open_flags, mode) {
            Ok(Some(fd)) => {
                let fd = fd.into_raw_fd();
                // The number may still be recorded for something closed behind the layer's back.
                if let Some(stale) = FDS.take(fd) {
                    forget_entry(fd, stale);
                }
                return Outcome::Handled(fd);
            }
            // A directory: opened the usual way below.
            Ok(None) => {}
            Err(error) => return remote(Err(error)),
        }
    }
    let handle = match file_request(FileRequest::Open {
        path: path.clone(),
        flags: open_flags,
        mode,
    }) {
        Ok(FileResponse::Opened(handle)) => handle,
        Ok(other) => return remote::<c_int>(Err(unexpected_file(&other))),
        Err(error) => return remote(Err(error)),
    };
    let close_remote = || {
        let _ = file_request(FileRequest::Close { handle });
    };
    // A directory opened without `O_DIRECTORY` gets a directory placeholder too, so that the process sees
    // a directory descriptor (`fdopendir`, `fchdir`-style checks of the real fd).
    let directory = open_flags.directory || is_remote_directory(handle);
    let fd = match make_placeholder(directory, open_flags.cloexec) {
        Ok(fd) => fd,
        Err(errno) => {
            close_remote();
            return Outcome::Fail(errno);
        }
    };
    let Some((dev, ino)) = placeholder_identity(fd) else {
        // SAFETY: `fd` is the placeholder just created here, owned by nobody else.
        unsafe { libc::close(fd) };
        close_remote();
        return Outcome::Fail(libc::EIO);
    };
    let read_ahead = setup::layer()
        .map(|layer| layer.readonly_file_buffer)
        .filter(|size| *size > 0 && !open_flags.write && !directory && !only_names)
        .map(|size| (Mutex::new(ReadAhead::default()), size));
    let id = register(RemoteFile {
        handle,
        path,
        placeholder_dev: AtomicU64::new(dev),
        placeholder_ino: AtomicU64::new(ino),
        owner_pid: process::pid(),
        read_ahead,
    });
    match FDS.set(fd, FdEntry::RemoteFile(id)) {
        Ok(Some(stale)) => forget_entry(fd, stale),
        Ok(None) => {}
        Err(_) => {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
            release(id);
            return Outcome::Fail(libc::EMFILE);
        }
    }
    Outcome::Handled(fd)
}

/// Whether the remote file behind `handle` is a directory (one `fstat`; false when that fails).
fn is_remote_directory(handle: FileHandle) -> bool {
    matches!(
        file_request(FileRequest::Fstat { handle }),
        Ok(FileResponse::Metadata(metadata)) if metadata.file_type() == FileType::Directory
    )
}

fn unexpected_file(response: &FileResponse) -> RemoteError {
    unexpected(&mirrord_protocol::LayerResponse::File(response.clone()))
}

/// A placeholder fd: an anonymous memfd for files, the private empty directory for directories.
fn make_placeholder(directory: bool, cloexec: bool) -> Result<RawFd, i32> {
    let fd = if directory {
        let empty = empty_directory().ok_or(libc::EIO)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | if cloexec { libc::O_CLOEXEC } else { 0 };
        // SAFETY: `empty` is a NUL-terminated path.
        unsafe { libc::open(empty.as_ptr(), flags) }
    } else {
        let flags = if cloexec { libc::MFD_CLOEXEC } else { 0 };
        // SAFETY: the name is NUL-terminated; memfd_create only creates an fd.
        unsafe { libc::memfd_create(c"mirrord-remote-file".as_ptr(), flags) }
    };
    if fd < 0 { Err(errno()) } else { Ok(fd) }
}

/// A private empty directory that stands in for remote directories (created once per machine and user).
pub(crate) fn empty_directory() -> Option<&'static CStr> {
    static EMPTY: OnceLock<Option<CString>> = OnceLock::new();
    EMPTY
        .get_or_init(|| {
            let base = std::env::temp_dir();
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            let path = base.join(format!(".mirrord-layer-empty-{uid}"));
            let _ = std::fs::DirBuilder::new().create(&path);
            let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir());
            is_dir
                .then(|| CString::new(path.into_os_string().into_vec()).ok())
                .flatten()
        })
        .as_deref()
}

/// What a `stat`-like call found.
#[derive(Debug)]
pub(crate) enum Stat {
    /// The target's metadata, for the shim to write out.
    Remote(Metadata),
    /// The original ran on a mapped local path, filled the caller's buffer and returned this.
    Local(c_int),
}

/// `stat`/`lstat` and the path forms of `fstatat`/`statx`. `local` runs the original with another path.
pub(crate) fn stat_path(
    dirfd: Option<RawFd>,
    path: &CStr,
    follow_symlinks: bool,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<Stat> {
    match resolve(dirfd, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => match from_libc(local(&mapped)) {
            Outcome::Handled(value) => Outcome::Handled(Stat::Local(value)),
            Outcome::Fail(errno) => Outcome::Fail(errno),
            Outcome::Bypass(reason) => Outcome::Bypass(reason),
        },
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(
                metadata_of(file_request(FileRequest::Stat {
                    path,
                    follow_symlinks,
                }))
                .map(Stat::Remote),
            )
        }
    }
}

/// `access`, `faccessat`.
pub(crate) fn access(
    dirfd: Option<RawFd>,
    path: &CStr,
    mode: c_int,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    path_operation(dirfd, path, Intent::Read, local, |path| {
        FileRequest::Access {
            path,
            mode: AccessMode::from_raw(mode),
        }
    })
}

/// `mkdir`.
pub(crate) fn mkdir(
    path: &CStr,
    mode: c_uint,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Mkdir { path, mode }
    })
}

/// `unlink`.
pub(crate) fn unlink(path: &CStr, local: impl FnOnce(&CStr) -> c_int) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Unlink { path }
    })
}

/// `rmdir`.
pub(crate) fn rmdir(path: &CStr, local: impl FnOnce(&CStr) -> c_int) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Rmdir { path }
    })
}

/// An operation on one path answered by `Done`.
fn path_operation(
    dirfd: Option<RawFd>,
    path: &CStr,
    intent: Intent,
    local: impl FnOnce(&CStr) -> c_int,
    request: impl FnOnce(TargetPath) -> FileRequest,
) -> Outcome<c_int> {
    match resolve(dirfd, path, intent) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(match file_request(request(path)) {
                Ok(FileResponse::Done) => Ok(0),
                Ok(other) => Err(unexpected_file(&other)),
                Err(error) => Err(error),
            })
        }
    }
}

/// `rename`: both paths on the same side, else `EXDEV`.
pub(crate) fn rename(
    from: &CStr,
    to: &CStr,
    local: impl FnOnce(&CStr, &CStr) -> c_int,
) -> Outcome<c_int> {
    let from_resolved = resolve(None, from, Intent::Write);
    let to_resolved = resolve(None, to, Intent::Write);
    let local_path = |resolved: &Resolved, original: &CStr| -> Option<CString> {
        match resolved {
            Resolved::Local => Some(original.to_owned()),
            Resolved::LocalMapped(mapped) => Some(mapped.clone()),
            _ => None,
        }
    };
    match (&from_resolved, &to_resolved) {
        (Resolved::Local, Resolved::Local) => Outcome::Bypass("local paths"),
        (Resolved::NotFound, _) | (_, Resolved::NotFound) => Outcome::Fail(libc::ENOENT),
        (Resolved::Remote(from), Resolved::Remote(to)) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(
                match file_request(FileRequest::Rename {
                    from: from.clone(),
                    to: to.clone(),
                }) {
                    Ok(FileResponse::Done) => Ok(0),
                    Ok(other) => Err(unexpected_file(&other)),
                    Err(error) => Err(error),
                },
            )
        }
        _ => match (
            local_path(&from_resolved, from),
            local_path(&to_resolved, to),
        ) {
            (Some(from), Some(to)) => from_libc(local(&from, &to)),
            _ => Outcome::Fail(libc::EXDEV),
        },
    }
}

/// `readlink`.
pub(crate) fn readlink(
    path: &CStr,
    buffer: &mut [MaybeUninit<u8>],
    local: impl FnOnce(&CStr) -> isize,
) -> Outcome<isize> {
    match resolve(None, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(match file_request(FileRequest::Readlink { path }) {
                Ok(FileResponse::LinkTarget(target)) => {
                    Ok(copy_out(buffer, target.as_bytes()) as isize)
                }
                Ok(other) => Err(unexpected_file(&other)),
                Err(error) => Err(error),
            })
        }
    }
}

/// `getxattr` (`follow_symlinks`) and `lgetxattr`: the target's value of attribute `name`, copied into
/// `value` (`size` 0 asks only for its length; too small a buffer is `ERANGE`, as on the target).
pub(crate) fn getxattr(
    path: &CStr,
    name: &CStr,
    value: &mut [MaybeUninit<u8>],
    follow_symlinks: bool,
    local: impl FnOnce(&CStr) -> isize,
) -> Outcome<isize> {
    xattr_operation(path, value, local, |path| FileRequest::Getxattr {
        path,
        name: name.to_bytes().to_vec(),
        follow_symlinks,
    })
}

/// `listxattr` (`follow_symlinks`) and `llistxattr`: the target's attribute names, each NUL-terminated.
pub(crate) fn listxattr(
    path: &CStr,
    list: &mut [MaybeUninit<u8>],
    follow_symlinks: bool,
    local: impl FnOnce(&CStr) -> isize,
) -> Outcome<isize> {
    xattr_operation(path, list, local, |path| FileRequest::Listxattr {
        path,
        follow_symlinks,
    })
}

/// An extended-attribute call on one path whose answer is bytes for the caller's buffer.
fn xattr_operation(
    path: &CStr,
    buffer: &mut [MaybeUninit<u8>],
    local: impl FnOnce(&CStr) -> isize,
    request: impl FnOnce(TargetPath) -> FileRequest,
) -> Outcome<isize> {
    match resolve(None, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            let bytes = match file_request(request(path)) {
                Ok(FileResponse::Xattr(bytes)) => bytes,
                Ok(other) => return remote::<isize>(Err(unexpected_file(&other))),
                Err(error) => return remote(Err(error)),
            };
            let len = isize::try_from(bytes.len()).unwrap_or(isize::MAX);
            if buffer.is_empty() {
                Outcome::Handled(len)
            } else if buffer.len() < bytes.len() {
                Outcome::Fail(libc::ERANGE)
            } else {
                Outcome::Handled(copy_out(buffer, &bytes) as isize)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_real_fds_with_their_own_identity() {
        let first = make_placeholder(false, true).unwrap();
        let second = make_placeholder(false, true).unwrap();
        let directory = make_placeholder(true, true).unwrap();
        assert_ne!(placeholder_identity(first), placeholder_identity(second));
        assert!(placeholder_identity(directory).is_some());
        for fd in [first, second, directory] {
            // SAFETY: each fd was created above and is closed once.
            unsafe { libc::close(fd) };
        }
    }
}
