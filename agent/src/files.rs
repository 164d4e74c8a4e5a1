//! File operations inside the target's root, confined with `openat2(RESOLVE_IN_ROOT)`.
//!
//! Every path from a client is resolved by the kernel as if `/proc/PID/root` were `/`: `..` stops at
//! that root and absolute symlinks are resolved inside it, so no path or symlink can reach a file
//! of the host. Operations on a path's last component (`lstat`, `readlink`, `mkdir`, `unlink`,
//! `rename`) first open the parent directory that way and then name the component relative to it
//! through `/proc/self/fd/N/NAME`, where NAME has no slash and is never `.` or `..`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mirrord_protocol::files::{
    DirEntry, FileRequest, FileResponse, FileType, Metadata, OpenFlags, TargetPath, Whence,
};
use mirrord_protocol::frame::MAX_IO_CHUNK;
use mirrord_protocol::ids::{DirHandle, FileHandle};
use mirrord_protocol::{Bytes, ErrorCode, RemoteError, RemoteResult};

/// The target's root directory, the anchor of every path a client sends.
#[derive(Debug)]
pub(crate) struct TargetRoot {
    root: OwnedFd,
}

/// One client's open files and directories.
#[derive(Debug, Default)]
pub(crate) struct FileTable {
    next_id: u64,
    files: HashMap<u64, Arc<File>>,
    dirs: HashMap<u64, DirListing>,
}

#[derive(Debug)]
struct DirListing {
    entries: Vec<DirEntry>,
    position: usize,
}

fn io_error(error: &std::io::Error) -> RemoteError {
    RemoteError::from(error)
}

fn bad_handle() -> RemoteError {
    RemoteError::new(ErrorCode::BadHandle, "no such open file")
}

impl TargetRoot {
    /// The root of process `pid` (`/proc/PID/root`), or this machine's `/` for targetless sessions.
    pub(crate) fn open(pid: Option<u32>) -> std::io::Result<TargetRoot> {
        let path = match pid {
            Some(pid) => format!("/proc/{pid}/root"),
            None => "/".to_owned(),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)?;
        Ok(TargetRoot {
            root: OwnedFd::from(file),
        })
    }

    /// `openat2(root, path, flags, mode)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`.
    fn open_in_root(&self, path: &[u8], flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
        let path =
            CString::new(path).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `open_how` is a plain C struct for which all-zero bytes are a valid value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        // `O_TMPFILE` includes the `O_DIRECTORY` bit: test all of it, or every directory open would
        // carry a mode, which openat2 refuses (EINVAL).
        how.mode = if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
            u64::from(mode & 0o7777)
        } else {
            0
        };
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: the root fd is open for this struct's lifetime, `path` is NUL-terminated, `how` is a
        // valid `open_how` and its size is passed; the kernel only reads these.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                path.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Opens a file like `open(2)` inside the root.
    pub(crate) fn open_file(
        &self,
        path: &[u8],
        flags: OpenFlags,
        mode: u32,
    ) -> std::io::Result<File> {
        self.open_in_root(path, flags.to_raw(), mode)
            .map(File::from)
    }

    /// `path` opened `O_PATH` inside the root (to name a socket file as `/proc/self/fd/N`).
    pub(crate) fn open_path(&self, path: &[u8]) -> std::io::Result<OwnedFd> {
        self.open_in_root(path, libc::O_PATH, 0)
    }

    /// The directory containing `path` (opened inside the root) and `path`'s last component, as a
    /// `/proc/self/fd/N/NAME` path; for `/`, `.` and `..` endings, the path itself opened `O_PATH`.
    fn last_component(&self, path: &[u8]) -> std::io::Result<(OwnedFd, PathBuf)> {
        let trimmed = trim_trailing_slashes(path);
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(0) => (&b"/"[..], &trimmed[1..]),
            Some(index) => (&trimmed[..index], &trimmed[index + 1..]),
            None => (&b"."[..], trimmed),
        };
        if name.is_empty() || name == b"." || name == b".." {
            let fd = self.open_in_root(
                if trimmed.is_empty() { b"/" } else { trimmed },
                libc::O_PATH,
                0,
            )?;
            let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            return Ok((fd, proc_path));
        }
        let parent_fd = self.open_in_root(parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let mut proc_path = PathBuf::from(format!("/proc/self/fd/{}", parent_fd.as_raw_fd()));
        proc_path.push(OsStr::from_bytes(name));
        Ok((parent_fd, proc_path))
    }

