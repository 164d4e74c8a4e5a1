//! File operations: the requests the layer forwards for paths that are read from the target, their
//! responses, and the portable types they use (open flags, `struct stat` metadata, directory entries).
//!
//! Paths and names are bytes, as on Linux, so names that are not UTF-8 survive the trip.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    bytes::Bytes,
    ids::{DirHandle, FileHandle},
};

/// A path in the target's file system, as raw bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetPath(#[serde(with = "crate::wire_bytes")] Vec<u8>);

impl TargetPath {
    /// Wraps raw path bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Gives the raw bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The path as a `std` path (exact, bytes are kept).
    #[cfg(unix)]
    pub fn as_path(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(&self.0))
    }
}

impl fmt::Debug for TargetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

/// Shows the path, with invalid UTF-8 replaced.
impl fmt::Display for TargetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl From<&str> for TargetPath {
    fn from(path: &str) -> Self {
        Self(path.as_bytes().to_vec())
    }
}

impl From<String> for TargetPath {
    fn from(path: String) -> Self {
        Self(path.into_bytes())
    }
}

#[cfg(unix)]
impl From<&std::path::Path> for TargetPath {
    fn from(path: &std::path::Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        Self(path.as_os_str().as_bytes().to_vec())
    }
}

/// `open(2)` flags without platform numbers. Flags not listed here are handled by the layer or ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenFlags {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// `O_APPEND`.
    pub append: bool,
    /// `O_CREAT`.
    pub create: bool,
    /// `O_TRUNC`.
    pub truncate: bool,
    /// `O_EXCL`.
    pub exclusive: bool,
    /// `O_DIRECTORY`.
    pub directory: bool,
    /// `O_NOFOLLOW`.
    pub nofollow: bool,
    /// `O_CLOEXEC` (kept so the layer can restore it; the agent's own handle is always close-on-exec).
    pub cloexec: bool,
}

impl OpenFlags {
    /// `O_RDONLY` and nothing else.
    pub const READ_ONLY: Self = Self {
        read: true,
        write: false,
        append: false,
        create: false,
        truncate: false,
        exclusive: false,
        directory: false,
        nofollow: false,
        cloexec: false,
    };

    /// Reads this platform's `open(2)` flags; unknown bits are dropped.
    pub fn from_raw(flags: i32) -> Self {
        let access = flags & libc::O_ACCMODE;
        Self {
            read: access == libc::O_RDONLY || access == libc::O_RDWR,
            write: access == libc::O_WRONLY || access == libc::O_RDWR,
            append: flags & libc::O_APPEND != 0,
            create: flags & libc::O_CREAT != 0,
            truncate: flags & libc::O_TRUNC != 0,
            exclusive: flags & libc::O_EXCL != 0,
            directory: flags & libc::O_DIRECTORY != 0,
            nofollow: flags & libc::O_NOFOLLOW != 0,
            cloexec: flags & libc::O_CLOEXEC != 0,
        }
    }

    /// This platform's `open(2)` flags. Neither `read` nor `write` gives `O_RDONLY`.
    pub fn to_raw(self) -> i32 {
        let mut flags = match (self.read, self.write) {
            (_, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (true, true) => libc::O_RDWR,
        };
        for (set, bit) in [
            (self.append, libc::O_APPEND),
            (self.create, libc::O_CREAT),
            (self.truncate, libc::O_TRUNC),
            (self.exclusive, libc::O_EXCL),
            (self.directory, libc::O_DIRECTORY),
            (self.nofollow, libc::O_NOFOLLOW),
            (self.cloexec, libc::O_CLOEXEC),
        ] {
            if set {
                flags |= bit;
            }
        }
        flags
    }
}

/// Where an `lseek` offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Whence {
    /// `SEEK_SET`: from the start.
    Start,
    /// `SEEK_CUR`: from the current position.
    Current,
    /// `SEEK_END`: from the end.
    End,
    /// `SEEK_DATA`: the next data at or after the offset.
    Data,
    /// `SEEK_HOLE`: the next hole at or after the offset.
    Hole,
}

