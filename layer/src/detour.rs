//! The plumbing every shim uses: the thread-local re-entrancy guard, the [`Outcome`] that safe logic
//! returns, panic catching, errno, and safe views of the raw arguments.
//!
//! A shim does four things, in order: (1) if the guard is held, call the original; (2) turn its raw
//! pointers into safe views, each in its own small `unsafe` block; (3) run safe logic through [`run`];
//! (4) [`Outcome::finish`] sets errno and picks the return value (or calls the original).
//!
//! A panic inside the logic is caught by [`run`] (an unwind out of an `extern "C"` function would abort
//! the user's process): it is logged and the call falls back to the original function.

use std::{
    cell::Cell,
    ffi::{CStr, c_char},
    mem::MaybeUninit,
    panic::{AssertUnwindSafe, catch_unwind},
};

thread_local! {
    /// Set while this thread runs layer code; libc calls made meanwhile (by the layer, by the original
    /// functions it calls, by the hooking engine) go straight to the originals.
    static IN_LAYER: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread holds the re-entrancy guard; released on drop.
pub(crate) struct DetourGuard {
    /// This thread's flag. A raw pointer, so the guard is neither `Send` nor `Sync`, and so that the
    /// release does not look the thread-local up a second time (that costs a call in a shared library).
    flag: *const Cell<bool>,
}

impl DetourGuard {
    /// Takes the guard, or `None` when this thread already holds it (or its thread-locals are gone).
    #[inline]
    pub(crate) fn enter() -> Option<Self> {
        IN_LAYER
            .try_with(|in_layer| {
                if in_layer.replace(true) {
                    None
                } else {
                    Some(Self {
                        flag: in_layer as *const Cell<bool>,
                    })
                }
            })
            .ok()
            .flatten()
    }
}

impl Drop for DetourGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `flag` points to this thread's `IN_LAYER`: the guard cannot leave the thread (it is not
        // `Send`), and the thread-local has no destructor, so it lives as long as the thread.
        unsafe { (*self.flag).set(false) };
    }
}

/// What the safe logic behind a shim decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<T> {
    /// The layer did the work: return this value (errno is left as the caller had it).
    Handled(T),
    /// Not the layer's business: call the original function with the caller's arguments.
    Bypass(&'static str),
    /// The operation failed: set errno to this value and return the function's failure value.
    Fail(i32),
}

impl<T> Outcome<T> {
    /// The shim's return value: the handled value, the original's, or `failure` with errno set.
    /// `saved_errno` is the caller's errno when the shim started; it is restored unless the call fails, so
    /// that layer work never leaks an errno (callers such as `readdir` loops check it after success).
    pub(crate) fn finish(self, saved_errno: i32, original: impl FnOnce() -> T, failure: T) -> T {
        match self {
            Self::Handled(value) => {
                set_errno(saved_errno);
                value
            }
            Self::Bypass(_) => {
                set_errno(saved_errno);
                original()
            }
            Self::Fail(errno) => {
                set_errno(errno);
                failure
            }
        }
    }
}

impl<T> Outcome<T> {
    /// Transforms the handled value.
    pub(crate) fn map<U>(self, transform: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Self::Handled(value) => Outcome::Handled(transform(value)),
            Self::Bypass(reason) => Outcome::Bypass(reason),
            Self::Fail(errno) => Outcome::Fail(errno),
        }
    }
}

/// What a shim of a plain system call wrapper does next (see [`leaf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf<T> {
    /// Return this (errno is already set).
    Return(T),
    /// Call the original function with the caller's arguments.
    Original,
}

/// The decision half of a shim for a function whose original calls no other hooked function (a plain
/// system call wrapper such as `open`, `fstatat`, `access`): first `shortcut`, a pure check that calls no
/// libc function (so it needs no guard) and says "certainly the original" for the hot local cases; then it
/// takes the guard (or answers [`Leaf::Original`] at once when it is held), runs `logic` through [`run`],
/// releases the guard, and sets errno. Both closures run under `catch_unwind`.
///
/// The shim calls the original itself, after this returned and in tail position with nothing of its own
/// on the stack, so the compiler emits a jump and the system call returns straight to the caller: every
/// extra return after a system call costs a return-prediction miss on kernels that clear the return stack
/// buffer (about 8 ns each, measured here), which is most of what a hook costs otherwise.
#[inline(always)]
pub(crate) fn leaf<T>(
    function: &'static str,
    shortcut: impl FnOnce() -> bool,
    logic: impl FnOnce() -> Outcome<T>,
    failure: T,
) -> Leaf<T> {
    if catch_unwind(AssertUnwindSafe(shortcut)).unwrap_or(false) {
        return Leaf::Original;
    }
    let (outcome, saved) = {
        let Some(_guard) = DetourGuard::enter() else {
            return Leaf::Original;
        };
        let saved = errno();
        (run(function, logic), saved)
    };
    match outcome {
        Outcome::Handled(value) => {
            set_errno(saved);
            Leaf::Return(value)
        }
        Outcome::Fail(errno) => {
            set_errno(errno);
            Leaf::Return(failure)
        }
        Outcome::Bypass(_) => {
            set_errno(saved);
            Leaf::Original
        }
    }
}

