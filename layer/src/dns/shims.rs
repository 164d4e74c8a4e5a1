//! The DNS shims: `getaddrinfo`, `freeaddrinfo`, `gethostbyname` and `gethostname`.

use std::{
    cell::RefCell,
    ffi::{CString, c_char, c_int},
};

use libc::{addrinfo, hostent, size_t};

use super::Query;
use crate::{
    detour::{DetourGuard, Outcome, c_str, copy_out, errno, out_buffer, run, set_errno},
    dns,
    hooks::{Installer, hooks},
};

type GetaddrinfoFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const addrinfo,
    *mut *mut addrinfo,
) -> c_int;
type FreeaddrinfoFn = unsafe extern "C" fn(*mut addrinfo);
type GethostbynameFn = unsafe extern "C" fn(*const c_char) -> *mut hostent;
type GethostnameFn = unsafe extern "C" fn(*mut c_char, size_t) -> c_int;
type GethostbynameRFn = unsafe extern "C" fn(
    *const c_char,
    *mut hostent,
    *mut c_char,
    size_t,
    *mut *mut hostent,
    *mut c_int,
) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions.
    unsafe {
        static GETADDRINFO: GetaddrinfoFn = c"getaddrinfo";
        static FREEADDRINFO: FreeaddrinfoFn = c"freeaddrinfo";
        static GETHOSTBYNAME: GethostbynameFn = c"gethostbyname";
        static GETHOSTNAME: GethostnameFn = c"gethostname";
        static GETHOSTBYNAME_R: GethostbynameRFn = c"gethostbyname_r";
    }
}

unsafe extern "C" {
    /// glibc's per-thread `h_errno`.
    fn __h_errno_location() -> *mut c_int;
}

/// Installs the DNS hooks. They are installed even when DNS is not resolved remotely: the shim then runs
/// libc's resolver with the guard held, which keeps its internal file reads and sockets local.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install(installer: &mut Installer, hostname: bool) {
    // SAFETY: every shim below is written for the C signature of the hook it is paired with, and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&GETADDRINFO, getaddrinfo_shim, &[]);
        installer.hook(&FREEADDRINFO, freeaddrinfo_shim, &[]);
        installer.hook(&GETHOSTBYNAME, gethostbyname_shim, &[]);
        installer.hook(&GETHOSTBYNAME_R, gethostbyname_r_shim, &[]);
        if hostname {
            installer.hook(&GETHOSTNAME, gethostname_shim, &[]);
        }
    }
}

