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
        how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
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
                let entries = list_directory(&fd).map_err(|e| io_error(&e))?;
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

/// Every entry of an open directory (without `.` and `..`, like mirrord's listing).
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
            ["config.yaml", "escape-absolute", "escape-relative", "new"]
        );
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
}