    /// Serves one file request for the client owning `table`. Blocking: run it off the async runtime.
    pub(crate) fn handle(
        &self,
        table: &Mutex<FileTable>,
        request: FileRequest,
    ) -> RemoteResult<FileResponse> {
        match request {
            FileRequest::Open { path, flags, mode } => {
                let file = self
                    .open_file(path.as_bytes(), flags, mode)
                    .map_err(|e| io_error(&e))?;
                let mut table = lock(table);
                let id = table.allocate();
                table.files.insert(id, Arc::new(file));
                Ok(FileResponse::Opened(FileHandle(id)))
            }
            FileRequest::Read { handle, len } => {
                let file = get_file(table, handle)?;
                let mut buffer = vec![0; len.min(MAX_IO_CHUNK) as usize];
                let read = (&*file).read(&mut buffer).map_err(|e| io_error(&e))?;
                buffer.truncate(read);
                Ok(FileResponse::Read(Bytes::from(buffer)))
            }
            FileRequest::Pread {
                handle,
                offset,
                len,
            } => {
                let file = get_file(table, handle)?;
                let mut buffer = vec![0; len.min(MAX_IO_CHUNK) as usize];
                let read = file
                    .read_at(&mut buffer, offset)
                    .map_err(|e| io_error(&e))?;
                buffer.truncate(read);
                Ok(FileResponse::Read(Bytes::from(buffer)))
            }
            FileRequest::Write { handle, data } => {
                let file = get_file(table, handle)?;
                let written = (&*file).write(&data).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Written(written as u64))
            }
            FileRequest::Pwrite {
                handle,
                offset,
                data,
            } => {
                let file = get_file(table, handle)?;
                let written = file.write_at(&data, offset).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Written(written as u64))
            }
            FileRequest::Lseek {
                handle,
                offset,
                whence,
            } => {
                let file = get_file(table, handle)?;
                let position = match whence {
                    Whence::Start => SeekFrom::Start(
                        u64::try_from(offset).map_err(|_| invalid("negative offset"))?,
                    ),
                    Whence::Current => SeekFrom::Current(offset),
                    Whence::End => SeekFrom::End(offset),
                    Whence::Data | Whence::Hole => {
                        return Err(RemoteError::new(
                            ErrorCode::Unsupported,
                            "SEEK_DATA/SEEK_HOLE are not supported",
                        ));
                    }
                };
                let position = (&*file).seek(position).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Position(position))
            }
            FileRequest::Close { handle } => {
                lock(table).files.remove(&handle.0).ok_or_else(bad_handle)?;
                Ok(FileResponse::Done)
            }
            FileRequest::Fstat { handle } => {
                let file = get_file(table, handle)?;
                let metadata = file.metadata().map_err(|e| io_error(&e))?;
                Ok(FileResponse::Metadata(Metadata::from(&metadata)))
            }
            FileRequest::Ftruncate { handle, len } => {
                let file = get_file(table, handle)?;
                file.set_len(len).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Done)
            }
            FileRequest::Stat {
                path,
                follow_symlinks,
            } => {
                let metadata = if follow_symlinks {
                    let fd = self
                        .open_in_root(path.as_bytes(), libc::O_PATH, 0)
                        .map_err(|e| io_error(&e))?;
                    File::from(fd).metadata()
                } else {
                    let (_parent, name) = self
                        .last_component(path.as_bytes())
                        .map_err(|e| io_error(&e))?;
                    std::fs::symlink_metadata(name)
                };
                Ok(FileResponse::Metadata(Metadata::from(
                    &metadata.map_err(|e| io_error(&e))?,
                )))
            }
            FileRequest::Access { path, mode } => {
                let fd = self
                    .open_in_root(path.as_bytes(), libc::O_PATH, 0)
                    .map_err(|e| io_error(&e))?;
                let metadata = File::from(fd).metadata().map_err(|e| io_error(&e))?;
                let permissions = metadata.permissions().mode();
                let wanted = [
                    (mode.read, 0o444),
                    (mode.write, 0o222),
                    (mode.execute, 0o111),
                ];
                if wanted
                    .iter()
                    .any(|&(asked, bits)| asked && permissions & bits == 0)
                {
                    return Err(RemoteError::new(
                        ErrorCode::PermissionDenied,
                        "permission denied",
                    ));
                }
                Ok(FileResponse::Done)
            }
            FileRequest::Readlink { path } => {
                let (_parent, name) = self
                    .last_component(path.as_bytes())
                    .map_err(|e| io_error(&e))?;
                let target = std::fs::read_link(name).map_err(|e| io_error(&e))?;
                Ok(FileResponse::LinkTarget(TargetPath::from(target.as_path())))
            }
            FileRequest::Opendir { path } => {
                let fd = self
                    .open_in_root(path.as_bytes(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| io_error(&e))?;
                let mut entries = self.dot_entries(&fd).map_err(|e| io_error(&e))?;
                entries.extend(list_directory(&fd).map_err(|e| io_error(&e))?);
                let mut table = lock(table);
                let id = table.allocate();
                table.dirs.insert(
                    id,
                    DirListing {
                        entries,
                        position: 0,
                    },
                );
                Ok(FileResponse::DirOpened(DirHandle(id)))
            }
            FileRequest::Readdir {
                handle,
                max_entries,
            } => {
                let mut table = lock(table);
                let listing = table.dirs.get_mut(&handle.0).ok_or_else(bad_handle)?;
                let end =
                    (listing.position + max_entries.max(1) as usize).min(listing.entries.len());
                let batch = listing.entries[listing.position..end].to_vec();
                listing.position = end;
                Ok(FileResponse::DirEntries(batch))
            }
            FileRequest::Closedir { handle } => {
                lock(table).dirs.remove(&handle.0).ok_or_else(bad_handle)?;
                Ok(FileResponse::Done)
            }
            FileRequest::Mkdir { path, mode } => {
                let (_parent, name) = self
                    .last_component(path.as_bytes())
                    .map_err(|e| io_error(&e))?;
                std::fs::DirBuilder::new()
                    .mode(mode & 0o7777)
                    .create(name)
                    .map_err(|e| io_error(&e))?;
                Ok(FileResponse::Done)
            }
            FileRequest::Unlink { path } => {
                let (_parent, name) = self
                    .last_component(path.as_bytes())
                    .map_err(|e| io_error(&e))?;
                std::fs::remove_file(name).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Done)
            }
            FileRequest::Rmdir { path } => {
                let (_parent, name) = self
                    .last_component(path.as_bytes())
                    .map_err(|e| io_error(&e))?;
                std::fs::remove_dir(name).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Done)
            }
            FileRequest::Getxattr {
                path,
                name,
                follow_symlinks,
            } => {
                let name =
                    CString::new(name).map_err(|_| invalid("a NUL in the attribute name"))?;
                let fd = self
                    .open_for_xattr(path.as_bytes(), follow_symlinks)
                    .map_err(|e| io_error(&e))?;
                let value = read_xattr(|buffer, size| {
                    // SAFETY: `fd_path` and `name` are NUL-terminated; `buffer` is valid for `size`
                    // writable bytes (or null with `size` 0, which asks for the length).
                    unsafe { libc::getxattr(fd_path(&fd).as_ptr(), name.as_ptr(), buffer, size) }
                })
                .map_err(|e| io_error(&e))?;
                Ok(FileResponse::Xattr(Bytes::from(value)))
            }
            FileRequest::Listxattr {
                path,
                follow_symlinks,
            } => {
                let fd = self
                    .open_for_xattr(path.as_bytes(), follow_symlinks)
                    .map_err(|e| io_error(&e))?;
                let names = read_xattr(|buffer, size| {
                    // SAFETY: `fd_path` is NUL-terminated; `buffer` is valid for `size` writable bytes
                    // (or null with `size` 0, which asks for the length).
                    unsafe { libc::listxattr(fd_path(&fd).as_ptr(), buffer.cast(), size) }
                })
                .map_err(|e| io_error(&e))?;
                Ok(FileResponse::Xattr(Bytes::from(names)))
            }
            FileRequest::Rename { from, to } => {
                let (_from_parent, from_name) = self
                    .last_component(from.as_bytes())
                    .map_err(|e| io_error(&e))?;
                let (_to_parent, to_name) = self
                    .last_component(to.as_bytes())
                    .map_err(|e| io_error(&e))?;
                std::fs::rename(from_name, to_name).map_err(|e| io_error(&e))?;
                Ok(FileResponse::Done)
            }
        }
    }
}

