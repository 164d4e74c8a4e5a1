//! The target's file metadata written out as this platform's `struct stat` and `struct statx`.

use mirrord_protocol::files::Metadata;

// The `*64` functions take `struct stat64`, which has the same layout as `struct stat` on 64-bit Linux:
// the shims serve both with one type.
const _: () = assert!(std::mem::size_of::<libc::stat>() == std::mem::size_of::<libc::stat64>());
// `libc::statx` must fit in the kernel's 256-byte `struct statx` that callers allocate.
const _: () = assert!(std::mem::size_of::<libc::statx>() <= 256);

/// `metadata` as a `struct stat`.
pub(crate) fn to_stat(metadata: &Metadata) -> libc::stat {
    // SAFETY: `struct stat` is plain integers; all zeroes is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    stat.st_dev = metadata.dev;
    stat.st_ino = metadata.ino;
    stat.st_mode = metadata.mode as libc::mode_t;
    stat.st_nlink = metadata.nlink as libc::nlink_t;
    stat.st_uid = metadata.uid;
    stat.st_gid = metadata.gid;
    stat.st_rdev = metadata.rdev;
    stat.st_size = clamp(metadata.size);
    stat.st_blksize = clamp(metadata.blksize);
    stat.st_blocks = clamp(metadata.blocks);
    stat.st_atime = metadata.atime.seconds;
    stat.st_atime_nsec = i64::from(metadata.atime.nanoseconds);
    stat.st_mtime = metadata.mtime.seconds;
    stat.st_mtime_nsec = i64::from(metadata.mtime.nanoseconds);
    stat.st_ctime = metadata.ctime.seconds;
    stat.st_ctime_nsec = i64::from(metadata.ctime.nanoseconds);
    stat
}

/// `metadata` as a `struct statx` with the basic fields (no birth time).
pub(crate) fn to_statx(metadata: &Metadata) -> libc::statx {
    // SAFETY: `struct statx` is plain integers; all zeroes is a valid value.
    let mut statx: libc::statx = unsafe { std::mem::zeroed() };
    let timestamp = |time: &mirrord_protocol::files::Timestamp| {
        // SAFETY: plain integers; all zeroes is valid (the padding field is private).
        let mut timestamp: libc::statx_timestamp = unsafe { std::mem::zeroed() };
        timestamp.tv_sec = time.seconds;
        timestamp.tv_nsec = time.nanoseconds;
        timestamp
    };
    statx.stx_mask = libc::STATX_BASIC_STATS;
    statx.stx_blksize = u32::try_from(metadata.blksize).unwrap_or(u32::MAX);
    statx.stx_nlink = u32::try_from(metadata.nlink).unwrap_or(u32::MAX);
    statx.stx_uid = metadata.uid;
    statx.stx_gid = metadata.gid;
    statx.stx_mode = metadata.mode as u16;
    statx.stx_ino = metadata.ino;
    statx.stx_size = metadata.size;
    statx.stx_blocks = metadata.blocks;
    statx.stx_atime = timestamp(&metadata.atime);
    statx.stx_mtime = timestamp(&metadata.mtime);
    statx.stx_ctime = timestamp(&metadata.ctime);
    statx.stx_rdev_major = libc::major(metadata.rdev);
    statx.stx_rdev_minor = libc::minor(metadata.rdev);
    statx.stx_dev_major = libc::major(metadata.dev);
    statx.stx_dev_minor = libc::minor(metadata.dev);
    statx
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use mirrord_protocol::files::Timestamp;

    use super::*;

    fn sample() -> Metadata {
        Metadata {
            dev: libc::makedev(8, 1),
            ino: 42,
            mode: 0o100644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            rdev: 0,
            size: 1234,
            blksize: 4096,
            blocks: 8,
            atime: Timestamp {
                seconds: 1_700_000_000,
                nanoseconds: 5,
            },
            mtime: Timestamp {
                seconds: 1_700_000_001,
                nanoseconds: 6,
            },
            ctime: Timestamp {
                seconds: 1_700_000_002,
                nanoseconds: 7,
            },
        }
    }

    #[test]
    fn stat_carries_every_field() {
        let stat = to_stat(&sample());
        assert_eq!(stat.st_ino, 42);
        assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFREG);
        assert_eq!(stat.st_size, 1234);
        assert_eq!(stat.st_blksize, 4096);
        assert_eq!(stat.st_uid, 1000);
        assert_eq!((stat.st_mtime, stat.st_mtime_nsec), (1_700_000_001, 6));
        assert_eq!(libc::major(stat.st_dev), 8);
    }

    #[test]
    fn statx_carries_the_basic_fields() {
        let statx = to_statx(&sample());
        assert_eq!(statx.stx_mask, libc::STATX_BASIC_STATS);
        assert_eq!(statx.stx_size, 1234);
        assert_eq!((statx.stx_dev_major, statx.stx_dev_minor), (8, 1));
        assert_eq!(statx.stx_ctime.tv_sec, 1_700_000_002);
        assert_eq!(u32::from(statx.stx_mode), 0o100644);
    }
}
