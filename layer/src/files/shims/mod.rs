//! The file shims: the `extern "C"` functions libc's patched file functions jump to. Each one checks the
//! guard (and, for fd calls, the fd table: an fd the layer does not track costs one atomic load), turns
//! its raw arguments into safe views, runs the logic in [`crate::files`], and returns.
//!
//! One submodule per family: [`open`], [`io`] (read, write, seek, mmap), [`fds`] (close, dup, fcntl,
//! close_range), [`stat`], [`paths`] (access, readlink, mkdir, unlink, rmdir, rename, xattrs) and
//! [`dirs`] (directory streams).
//!
//! Aliases (`open64` of `open`, `lseek64` of `lseek`, `__read_nocancel` of `read`, …) are found at the same
//! address and served by the first shim; their hooks exist so that the alias is still caught where libc
//! keeps a separate body. Their wrappers differ only in the hook they name, so they are written once, by
//! [`alias_shims!`].
//!
//! Variadic functions (`open`, `openat`, `fcntl`) are declared with their optional argument as a fixed
//! one: on the Linux x86-64 and AArch64 calling conventions variadic integer arguments travel in the same
//! registers as fixed ones, so the shim reads what the caller passed (garbage when the caller passed
//! nothing, and then it is not used) and passes it on unchanged.

mod dirs;
mod fds;
mod io;
mod open;
mod paths;
mod stat;

use std::ffi::CStr;

use crate::detour::DetourGuard;
use crate::fd_table::{FDS, FdEntry};
use crate::hooks::Installer;

/// The remote file behind `fd`, with the guard that keeps the layer's own calls out of its hooks
/// while it serves this one; `None` when the call is not the layer's to serve (an fd it does not
/// track, or a call made by the layer itself).
fn remote_file(fd: std::ffi::c_int) -> Option<(u32, DetourGuard)> {
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return None;
    };
    Some((id, DetourGuard::enter()?))
}

/// glibc's internal functions carry this symbol version.
const PRIVATE: &[&CStr] = &[c"GLIBC_PRIVATE"];
/// The `__xstat` family survives only as compat symbols of the original architecture version.
#[cfg(target_arch = "x86_64")]
const COMPAT: &[&CStr] = &[c"GLIBC_2.2.5"];
#[cfg(target_arch = "aarch64")]
const COMPAT: &[&CStr] = &[c"GLIBC_2.17"];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const COMPAT: &[&CStr] = &[];

/// Defines the `extern "C"` wrappers of a family of aliases. Each wrapper passes its own hook, its C
/// arguments and any extra constants to one shared function and returns what that returns:
///
/// ```ignore
/// alias_shims! {
///     read_common(fd: c_int, buffer: *mut c_void, count: size_t) -> ssize_t;
///     read_shim => READ;
///     read_nocancel_shim => READ_NOCANCEL;
/// }
/// ```
///
/// With `leaf` before the shared function's name, that function is a decision (returning
/// [`crate::detour::Leaf`]) and the wrapper calls the original itself, in tail position (see
/// [`crate::detour::leaf`]); `original = f` names a function to call instead of the hook's original,
/// given the hook, the arguments and the extras.
///
/// The shared function must be an `unsafe fn` whose contract is the C function's own: the wrapper
/// passes on its caller's arguments unchanged.
macro_rules! alias_shims {
    (
        leaf $decide:ident $args:tt -> $ret:ty, original = $original:ident;
        $($shim:ident => $hook:ident $(, $extra:expr)*;)+
    ) => {
        $($crate::files::shims::alias_shims!(@leaf $decide, $original, $args, $ret, $shim, $hook, ($($extra),*));)+
    };
    (
        leaf $decide:ident $args:tt -> $ret:ty;
        $($shim:ident => $hook:ident $(, $extra:expr)*;)+
    ) => {
        $($crate::files::shims::alias_shims!(@leaf $decide, original, $args, $ret, $shim, $hook, ($($extra),*));)+
    };
    (
        $common:ident $args:tt -> $ret:ty;
        $($shim:ident => $hook:ident $(, $extra:expr)*;)+
    ) => {
        $($crate::files::shims::alias_shims!(@plain $common, $args, $ret, $shim, $hook, ($($extra),*));)+
    };
    (
        @plain $common:ident, ($($arg:ident: $ty:ty),* $(,)?), $ret:ty, $shim:ident, $hook:ident,
        ($($extra:expr),*)
    ) => {
        unsafe extern "C" fn $shim($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's arguments under the C function's contract, passed on unchanged.
            unsafe { $common(&$hook, $($arg,)* $($extra),*) }
        }
    };
    (
        @leaf $decide:ident, original, ($($arg:ident: $ty:ty),* $(,)?), $ret:ty, $shim:ident,
        $hook:ident, ($($extra:expr),*)
    ) => {
        unsafe extern "C" fn $shim($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's arguments under the C function's contract, passed on unchanged.
            match unsafe { $decide(&$hook, $($arg,)* $($extra),*) } {
                $crate::detour::Leaf::Return(result) => result,
                // SAFETY: libc's function with the caller's arguments.
                $crate::detour::Leaf::Original => unsafe { ($hook.original())($($arg),*) },
            }
        }
    };
    (
        @leaf $decide:ident, $original:ident, ($($arg:ident: $ty:ty),* $(,)?), $ret:ty,
        $shim:ident, $hook:ident, ($($extra:expr),*)
    ) => {
        unsafe extern "C" fn $shim($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's arguments under the C function's contract, passed on unchanged.
            match unsafe { $decide(&$hook, $($arg,)* $($extra),*) } {
                $crate::detour::Leaf::Return(result) => result,
                // SAFETY: libc's function (see the `original` named at the use site) with the
                // caller's arguments.
                $crate::detour::Leaf::Original => unsafe {
                    $original(&$hook, $($arg,)* $($extra),*)
                },
            }
        }
    };
}
use alias_shims;

/// Hooks that keep the fd table right (`close`, `dup*`, `fcntl`, `close_range`): needed whenever the
/// layer tracks fds, which includes sockets and the layer's own connection, so they are installed in
/// every mode.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install_fd_hooks(installer: &mut Installer) {
    // SAFETY: forwarded contract.
    unsafe { fds::install(installer) };
}

/// Hooks for paths and remote fds, when the file feature is on.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install_path_hooks(installer: &mut Installer) {
    // SAFETY: forwarded contract, for each family.
    unsafe {
        open::install(installer);
        io::install(installer);
        stat::install(installer);
        paths::install(installer);
        dirs::install(installer);
    }
}