impl TargetRoot {
    /// `.` and `..` of an open directory, as the target lists them: `..` of the target's root is the
    /// root itself (its real parent is outside the target).
    fn dot_entries(&self, directory: &OwnedFd) -> std::io::Result<Vec<DirEntry>> {
        let own = fstat_at(directory, c"")?;
        let root = fstat_at(&self.root, c"")?;
        let parent = if (own.st_dev, own.st_ino) == (root.st_dev, root.st_ino) {
            own
        } else {
            fstat_at(directory, c"..")?
        };
        Ok([(b".".to_vec(), own), (b"..".to_vec(), parent)]
            .into_iter()
            .map(|(name, stat)| DirEntry {
                name,
                inode: stat.st_ino,
                file_type: FileType::Directory,
            })
            .collect())
    }

    /// `path` opened `O_PATH` inside the root (not following a final symlink unless asked), for the
    /// extended-attribute calls through `/proc/self/fd/N`.
    fn open_for_xattr(&self, path: &[u8], follow_symlinks: bool) -> std::io::Result<OwnedFd> {
        let nofollow = if follow_symlinks { 0 } else { libc::O_NOFOLLOW };
        self.open_in_root(path, libc::O_PATH | nofollow, 0)
    }
}

/// `fstatat(fd, name, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`.
fn fstat_at(fd: &OwnedFd, name: &std::ffi::CStr) -> std::io::Result<libc::stat> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open, `name` is NUL-terminated and `stat` is a writable `struct stat`.
    let result = unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded and filled the struct.
    Ok(unsafe { stat.assume_init() })
}