impl Whence {
    /// Reads this platform's `SEEK_*` value.
    pub fn from_raw(whence: i32) -> Option<Self> {
        match whence {
            libc::SEEK_SET => Some(Self::Start),
            libc::SEEK_CUR => Some(Self::Current),
            libc::SEEK_END => Some(Self::End),
            libc::SEEK_DATA => Some(Self::Data),
            libc::SEEK_HOLE => Some(Self::Hole),
            _ => None,
        }
    }

    /// This platform's `SEEK_*` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Start => libc::SEEK_SET,
            Self::Current => libc::SEEK_CUR,
            Self::End => libc::SEEK_END,
            Self::Data => libc::SEEK_DATA,
            Self::Hole => libc::SEEK_HOLE,
        }
    }
}

/// What `access(2)` checks. All false is `F_OK` (existence only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessMode {
    /// `R_OK`.
    pub read: bool,
    /// `W_OK`.
    pub write: bool,
    /// `X_OK`.
    pub execute: bool,
}

impl AccessMode {
    /// Reads this platform's `access(2)` mode bits.
    pub fn from_raw(mode: i32) -> Self {
        Self {
            read: mode & libc::R_OK != 0,
            write: mode & libc::W_OK != 0,
            execute: mode & libc::X_OK != 0,
        }
    }

    /// This platform's `access(2)` mode bits.
    pub fn to_raw(self) -> i32 {
        let mut mode = libc::F_OK;
        if self.read {
            mode |= libc::R_OK;
        }
        if self.write {
            mode |= libc::W_OK;
        }
        if self.execute {
            mode |= libc::X_OK;
        }
        mode
    }
}

/// A point in time as `struct timespec` has it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before it).
    pub seconds: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanoseconds: u32,
}

/// Every field of `struct stat`; also what a `statx` call is answered with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Metadata {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// `st_nlink`.
    pub nlink: u64,
    /// `st_uid`.
    pub uid: u32,
    /// `st_gid`.
    pub gid: u32,
    /// `st_rdev`.
    pub rdev: u64,
    /// `st_size`, in bytes.
    pub size: u64,
    /// `st_blksize`.
    pub blksize: u64,
    /// `st_blocks`, in 512-byte units.
    pub blocks: u64,
    /// `st_atim`.
    pub atime: Timestamp,
    /// `st_mtim`.
    pub mtime: Timestamp,
    /// `st_ctim`.
    pub ctime: Timestamp,
}

impl Metadata {
    /// The file type from `mode`.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }
}

