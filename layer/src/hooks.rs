//! The hooking engine: finds libc's functions and patches their first instructions with a jump to the
//! layer's shim (an inline detour), so that libc's own internal callers are caught too. The displaced
//! instructions live on in a trampoline that [`Hook::original`] calls.
//!
//! This is the only module that knows the engine (retour's `RawDetour`); replacing it touches nothing else.
//!
//! Rules the callers keep:
//! - install only from the library constructor, while the process is single-threaded, with the
//!   re-entrancy guard held (patching itself calls `open`/`read`/`close` to read `/proc/self/maps`);
//! - the layer itself exports no symbol named like a libc function, so `dlsym(RTLD_NEXT, …)` finds libc's.

use std::{
    collections::HashMap,
    ffi::{CStr, c_void},
    fmt,
    marker::PhantomData,
    mem,
    sync::atomic::{AtomicUsize, Ordering},
};

use retour::RawDetour;

/// Where the original of one hooked function lives. `F` is the function's C signature as an
/// `unsafe extern "C" fn` pointer type.
pub(crate) struct Hook<F> {
    name: &'static CStr,
    /// The trampoline's address, 0 until installed.
    original: AtomicUsize,
    function: PhantomData<F>,
}

impl<F: Copy> Hook<F> {
    /// A hook for the libc function `name`, not yet installed.
    ///
    /// # Safety
    ///
    /// `F` must be an `unsafe extern "C" fn` pointer type with exactly the C signature of the libc function
    /// `name` (arguments, variadic ones read as fixed, and return type): [`Hook::original`] turns the
    /// function's address into an `F`, and every later call through it trusts that type. Most hooks are
    /// declared with [`hooks!`], whose `unsafe` block at the use site takes on this obligation.
    pub(crate) const unsafe fn new(name: &'static CStr) -> Self {
        assert!(mem::size_of::<F>() == mem::size_of::<usize>());
        Self {
            name,
            original: AtomicUsize::new(0),
            function: PhantomData,
        }
    }

    /// The original function, when the hook is installed.
    pub(crate) fn installed(&self) -> Option<F> {
        (self.original.load(Ordering::Acquire) != 0).then(|| self.original())
    }

    /// The original function (the trampoline). Only a shim that this hook installed calls it, and a shim
    /// only runs after its hook stored the trampoline, so it is always there.
    pub(crate) fn original(&self) -> F {
        let address = self.original.load(Ordering::Acquire);
        if address == 0 {
            // Unreachable by construction; jumping to address 0 would be worse than stopping.
            std::process::abort();
        }
        // SAFETY: `address` is the trampoline made for the libc function `self.name`, whose C signature `F`
        // is (the obligation of `Hook::new`), and `F` is a function pointer type of the same size as
        // `usize` (checked in `new`).
        unsafe { mem::transmute_copy::<usize, F>(&address) }
    }
}

/// Declares hooks, one `static NAME: Type = c"symbol";` each, inside an `unsafe { … }` block that
/// states, with a `// SAFETY:` comment above it, that every `Type` is the C prototype of its symbol (the
/// obligation of [`Hook::new`]).
macro_rules! hooks {
    (unsafe { $(static $name:ident: $ty:ty = $symbol:literal;)* }) => {
        $(
            // SAFETY: the `unsafe` block at this macro's use site vouches that the type is the C
            // prototype of the symbol.
            static $name: $crate::hooks::Hook<$ty> = unsafe { $crate::hooks::Hook::new($symbol) };
        )*
    };
}
pub(crate) use hooks;

/// Why a function could not be hooked.
#[derive(Debug)]
pub(crate) enum HookError {
    /// No such symbol in the process.
    NotFound,
    /// The engine refused to patch it.
    Engine(retour::Error),
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("symbol not found"),
            Self::Engine(error) => write!(f, "cannot patch: {error}"),
        }
    }
}

/// What installing one hook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    /// The function body was patched.
    Patched,
    /// The symbol is an alias of a function already patched by another hook (e.g. `open64` and `open`):
    /// that hook's shim serves it, and this hook shares its trampoline.
    Alias,
}