/// Runs a shim's logic, turning a panic into a bypass (after logging it). `function` names the hooked
/// function, for the log. Inlined: on the hot path this is a plain call with a landing pad.
#[inline(always)]
pub(crate) fn run<T>(function: &'static str, logic: impl FnOnce() -> Outcome<T>) -> Outcome<T> {
    match catch_unwind(AssertUnwindSafe(logic)) {
        Ok(outcome) => outcome,
        Err(payload) => report_panic(function, payload),
    }
}

/// Logs a caught panic; the call falls back to the original.
#[cold]
#[inline(never)]
fn report_panic<T>(function: &'static str, payload: Box<dyn std::any::Any + Send>) -> Outcome<T> {
    let message = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(function, %message, "the layer panicked; calling the original function");
    Outcome::Bypass("panic")
}

/// This thread's errno.
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
pub(crate) fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Views a C string argument.
///
/// # Safety
///
/// `pointer` is null or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn c_str<'a>(pointer: *const c_char) -> Option<&'a CStr> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated (this function's contract).
    Some(unsafe { CStr::from_ptr(pointer) })
}

/// Views an output buffer of `len` bytes.
///
/// # Safety
///
/// `pointer` is null (then `len` is ignored) or valid for writes of `len` bytes, not aliased, for `'a`.
pub(crate) unsafe fn out_buffer<'a>(
    pointer: *mut libc::c_void,
    len: usize,
) -> Option<&'a mut [MaybeUninit<u8>]> {
    if pointer.is_null() {
        return (len == 0).then_some(&mut []);
    }
    // SAFETY: valid for `len` writable bytes (this function's contract); `MaybeUninit` makes no claim
    // about the current contents.
    Some(unsafe { std::slice::from_raw_parts_mut(pointer.cast::<MaybeUninit<u8>>(), len) })
}

/// Views an input buffer of `len` bytes.
///
/// # Safety
///
/// `pointer` is null (then `len` is ignored) or valid for reads of `len` initialised bytes for `'a`.
pub(crate) unsafe fn in_buffer<'a>(pointer: *const libc::c_void, len: usize) -> Option<&'a [u8]> {
    if pointer.is_null() {
        return (len == 0).then_some(&[]);
    }
    // SAFETY: valid for `len` readable bytes (this function's contract).
    Some(unsafe { std::slice::from_raw_parts(pointer.cast::<u8>(), len) })
}

/// Copies as much of `source` as fits into `target`; returns how many bytes were copied.
pub(crate) fn copy_out(target: &mut [MaybeUninit<u8>], source: &[u8]) -> usize {
    let len = target.len().min(source.len());
    for (slot, byte) in target[..len].iter_mut().zip(source) {
        slot.write(*byte);
    }
    len
}

/// A locked mutex, even if a panic poisoned it (the layer's state stays usable after a caught panic).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_is_not_reentrant_and_is_released_on_drop() {
        let guard = DetourGuard::enter().expect("first entry");
        assert!(DetourGuard::enter().is_none());
        drop(guard);
        assert!(DetourGuard::enter().is_some());
    }

    #[test]
    fn the_guard_is_per_thread() {
        let _guard = DetourGuard::enter().expect("first entry");
        std::thread::spawn(|| assert!(DetourGuard::enter().is_some()))
            .join()
            .unwrap();
    }

    /// Layer work leaves errno changed (its own system calls); the caller must see its own errno back
    /// on success, and only the failure's errno on failure.
    #[test]
    fn finish_restores_the_callers_errno_unless_the_call_fails() {
        set_errno(libc::EBADF);
        assert_eq!(Outcome::Handled(3).finish(7, || 99, -1), 3);
        assert_eq!(errno(), 7, "a handled call restores the caller's errno");

        set_errno(libc::EBADF);
        let original = || {
            assert_eq!(errno(), 7, "the original runs with the caller's errno");
            99
        };
        assert_eq!(Outcome::<i32>::Bypass("test").finish(7, original, -1), 99);

        set_errno(libc::EBADF);
        assert_eq!(Outcome::<i32>::Fail(libc::ENOENT).finish(7, || 99, -1), -1);
        assert_eq!(errno(), libc::ENOENT);
    }

    #[test]
    fn leaf_restores_the_callers_errno_after_layer_work() {
        set_errno(7);
        let handled = leaf(
            "test",
            || false,
            || {
                set_errno(libc::EBADF);
                Outcome::Handled(3)
            },
            -1,
        );
        assert_eq!(handled, Leaf::Return(3));
        assert_eq!(errno(), 7);

        let bypassed = leaf(
            "test",
            || false,
            || {
                set_errno(libc::EBADF);
                Outcome::<i32>::Bypass("test")
            },
            -1,
        );
        assert_eq!(bypassed, Leaf::Original);
        assert_eq!(errno(), 7);

        let failed = leaf("test", || false, || Outcome::<i32>::Fail(libc::EACCES), -1);
        assert_eq!(failed, Leaf::Return(-1));
        assert_eq!(errno(), libc::EACCES);
    }

    #[test]
    fn a_panic_becomes_a_bypass() {
        let outcome: Outcome<i32> = run("test", || panic!("boom"));
        assert_eq!(outcome, Outcome::Bypass("panic"));
    }

    #[test]
    fn copy_out_stops_at_the_shorter_side() {
        let mut target = [MaybeUninit::new(0u8); 3];
        assert_eq!(copy_out(&mut target, b"abcdef"), 3);
        assert_eq!(copy_out(&mut target, b"z"), 1);
        // SAFETY: every element was initialised above.
        let bytes: Vec<u8> = target.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert_eq!(bytes, b"zbc");
    }
}