#[cfg(unix)]
impl From<&std::fs::Metadata> for Metadata {
    fn from(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let timestamp = |seconds: i64, nanoseconds: i64| Timestamp {
            seconds,
            nanoseconds: u32::try_from(nanoseconds).unwrap_or(0),
        };
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            mode: metadata.mode(),
            nlink: metadata.nlink(),
            uid: metadata.uid(),
            gid: metadata.gid(),
            rdev: metadata.rdev(),
            size: metadata.size(),
            blksize: metadata.blksize(),
            blocks: metadata.blocks(),
            atime: timestamp(metadata.atime(), metadata.atime_nsec()),
            mtime: timestamp(metadata.mtime(), metadata.mtime_nsec()),
            ctime: timestamp(metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// The type of a file, as in `st_mode` or `d_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileType {
    /// Not known (`DT_UNKNOWN`): the reader must `stat` the entry.
    #[default]
    Unknown,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix domain socket.
    Socket,
}

impl FileType {
    /// The type bits (`S_IFMT`) of an `st_mode`.
    pub fn from_mode(mode: u32) -> Self {
        // `mode_t` is narrower than `u32` on some platforms; the type bits fit in any of them.
        let format = (mode as libc::mode_t) & libc::S_IFMT;
        let is = |bits: libc::mode_t| format == bits;
        if is(libc::S_IFREG) {
            Self::Regular
        } else if is(libc::S_IFDIR) {
            Self::Directory
        } else if is(libc::S_IFLNK) {
            Self::Symlink
        } else if is(libc::S_IFIFO) {
            Self::Fifo
        } else if is(libc::S_IFCHR) {
            Self::CharDevice
        } else if is(libc::S_IFBLK) {
            Self::BlockDevice
        } else if is(libc::S_IFSOCK) {
            Self::Socket
        } else {
            Self::Unknown
        }
    }

    /// The `d_type` value of a `struct dirent`.
    pub fn to_dirent_type(self) -> u8 {
        match self {
            Self::Unknown => libc::DT_UNKNOWN,
            Self::Regular => libc::DT_REG,
            Self::Directory => libc::DT_DIR,
            Self::Symlink => libc::DT_LNK,
            Self::Fifo => libc::DT_FIFO,
            Self::CharDevice => libc::DT_CHR,
            Self::BlockDevice => libc::DT_BLK,
            Self::Socket => libc::DT_SOCK,
        }
    }

    /// Reads a `d_type` value; unknown values give [`FileType::Unknown`].
    pub fn from_dirent_type(d_type: u8) -> Self {
        match d_type {
            libc::DT_REG => Self::Regular,
            libc::DT_DIR => Self::Directory,
            libc::DT_LNK => Self::Symlink,
            libc::DT_FIFO => Self::Fifo,
            libc::DT_CHR => Self::CharDevice,
            libc::DT_BLK => Self::BlockDevice,
            libc::DT_SOCK => Self::Socket,
            _ => Self::Unknown,
        }
    }
}

#[cfg(unix)]
impl From<std::fs::FileType> for FileType {
    fn from(file_type: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_file() {
            Self::Regular
        } else if file_type.is_dir() {
            Self::Directory
        } else if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_char_device() {
            Self::CharDevice
        } else if file_type.is_block_device() {
            Self::BlockDevice
        } else if file_type.is_socket() {
            Self::Socket
        } else {
            Self::Unknown
        }
    }
}

/// One entry of a directory listing.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirEntry {
    /// The entry's name (no slash), as raw bytes.
    #[serde(with = "crate::wire_bytes")]
    pub name: Vec<u8>,
    /// `d_ino`.
    pub inode: u64,
    /// `d_type`.
    pub file_type: FileType,
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirEntry")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("inode", &self.inode)
            .field("file_type", &self.file_type)
            .finish()
    }
}