/// Installs hooks and remembers which function bodies are patched, so that aliases are patched once.
#[derive(Default)]
pub(crate) struct Installer {
    /// Patched function address → its trampoline's address.
    patched: HashMap<usize, usize>,
    /// Every attempt, for the log.
    report: Vec<(&'static CStr, Result<Installed, HookError>)>,
}

impl Installer {
    /// Like [`Installer::install`], and records the outcome for [`Installer::report`].
    ///
    /// # Safety
    ///
    /// As for [`Installer::install`].
    pub(crate) unsafe fn hook<F: Copy>(
        &mut self,
        hook: &'static Hook<F>,
        shim: F,
        versions: &[&CStr],
    ) {
        // SAFETY: forwarded contract.
        let outcome = unsafe { self.install(hook, shim, versions) };
        self.report.push((hook.name, outcome));
    }

    /// The names of the hooked functions, and of those that could not be hooked with the reason.
    pub(crate) fn report(&self) -> (Vec<String>, Vec<String>) {
        let mut installed = Vec::new();
        let mut failed = Vec::new();
        for (name, outcome) in &self.report {
            let name = name.to_string_lossy();
            match outcome {
                Ok(Installed::Patched) => installed.push(name.into_owned()),
                Ok(Installed::Alias) => installed.push(format!("{name} (alias)")),
                Err(error) => failed.push(format!("{name}: {error}")),
            }
        }
        (installed, failed)
    }

    /// Patches the libc function named by `hook` to jump to `shim`. `versions` are symbol versions to try
    /// with `dlvsym` when plain `dlsym` finds nothing (for `GLIBC_PRIVATE` functions and compat symbols).
    ///
    /// # Safety
    ///
    /// `shim` must have the C signature of the function `hook` names (the `F` of `hook`), and must only
    /// call the original through `hook`. The process must be single-threaded.
    pub(crate) unsafe fn install<F: Copy>(
        &mut self,
        hook: &'static Hook<F>,
        shim: F,
        versions: &[&CStr],
    ) -> Result<Installed, HookError> {
        let target = find_symbol(hook.name, versions).ok_or(HookError::NotFound)? as usize;
        if let Some(&trampoline) = self.patched.get(&target) {
            hook.original.store(trampoline, Ordering::Release);
            return Ok(Installed::Alias);
        }
        // SAFETY: `F` is a function pointer type of the size of `usize` (checked in `Hook::new`).
        let shim_address = unsafe { mem::transmute_copy::<F, usize>(&shim) };
        // SAFETY: `target` is the entry of a libc function found by the dynamic linker and `shim_address` a
        // function with the same signature (this function's contract); retour copies the displaced
        // prologue into a trampoline before it writes the jump.
        let detour = unsafe { RawDetour::new(target as *const (), shim_address as *const ()) }
            .map_err(HookError::Engine)?;
        let trampoline = detour.trampoline() as *const () as usize;
        // The trampoline must be reachable before the first call lands in the shim.
        hook.original.store(trampoline, Ordering::Release);
        // SAFETY: the process is single-threaded (this function's contract), so no thread executes the
        // bytes being rewritten.
        if let Err(error) = unsafe { detour.enable() } {
            hook.original.store(0, Ordering::Release);
            return Err(HookError::Engine(error));
        }
        // A dropped detour unpatches the function: keep it for the life of the process.
        mem::forget(detour);
        self.patched.insert(target, trampoline);
        Ok(Installed::Patched)
    }
}

/// The address of `name` in the objects loaded after the layer (libc), else anywhere in the process, else
/// under one of `versions`.
fn find_symbol(name: &CStr, versions: &[&CStr]) -> Option<*mut c_void> {
    for handle in [libc::RTLD_NEXT, libc::RTLD_DEFAULT] {
        // SAFETY: `name` is NUL-terminated and the handles are the pseudo-handles dlsym(3) documents.
        let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if !address.is_null() {
            return Some(address);
        }
    }
    for version in versions {
        for handle in [libc::RTLD_NEXT, libc::RTLD_DEFAULT] {
            // SAFETY: as above; `version` is NUL-terminated too.
            let address = unsafe { libc::dlvsym(handle, name.as_ptr(), version.as_ptr()) };
            if !address.is_null() {
                return Some(address);
            }
        }
    }
    None
}