unsafe extern "C" fn getaddrinfo_shim(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    result: *mut *mut addrinfo,
) -> c_int {
    let original = || {
        // SAFETY: libc's getaddrinfo with the caller's arguments.
        unsafe { (GETADDRINFO.original())(node, service, hints, result) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: getaddrinfo(3) takes a NUL-terminated node or null.
    let Some(node_view) = (unsafe { c_str(node) }) else {
        return original();
    };
    // SAFETY: getaddrinfo(3) takes a NUL-terminated service or null.
    let service_view = unsafe { c_str(service) };
    // SAFETY: getaddrinfo(3) takes null or a valid `addrinfo` as hints.
    let hints_view = unsafe { hints.as_ref() };
    // SAFETY: getaddrinfo(3) requires `result` to point to a writable `addrinfo *`.
    let Some(result_slot) = (unsafe { result.as_mut() }) else {
        return original();
    };
    let (Ok(node_text), Ok(service_text)) = (
        node_view.to_str(),
        service_view.map(|service| service.to_str()).transpose(),
    ) else {
        return original();
    };
    let query = Query {
        node: node_text.to_owned(),
        service: service_text.map(str::to_owned),
        family: hints_view.map_or(libc::AF_UNSPEC, |hints| hints.ai_family),
        socket_type: hints_view.map_or(0, |hints| hints.ai_socktype),
        protocol: hints_view.map_or(0, |hints| hints.ai_protocol),
        flags: hints_view.map_or(0, |hints| hints.ai_flags),
    };
    let saved = errno();
    run("getaddrinfo", || {
        dns::getaddrinfo(&query).map(|answer| match answer {
            Ok(head) => {
                *result_slot = head as *mut addrinfo;
                0
            }
            Err(eai) => eai,
        })
    })
    .finish(saved, original, libc::EAI_SYSTEM)
}

unsafe extern "C" fn freeaddrinfo_shim(list: *mut addrinfo) {
    let original = || {
        // SAFETY: libc's freeaddrinfo with the caller's list.
        unsafe { (FREEADDRINFO.original())(list) }
    };
    if list.is_null() || !dns::has_lists() {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    let outcome = run("freeaddrinfo", || {
        if dns::free_if_ours(list as usize) {
            Outcome::Handled(())
        } else {
            Outcome::Bypass("libc's list")
        }
    });
    outcome.finish(saved, original, ())
}

/// What `gethostbyname` returns points into this thread's storage, valid until its next call.
struct HostentStorage {
    entry: hostent,
    _name: CString,
    _addresses: Vec<[u8; 4]>,
    _address_pointers: Vec<*mut c_char>,
    _aliases: Vec<*mut c_char>,
}

thread_local! {
    static HOSTENT: RefCell<Option<Box<HostentStorage>>> = const { RefCell::new(None) };
}

unsafe extern "C" fn gethostbyname_shim(name: *const c_char) -> *mut hostent {
    let original = || {
        // SAFETY: libc's gethostbyname with the caller's name.
        unsafe { (GETHOSTBYNAME.original())(name) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: gethostbyname(3) takes a NUL-terminated name; null is left to the original.
    let Some(name_view) = (unsafe { c_str(name) }) else {
        return original();
    };
    let Ok(name_text) = name_view.to_str() else {
        return original();
    };
    let saved = errno();
    run("gethostbyname", || {
        dns::gethostbyname(name_text).map(|answer| match answer {
            Ok(addresses) => store_hostent(name_view.to_owned(), addresses),
            Err(h_errno) => {
                // SAFETY: `__h_errno_location` returns this thread's h_errno slot.
                unsafe { *__h_errno_location() = h_errno };
                std::ptr::null_mut()
            }
        })
    })
    .finish(saved, original, std::ptr::null_mut())
}

/// Builds the answer in this thread's storage and points at it.
fn store_hostent(name: CString, addresses: Vec<[u8; 4]>) -> *mut hostent {
    let mut storage = Box::new(HostentStorage {
        // SAFETY: `hostent` is integers and pointers; all zeroes (null pointers) is valid.
        entry: unsafe { std::mem::zeroed() },
        _name: name,
        _addresses: addresses,
        _address_pointers: Vec::new(),
        _aliases: vec![std::ptr::null_mut()],
    });
    let mut pointers: Vec<*mut c_char> = storage
        ._addresses
        .iter_mut()
        .map(|address| address.as_mut_ptr().cast())
        .collect();
    pointers.push(std::ptr::null_mut());
    storage._address_pointers = pointers;
    storage.entry.h_name = storage._name.as_ptr().cast_mut();
    storage.entry.h_aliases = storage._aliases.as_mut_ptr();
    storage.entry.h_addrtype = libc::AF_INET;
    storage.entry.h_length = 4;
    storage.entry.h_addr_list = storage._address_pointers.as_mut_ptr();
    let entry = &mut storage.entry as *mut hostent;
    // The box's heap contents do not move when the box does. Without thread-locals (a thread being torn
    // down) the storage is leaked rather than freed under the caller.
    let mut storage = Some(storage);
    let _ = HOSTENT.try_with(|slot| *slot.borrow_mut() = storage.take());
    if let Some(storage) = storage {
        Box::leak(storage);
    }
    entry
}

unsafe extern "C" fn gethostname_shim(name: *mut c_char, len: size_t) -> c_int {
    let original = || {
        // SAFETY: libc's gethostname with the caller's arguments.
        unsafe { (GETHOSTNAME.original())(name, len) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: gethostname(2) requires `name` to be valid for `len` writable bytes.
    let Some(buffer) = (unsafe { out_buffer(name.cast(), len) }) else {
        return original();
    };
    let saved = errno();
    let outcome = run("gethostname", || {
        dns::hostname().map(|hostname| {
            let mut bytes = hostname.into_bytes();
            bytes.push(0);
            let copied = copy_out(buffer, &bytes);
            if copied < bytes.len() {
                Err(libc::ENAMETOOLONG)
            } else {
                Ok(0)
            }
        })
    });
    match outcome {
        Outcome::Handled(Err(errno)) => {
            set_errno(errno);
            -1
        }
        other => other
            .map(|result| result.unwrap_or(-1))
            .finish(saved, original, -1),
    }
}

unsafe extern "C" fn gethostbyname_r_shim(
    name: *const c_char,
    entry: *mut hostent,
    buffer: *mut c_char,
    len: size_t,
    result: *mut *mut hostent,
    h_errno: *mut c_int,
) -> c_int {
    let original = || {
        // SAFETY: libc's gethostbyname_r with the caller's arguments.
        unsafe { (GETHOSTBYNAME_R.original())(name, entry, buffer, len, result, h_errno) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: gethostbyname_r(3) takes a NUL-terminated name; null is left to the original.
    let Some(name_view) = (unsafe { c_str(name) }) else {
        return original();
    };
    let Ok(name_text) = name_view.to_str() else {
        return original();
    };
    // SAFETY: gethostbyname_r(3) requires `entry` to be a writable `hostent`.
    let Some(entry_view) = (unsafe { entry.as_mut() }) else {
        return original();
    };
    // SAFETY: gethostbyname_r(3) requires `result` to be a writable `hostent *`.
    let Some(result_view) = (unsafe { result.as_mut() }) else {
        return original();
    };
    // SAFETY: gethostbyname_r(3) requires `h_errno` to be a writable int.
    let Some(h_errno_view) = (unsafe { h_errno.as_mut() }) else {
        return original();
    };
    if buffer.is_null() {
        return original();
    }
    let saved = errno();
    run("gethostbyname_r", || {
        dns::gethostbyname(name_text).map(|answer| {
            *result_view = std::ptr::null_mut();
            match answer {
                Ok(addresses) => match fill_hostent(entry_view, buffer, len, name_view, &addresses)
                {
                    true => {
                        *result_view = entry_view as *mut hostent;
                        0
                    }
                    false => libc::ERANGE,
                },
                Err(code) => {
                    *h_errno_view = code;
                    libc::ENOENT
                }
            }
        })
    })
    .finish(saved, original, libc::EIO)
}

/// Lays out a `hostent` answer in the caller's buffer: the name, the addresses, then the (aligned)
/// null-terminated pointer arrays. `false` when it does not fit (the caller retries with a bigger one).
fn fill_hostent(
    entry: &mut hostent,
    buffer: *mut c_char,
    len: size_t,
    name: &std::ffi::CStr,
    addresses: &[[u8; 4]],
) -> bool {
    let pointer_size = std::mem::size_of::<*mut c_char>();
    let name_bytes = name.to_bytes_with_nul();
    let addresses_at = name_bytes.len();
    // The pointer arrays start at the first pointer-aligned address after the addresses.
    let addresses_end = buffer as usize + addresses_at + 4 * addresses.len();
    let pointers_at = addresses_end.next_multiple_of(pointer_size) - buffer as usize;
    // The address pointers plus their terminator, then one null pointer for the aliases.
    let needed = pointers_at + pointer_size * (addresses.len() + 2);
    if needed > len {
        return false;
    }
    let base = buffer.cast::<u8>();
    // SAFETY: `buffer` is valid for `len` writable bytes (gethostbyname_r's contract) and every write
    // below stays within the first `needed <= len` bytes; the pointer arrays start at a pointer-aligned
    // address.
    unsafe {
        std::ptr::copy_nonoverlapping(name_bytes.as_ptr(), base, name_bytes.len());
        let pointers = base.add(pointers_at).cast::<*mut c_char>();
        for (index, address) in addresses.iter().enumerate() {
            let slot = base.add(addresses_at + 4 * index);
            std::ptr::copy_nonoverlapping(address.as_ptr(), slot, 4);
            pointers.add(index).write(slot.cast());
        }
        pointers.add(addresses.len()).write(std::ptr::null_mut());
        let aliases = pointers.add(addresses.len() + 1);
        aliases.write(std::ptr::null_mut());
        entry.h_name = base.cast();
        entry.h_aliases = aliases;
        entry.h_addrtype = libc::AF_INET;
        entry.h_length = 4;
        entry.h_addr_list = pointers;
    }
    true
}