/// A file operation on the target's file system. Each has exactly one successful [`FileResponse`] shape,
/// named in its docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRequest {
    /// `open(2)` → [`FileResponse::Opened`].
    Open {
        /// The file to open.
        path: TargetPath,
        /// How to open it.
        flags: OpenFlags,
        /// Permission bits for a created file (before the agent's umask).
        mode: u32,
    },
    /// `read(2)` at the handle's position → [`FileResponse::Read`] (empty at end of file).
    Read {
        /// An open file.
        handle: FileHandle,
        /// At most this many bytes; the agent reads at most [`MAX_IO_CHUNK`](crate::MAX_IO_CHUNK).
        len: u32,
    },
    /// `pread(2)` → [`FileResponse::Read`].
    Pread {
        /// An open file.
        handle: FileHandle,
        /// Where to read from.
        offset: u64,
        /// At most this many bytes; the agent reads at most [`MAX_IO_CHUNK`](crate::MAX_IO_CHUNK).
        len: u32,
    },
    /// `write(2)` at the handle's position → [`FileResponse::Written`].
    Write {
        /// An open file.
        handle: FileHandle,
        /// The bytes, at most [`MAX_IO_CHUNK`](crate::MAX_IO_CHUNK) of them.
        data: Bytes,
    },
    /// `pwrite(2)` → [`FileResponse::Written`].
    Pwrite {
        /// An open file.
        handle: FileHandle,
        /// Where to write.
        offset: u64,
        /// The bytes, at most [`MAX_IO_CHUNK`](crate::MAX_IO_CHUNK) of them.
        data: Bytes,
    },
    /// `lseek(2)` → [`FileResponse::Position`].
    Lseek {
        /// An open file.
        handle: FileHandle,
        /// Offset from `whence`.
        offset: i64,
        /// Where the offset counts from.
        whence: Whence,
    },
    /// `close(2)` → [`FileResponse::Done`].
    Close {
        /// The file to close.
        handle: FileHandle,
    },
    /// `fstat(2)` → [`FileResponse::Metadata`].
    Fstat {
        /// An open file.
        handle: FileHandle,
    },
    /// `stat(2)` or, without `follow_symlinks`, `lstat(2)` → [`FileResponse::Metadata`].
    Stat {
        /// The file to look at.
        path: TargetPath,
        /// `stat` when true, `lstat` when false.
        follow_symlinks: bool,
    },
    /// `access(2)` → [`FileResponse::Done`].
    Access {
        /// The file to check.
        path: TargetPath,
        /// What to check.
        mode: AccessMode,
    },
    /// `readlink(2)` → [`FileResponse::LinkTarget`].
    Readlink {
        /// The symbolic link.
        path: TargetPath,
    },
    /// `opendir(3)` → [`FileResponse::DirOpened`].
    Opendir {
        /// The directory.
        path: TargetPath,
    },
    /// A batch of `readdir(3)` → [`FileResponse::DirEntries`] (empty at the end of the directory).
    Readdir {
        /// An open directory.
        handle: DirHandle,
        /// At most this many entries.
        max_entries: u32,
    },
    /// `closedir(3)` → [`FileResponse::Done`].
    Closedir {
        /// The directory to close.
        handle: DirHandle,
    },
    /// `mkdir(2)` → [`FileResponse::Done`].
    Mkdir {
        /// The directory to create.
        path: TargetPath,
        /// Permission bits (before the agent's umask).
        mode: u32,
    },
    /// `unlink(2)` → [`FileResponse::Done`].
    Unlink {
        /// The file to remove.
        path: TargetPath,
    },
    /// `rmdir(2)` → [`FileResponse::Done`].
    Rmdir {
        /// The directory to remove.
        path: TargetPath,
    },
    /// `rename(2)` → [`FileResponse::Done`].
    Rename {
        /// The current path.
        from: TargetPath,
        /// The new path.
        to: TargetPath,
    },
    /// `ftruncate(2)` → [`FileResponse::Done`].
    Ftruncate {
        /// An open file.
        handle: FileHandle,
        /// The new length.
        len: u64,
    },
    /// `getxattr(2)` or, without `follow_symlinks`, `lgetxattr(2)` → [`FileResponse::Xattr`] (the
    /// whole value; the layer fits it to the caller's buffer).
    Getxattr {
        /// The file.
        path: TargetPath,
        /// The attribute's name, e.g. `user.comment` (bytes, without the NUL).
        name: Vec<u8>,
        /// `getxattr` when true, `lgetxattr` when false.
        follow_symlinks: bool,
    },
    /// `listxattr(2)` or, without `follow_symlinks`, `llistxattr(2)` → [`FileResponse::Xattr`] (the
    /// names, each followed by a NUL, as the system call gives them).
    Listxattr {
        /// The file.
        path: TargetPath,
        /// `listxattr` when true, `llistxattr` when false.
        follow_symlinks: bool,
    },
}

