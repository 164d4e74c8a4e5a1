//! The mirrord layer: a `cdylib` loaded with `LD_PRELOAD` into the user's process (and, through the
//! inherited environment, into every process it forks or execs). It patches libc functions in place and
//! sends the work that belongs to the target (files, DNS, outgoing connections) to the intproxy.
//!
//! # Environment contract
//!
//! Set by `mirrord exec` for the user process; children inherit it.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MIRRORD_LAYER_INTPROXY_ADDR` | `IP:PORT` of the intproxy's layer listener (required) |
//! | `MIRRORD_LAYER_SESSION_TOKEN` | the session token, 64 hex digits (required) |
//! | `MIRRORD_RESOLVED_CONFIG` | the resolved config as JSON (required) |
//! | `MIRRORD_LAYER_LOG` | a file the layer appends its log lines to (optional; nothing is logged without it) |
//! | `MIRRORD_LAYER_LOG_LEVEL` | a `tracing` filter for that file (optional, default `info`) |
//!
//! When a required variable is missing or invalid, or the process is one the config skips
//! (`skip_processes`, build tools), the layer installs nothing and the process runs as if it were not
//! loaded. The layer never writes to the process's stdout, and to its stderr only one line when `listen`
//! cannot subscribe the target's port (the program itself sees only the errno) or subscribed it with a
//! warning (nothing in the target listens on the port).
//!
//! # How a call flows
//!
//! ```text
//! libc function body ──jmp──> shim (files/shims.rs, …) ──> safe logic (files.rs, …) ──> connection.rs ──> intproxy
//!        ^                      │ guard held / not ours                      │ Bypass
//!        └──── trampoline <─────┴────────────────────────────────────────────┘
//! ```
//!
//! - [`hooks`] is the hooking engine (the only module that knows retour).
//! - [`detour`] is the shims' plumbing: the re-entrancy guard, panic catching, errno.
//! - [`fs_policy`], [`fd_table`], [`net::filter`], [`net::udp`] are pure logic with unit tests.
//! - [`connection`] is the one blocking connection per process to the intproxy.
//!
//! # Processes
//!
//! A forked child gets its own intproxy connection: the connection remembers the pid that opened it, and
//! the first remote call in a process with another pid opens a new one (announcing the parent's pid in its
//! hello). No `fork` hook is needed; a `pthread_atfork` handler only keeps the layer's own locks consistent
//! across `fork` (see [`process`]). An exec'd child loads the layer afresh from the inherited environment.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod connection;
mod detour;
mod dns;
mod fd_table;
mod files;
mod fs_policy;
mod hooks;
mod logging;
mod net;
mod process;
mod setup;

/// Runs [`setup::initialize`] when the dynamic loader initialises this library, before the process's
/// `main`, while it is still single-threaded. In unit-test builds the static is kept but not placed in
/// `.init_array`: a test binary must not hook itself.
#[used]
#[cfg_attr(not(test), unsafe(link_section = ".init_array"))]
static LAYER_CONSTRUCTOR: extern "C" fn() = layer_constructor;

extern "C" fn layer_constructor() {
    // An unwind must not leave an `extern "C"` function (it would abort the user's process): a layer that
    // fails to start leaves the process alone.
    let _ = std::panic::catch_unwind(setup::initialize);
}
