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
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn table() -> Mutex<FileTable> {
        Mutex::new(FileTable::default())
    }

    /// A fake target root: a temp dir with a file, a symlink escaping upwards and one absolute.
    fn fake_root() -> (PathBuf, TargetRoot) {
        let dir = std::env::temp_dir().join(format!(
            "mirrord-agent-files-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::write(dir.join("app/config.yaml"), "inside: true\n").unwrap();
        std::os::unix::fs::symlink(
            "../../../../../../etc/passwd",
            dir.join("app/escape-relative"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("app/escape-absolute")).unwrap();
        let root = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&dir)
            .unwrap();
        (
            dir,
            TargetRoot {
                root: OwnedFd::from(root),
            },
        )
    }

    fn rand_suffix() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    fn read_all(root: &TargetRoot, path: &str) -> RemoteResult<Vec<u8>> {
        let table = table();
        let FileResponse::Opened(handle) = root.handle(
            &table,
            FileRequest::Open {
                path: path.into(),
                flags: OpenFlags::READ_ONLY,
                mode: 0,
            },
        )?
        else {
            panic!("not an open response");
        };
        let FileResponse::Read(bytes) =
            root.handle(&table, FileRequest::Read { handle, len: 4096 })?
        else {
            panic!()
        };
        Ok(bytes.into_vec())
    }

    #[test]
    fn reads_files_inside_the_root() {
        let (dir, root) = fake_root();
        assert_eq!(
            read_all(&root, "/app/config.yaml").unwrap(),
            b"inside: true\n"
        );
        assert_eq!(
            read_all(&root, "app/config.yaml").unwrap(),
            b"inside: true\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dot_dot_and_symlinks_cannot_leave_the_root() {
        let (dir, root) = fake_root();
        for path in [
            "/../../../../etc/passwd",
            "/app/escape-relative",
            "/app/escape-absolute",
            "/app/../../etc/passwd",
        ] {
            let result = read_all(&root, path);
            assert_eq!(
                result.map_err(|e| e.code),
                Err(ErrorCode::NotFound),
                "{path} must not reach the host's /etc/passwd"
            );
        }
        let lstat = root.handle(
            &table(),
            FileRequest::Stat {
                path: "/app/escape-absolute".into(),
                follow_symlinks: false,
            },
        );
        assert!(
            matches!(lstat, Ok(FileResponse::Metadata(m)) if m.file_type() == FileType::Symlink)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_creates_and_removes() {
        let (dir, root) = fake_root();
        let table = table();
        root.handle(
            &table,
            FileRequest::Mkdir {
                path: "/app/new".into(),
                mode: 0o755,
            },
        )
        .unwrap();
        let FileResponse::DirOpened(handle) = root
            .handle(
                &table,
                FileRequest::Opendir {
                    path: "/app".into(),
                },
            )
            .unwrap()
        else {
            panic!()
        };
        let FileResponse::DirEntries(entries) = root
            .handle(
                &table,
                FileRequest::Readdir {
                    handle,
                    max_entries: 100,
                },
            )
            .unwrap()
        else {
            panic!()
        };
        let mut names: Vec<_> = entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".",
                "..",
                "config.yaml",
                "escape-absolute",
                "escape-relative",
                "new"
            ]
        );
        let inode = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name.as_bytes())
                .unwrap()
                .inode
        };
        assert_eq!(
            inode("."),
            std::fs::metadata(dir.join("app")).unwrap().ino()
        );
        assert_eq!(inode(".."), std::fs::metadata(&dir).unwrap().ino());
        root.handle(
            &table,
            FileRequest::Rename {
                from: "/app/config.yaml".into(),
                to: "/app/new/moved.yaml".into(),
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.join("app/new/moved.yaml")).unwrap(),
            b"inside: true\n"
        );
        root.handle(
            &table,
            FileRequest::Unlink {
                path: "/app/new/moved.yaml".into(),
            },
        )
        .unwrap();
        root.handle(
            &table,
            FileRequest::Rmdir {
                path: "/app/new".into(),
            },
        )
        .unwrap();
        assert!(!dir.join("app/new").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Regression: `O_TMPFILE` shares the `O_DIRECTORY` bit, so a directory opened with a mode
    /// (Python always passes 0o777) was refused with EINVAL.
    #[test]
    fn directories_open_with_o_directory_whatever_the_mode() {
        let (dir, root) = fake_root();
        let flags = OpenFlags {
            directory: true,
            ..OpenFlags::READ_ONLY
        };
        let opened = root.handle(
            &table(),
            FileRequest::Open {
                path: "/app".into(),
                flags,
                mode: 0o777,
            },
        );
        assert!(matches!(opened, Ok(FileResponse::Opened(_))), "{opened:?}");
        let not_a_directory = root.handle(
            &table(),
            FileRequest::Open {
                path: "/app/config.yaml".into(),
                flags,
                mode: 0o777,
            },
        );
        assert_eq!(not_a_directory.map_err(|e| e.errno()), Err(libc::ENOTDIR));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_roots_parent_is_the_root_itself() {
        let (dir, root) = fake_root();
        let table = table();
        let FileResponse::DirOpened(handle) = root
            .handle(&table, FileRequest::Opendir { path: "/".into() })
            .unwrap()
        else {
            panic!()
        };
        let FileResponse::DirEntries(entries) = root
            .handle(
                &table,
                FileRequest::Readdir {
                    handle,
                    max_entries: 2,
                },
            )
            .unwrap()
        else {
            panic!()
        };
        let inodes: Vec<_> = entries.iter().map(|e| (e.name.clone(), e.inode)).collect();
        let own = std::fs::metadata(&dir).unwrap().ino();
        assert_eq!(inodes, [(b".".to_vec(), own), (b"..".to_vec(), own)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn extended_attributes_are_the_targets() {
        let (dir, root) = fake_root();
        let file = CString::new(dir.join("app/config.yaml").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path and name, and a value of the given length.
        let set = unsafe {
            libc::setxattr(
                file.as_ptr(),
                c"user.comment".as_ptr(),
                b"hi".as_ptr().cast(),
                2,
                0,
            )
        };
        assert_eq!(set, 0, "setxattr: {}", std::io::Error::last_os_error());
        let table = table();
        let value = root.handle(
            &table,
            FileRequest::Getxattr {
                path: "/app/config.yaml".into(),
                name: b"user.comment".to_vec(),
                follow_symlinks: true,
            },
        );
        assert_eq!(value, Ok(FileResponse::Xattr(Bytes::from(b"hi"))));
        let names = root.handle(
            &table,
            FileRequest::Listxattr {
                path: "/app/config.yaml".into(),
                follow_symlinks: false,
            },
        );
        assert_eq!(
            names,
            Ok(FileResponse::Xattr(Bytes::from(b"user.comment\0")))
        );
        let missing = root.handle(
            &table,
            FileRequest::Getxattr {
                path: "/app/config.yaml".into(),
                name: b"user.missing".to_vec(),
                follow_symlinks: true,
            },
        );
        assert_eq!(missing.map_err(|e| e.errno()), Err(libc::ENODATA));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
