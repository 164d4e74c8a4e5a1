//! Which process this is, across `fork`, `vfork` and `posix_spawn`.
//!
//! - A forked child has its own copy of the layer's memory: its first remote call opens its own intproxy
//!   connection (see [`crate::connection`]), announcing the parent's pid. A `pthread_atfork` handler
//!   records the new pid and keeps the layer's locks consistent: `prepare` takes them all, so no other
//!   thread holds one at the moment of the fork, and both sides release them afterwards. That includes
//!   the read-ahead buffers of streamed files, whose lock is held across a round trip to the intproxy:
//!   `prepare` waits for reads in progress and gives the buffered bytes back (the file position is
//!   shared with the child, the buffer would not be; see `files::registry`).
//! - A `vfork`-style child (`posix_spawn`, `vfork`) shares the parent's memory until it execs and runs no
//!   fork handlers. It sees a pid that differs from [`pid`]; the layer then changes nothing
//!   ([`in_borrowed_memory`]) and lets every call through to the originals.

use std::{
    any::Any,
    cell::RefCell,
    sync::atomic::{AtomicU32, Ordering},
};

/// The pid this copy of the layer's memory belongs to.
static PID: AtomicU32 = AtomicU32::new(0);
/// The pid of the process this one was forked from, when the layer was active there (0: none).
static PARENT_PID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// The locks `prepare` took, released by `parent` and `child` (all three run in the forking thread).
    static HELD_FOR_FORK: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Records this process and installs the fork handlers.
pub(crate) fn initialize() {
    PID.store(std::process::id(), Ordering::Release);
    // SAFETY: the three handlers are `extern "C" fn()` that stay valid for the life of the process (this
    // library is never unloaded: it is preloaded).
    let result = unsafe {
        libc::pthread_atfork(
            Some(prepare_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        )
    };
    if result != 0 {
        tracing::warn!(
            result,
            "pthread_atfork failed; forked children may stall on a layer lock"
        );
    }
}

/// The pid this copy of the layer's memory belongs to (no system call).
pub(crate) fn pid() -> u32 {
    PID.load(Ordering::Acquire)
}

/// The pid of the process this one was forked from, when the layer was active there.
pub(crate) fn parent_pid() -> Option<u32> {
    Some(PARENT_PID.load(Ordering::Acquire)).filter(|pid| *pid != 0)
}

/// Whether this code runs in a `vfork`-style child that borrows its parent's memory: nothing may change
/// there. One system call; only the paths that are about to do remote work ask.
pub(crate) fn in_borrowed_memory() -> bool {
    std::process::id() != pid()
}

/// Every lock a forked child may need, in a fixed order. No layer code holds two of them at once, so the
/// order cannot deadlock (the files entry takes the read-ahead lock before the registry, and reads never
/// hold the registry while they take the read-ahead lock).
const FORK_LOCKS: &[fn() -> Box<dyn Any>] = &[
    crate::files::lock_for_fork,
    crate::files::dirs::lock_for_fork,
    crate::net::lock_for_fork,
    crate::dns::lock_for_fork,
];

extern "C" fn prepare_fork() {
    let _ = std::panic::catch_unwind(|| {
        let guards: Vec<Box<dyn Any>> = FORK_LOCKS.iter().map(|lock| lock()).collect();
        let _ = HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = guards);
    });
}

extern "C" fn after_fork_in_parent() {
    let _ = std::panic::catch_unwind(release_fork_locks);
}

extern "C" fn after_fork_in_child() {
    let _ = std::panic::catch_unwind(|| {
        let parent = PID.swap(std::process::id(), Ordering::AcqRel);
        PARENT_PID.store(parent, Ordering::Release);
        release_fork_locks();
    });
}

fn release_fork_locks() {
    let _ = HELD_FOR_FORK.try_with(|held| held.borrow_mut().clear());
}