/// The successful answer to a [`FileRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileResponse {
    /// The file is open.
    Opened(FileHandle),
    /// Bytes read; empty at end of file.
    Read(Bytes),
    /// How many bytes were written.
    Written(u64),
    /// The new file position.
    Position(u64),
    /// File metadata.
    Metadata(Metadata),
    /// Where a symbolic link points.
    LinkTarget(TargetPath),
    /// The directory is open.
    DirOpened(DirHandle),
    /// The next entries; empty at the end of the directory.
    DirEntries(Vec<DirEntry>),
    /// Success without a value.
    Done,
    /// An extended attribute's value, or the list of names.
    Xattr(Bytes),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_survive_raw_conversion() {
        let all = OpenFlags {
            read: true,
            write: true,
            append: true,
            create: true,
            truncate: true,
            exclusive: true,
            directory: true,
            nofollow: true,
            cloexec: true,
        };
        for flags in [
            OpenFlags::READ_ONLY,
            all,
            OpenFlags {
                read: false,
                write: true,
                ..all
            },
        ] {
            assert_eq!(OpenFlags::from_raw(flags.to_raw()), flags);
        }
        let raw = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK;
        let flags = OpenFlags::from_raw(raw);
        assert!(flags.write && !flags.read && flags.create && flags.truncate && !flags.append);
        assert_eq!(
            flags.to_raw(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
    }

    #[test]
    fn whence_and_access_raw_values() {
        for whence in [
            Whence::Start,
            Whence::Current,
            Whence::End,
            Whence::Data,
            Whence::Hole,
        ] {
            assert_eq!(Whence::from_raw(whence.to_raw()), Some(whence));
        }
        assert_eq!(Whence::from_raw(99), None);
        assert_eq!(AccessMode::default().to_raw(), libc::F_OK);
        let mode = AccessMode::from_raw(libc::R_OK | libc::X_OK);
        assert_eq!(
            mode,
            AccessMode {
                read: true,
                write: false,
                execute: true
            }
        );
        assert_eq!(mode.to_raw(), libc::R_OK | libc::X_OK);
    }

    #[test]
    fn file_types_from_mode_and_dirent() {
        let all = [
            FileType::Unknown,
            FileType::Regular,
            FileType::Directory,
            FileType::Symlink,
            FileType::Fifo,
            FileType::CharDevice,
            FileType::BlockDevice,
            FileType::Socket,
        ];
        for file_type in all {
            assert_eq!(
                FileType::from_dirent_type(file_type.to_dirent_type()),
                file_type
            );
        }
        assert_eq!(FileType::from_mode(0o100644), FileType::Regular);
        assert_eq!(FileType::from_mode(0o040755), FileType::Directory);
        assert_eq!(FileType::from_mode(0o120777), FileType::Symlink);
        assert_eq!(FileType::from_mode(0o644), FileType::Unknown);
    }

    #[cfg(unix)]
    #[test]
    fn metadata_from_std_matches_the_file() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let std_metadata = std::fs::metadata(&manifest).unwrap();
        let metadata = Metadata::from(&std_metadata);
        assert_eq!(metadata.size, std_metadata.len());
        assert_eq!(metadata.file_type(), FileType::Regular);
        assert_eq!(FileType::from(std_metadata.file_type()), FileType::Regular);
        assert!(metadata.nlink >= 1 && metadata.ino != 0);
        assert!(metadata.mtime.nanoseconds < 1_000_000_000);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_keep_their_bytes() {
        let path = TargetPath::from_bytes(b"/tmp/\xff\xfe".to_vec());
        assert_eq!(TargetPath::from(path.as_path()), path);
        assert_eq!(path.to_string(), "/tmp/\u{fffd}\u{fffd}");
    }

    #[test]
    fn debug_of_bulk_data_shows_the_length() {
        let request = FileRequest::Write {
            handle: FileHandle(3),
            data: Bytes::from(vec![0; 4096]),
        };
        assert_eq!(
            format!("{request:?}"),
            "Write { handle: FileHandle(3), data: Bytes(<4096 bytes>) }"
        );
    }
}
