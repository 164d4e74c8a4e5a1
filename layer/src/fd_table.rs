//! The lock-free table of file descriptors the layer cares about: remote files (their placeholder fds),
//! sockets of the inet families, and the layer's own connection. One atomic word per fd, indexed by fd,
//! so that a hooked call on any other fd costs one load.
//!
//! fds at or above the table's capacity are never tracked (the layer refuses to map a remote file there).

use std::sync::atomic::{AtomicU64, Ordering};

/// How many fds the process-wide table covers (512 KiB of zero pages until touched).
pub(crate) const CAPACITY: usize = 1 << 16;

/// The process-wide table.
pub(crate) static FDS: FdTable<CAPACITY> = FdTable::new();

/// What an fd is to the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdEntry {
    /// The placeholder of a remote file: an id in the remote-file registry.
    RemoteFile(u32),
    /// An `AF_INET`/`AF_INET6` socket.
    Socket(SocketInfo),
    /// The layer's own connection to the intproxy.
    LayerConnection,
}

/// What `socket()` was asked for, and whether the layer keeps state for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketInfo {
    /// `AF_INET` or `AF_INET6`.
    pub(crate) domain: u8,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, … without the creation flags.
    pub(crate) kind: u8,
    /// The layer has state for this socket (it connected it through the intproxy, or relays its datagrams).
    pub(crate) managed: bool,
}

const KIND_SHIFT: u32 = 62;
const KIND_REMOTE_FILE: u64 = 1;
const KIND_SOCKET: u64 = 2;
const KIND_LAYER: u64 = 3;
const MANAGED_BIT: u64 = 1 << 16;

impl FdEntry {
    fn encode(self) -> u64 {
        match self {
            Self::RemoteFile(id) => (KIND_REMOTE_FILE << KIND_SHIFT) | u64::from(id),
            Self::Socket(info) => {
                (KIND_SOCKET << KIND_SHIFT)
                    | (u64::from(info.domain) << 8)
                    | u64::from(info.kind)
                    | if info.managed { MANAGED_BIT } else { 0 }
            }
            Self::LayerConnection => KIND_LAYER << KIND_SHIFT,
        }
    }

    fn decode(word: u64) -> Option<Self> {
        match word >> KIND_SHIFT {
            KIND_REMOTE_FILE => Some(Self::RemoteFile(word as u32)),
            KIND_SOCKET => Some(Self::Socket(SocketInfo {
                domain: (word >> 8) as u8,
                kind: word as u8,
                managed: word & MANAGED_BIT != 0,
            })),
            KIND_LAYER => Some(Self::LayerConnection),
            _ => None,
        }
    }
}

/// `N` atomic words, one per fd; 0 means "not the layer's".
pub(crate) struct FdTable<const N: usize> {
    slots: [AtomicU64; N],
}

/// The fd does not fit in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange;

impl<const N: usize> FdTable<N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { AtomicU64::new(0) }; N],
        }
    }

    fn slot(&self, fd: i32) -> Option<&AtomicU64> {
        usize::try_from(fd)
            .ok()
            .and_then(|index| self.slots.get(index))
    }

    /// What `fd` is; `None` for every fd the layer does not track. This is the hot path of every hooked
    /// fd call: one bounds check and one load.
    #[inline]
    pub(crate) fn get(&self, fd: i32) -> Option<FdEntry> {
        let word = self.slot(fd)?.load(Ordering::Acquire);
        if word == 0 {
            return None;
        }
        FdEntry::decode(word)
    }

    /// Records `entry` for `fd`; returns what was recorded before (a stale entry the caller releases).
    pub(crate) fn set(&self, fd: i32, entry: FdEntry) -> Result<Option<FdEntry>, OutOfRange> {
        let slot = self.slot(fd).ok_or(OutOfRange)?;
        Ok(FdEntry::decode(slot.swap(entry.encode(), Ordering::AcqRel)))
    }

    /// Forgets `fd`; returns what was recorded.
    pub(crate) fn take(&self, fd: i32) -> Option<FdEntry> {
        let slot = self.slot(fd)?;
        if slot.load(Ordering::Acquire) == 0 {
            return None;
        }
        FdEntry::decode(slot.swap(0, Ordering::AcqRel))
    }

    /// Replaces `expected` by `new` (or forgets it, for `None`) only if `fd` still holds `expected`.
    pub(crate) fn replace_if(&self, fd: i32, expected: FdEntry, new: Option<FdEntry>) -> bool {
        let Some(slot) = self.slot(fd) else {
            return false;
        };
        slot.compare_exchange(
            expected.encode(),
            new.map_or(0, FdEntry::encode),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(managed: bool) -> FdEntry {
        FdEntry::Socket(SocketInfo {
            domain: libc::AF_INET6 as u8,
            kind: libc::SOCK_DGRAM as u8,
            managed,
        })
    }

    #[test]
    fn entries_survive_encoding() {
        for entry in [
            FdEntry::RemoteFile(0),
            FdEntry::RemoteFile(u32::MAX),
            socket(false),
            socket(true),
            FdEntry::LayerConnection,
        ] {
            assert_eq!(FdEntry::decode(entry.encode()), Some(entry));
            assert_ne!(entry.encode(), 0, "{entry:?} must not look untracked");
        }
    }

    #[test]
    fn untracked_and_out_of_range_fds_are_none() {
        let table = FdTable::<8>::new();
        assert_eq!(table.get(3), None);
        assert_eq!(table.get(-1), None);
        assert_eq!(table.get(8), None);
        assert_eq!(table.set(8, FdEntry::RemoteFile(1)), Err(OutOfRange));
        assert_eq!(table.set(-1, FdEntry::RemoteFile(1)), Err(OutOfRange));
        assert_eq!(table.take(100), None);
    }

    #[test]
    fn set_returns_the_stale_entry_and_take_forgets() {
        let table = FdTable::<8>::new();
        assert_eq!(table.set(4, FdEntry::RemoteFile(1)), Ok(None));
        assert_eq!(
            table.set(4, FdEntry::RemoteFile(2)),
            Ok(Some(FdEntry::RemoteFile(1)))
        );
        assert_eq!(table.get(4), Some(FdEntry::RemoteFile(2)));
        assert_eq!(table.take(4), Some(FdEntry::RemoteFile(2)));
        assert_eq!(table.get(4), None);
        assert_eq!(table.take(4), None);
    }

    #[test]
    fn replace_if_only_replaces_the_expected_entry() {
        let table = FdTable::<8>::new();
        table.set(5, socket(false)).unwrap();
        assert!(!table.replace_if(5, socket(true), None));
        assert!(table.replace_if(5, socket(false), Some(socket(true))));
        assert_eq!(table.get(5), Some(socket(true)));
        assert!(table.replace_if(5, socket(true), None));
        assert_eq!(table.get(5), None);
    }

    #[test]
    fn concurrent_writers_to_different_fds_do_not_interfere() {
        let table = std::sync::Arc::new(FdTable::<64>::new());
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let table = table.clone();
                std::thread::spawn(move || {
                    for round in 0..1000u32 {
                        let fd = thread * 16 + (round % 16) as i32;
                        table.set(fd, FdEntry::RemoteFile(round)).unwrap();
                        assert_eq!(table.get(fd), Some(FdEntry::RemoteFile(round)));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