/// `/proc/self/fd/N` for an open fd, as a C string.
fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// Reads an extended attribute's value (or the names list) whose size may change between the call
/// that measures it and the one that reads it: `call(buffer, size)` is the system call.
fn read_xattr(
    call: impl Fn(*mut libc::c_void, usize) -> libc::ssize_t,
) -> std::io::Result<Vec<u8>> {
    for _ in 0..4 {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buffer = vec![0u8; size as usize];
        let read = call(buffer.as_mut_ptr().cast(), buffer.len());
        if read >= 0 {
            buffer.truncate(read as usize);
            return Ok(buffer);
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ERANGE) {
            return Err(error);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::ERANGE))
}

impl FileTable {
    fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn lock(table: &Mutex<FileTable>) -> std::sync::MutexGuard<'_, FileTable> {
    table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn get_file(table: &Mutex<FileTable>, handle: FileHandle) -> RemoteResult<Arc<File>> {
    lock(table)
        .files
        .get(&handle.0)
        .cloned()
        .ok_or_else(bad_handle)
}

fn invalid(message: &str) -> RemoteError {
    RemoteError::new(ErrorCode::InvalidInput, message)
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 1 && path[end - 1] == b'/' {
        end -= 1;
    }
    &path[..end]
}

/// Every entry of an open directory but `.` and `..` (which `std` leaves out; see `dot_entries`).
fn list_directory(directory: &OwnedFd) -> std::io::Result<Vec<DirEntry>> {
    let path = format!("/proc/self/fd/{}", directory.as_raw_fd());
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let file_type = entry
            .file_type()
            .map(FileType::from)
            .unwrap_or(FileType::Unknown);
        entries.push(DirEntry {
            name: entry.file_name().as_bytes().to_vec(),
            inode: entry.ino(),
            file_type,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
