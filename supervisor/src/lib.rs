//! The system-call path: programs the layer cannot reach — Go programs, which make their own system
//! calls, and statically linked programs, which never load it — see the target through a seccomp
//! filter with user notification (`SECCOMP_RET_USER_NOTIF`) and this supervisor, which serves the
//! calls the filter stops.
//!
//! - [`detect`] reads the program's ELF headers and says whether it takes this path, and why.
//! - [`run`] installs the filter in the child before it `exec`s the program (children inherit it),
//!   serves the notifications on a few threads and returns the program's exit status.
//!
//! One path per process tree: a program on this path runs without the layer (`LD_PRELOAD` is not
//! set), so no call is ever handled twice, and libc programs never get the filter, so they keep the
//! layer's speed. ARCHITECTURE.md ("The system-call path") has the design.
//!
//! `unsafe` is confined to `sys`, where every kernel interface of the crate is wrapped: the
//! crate denies `unsafe_code` and only that module allows it (and the layer's `fs_policy` source,
//! shared, whose SIMD path scanner is documented there).

#![deny(unsafe_code)]

mod elf;
mod files;
mod filter;
#[path = "../../layer/src/fs_policy.rs"]
#[allow(
    dead_code,
    reason = "shared with the layer, which uses parts of it the supervisor does not"
)]
#[allow(
    unsafe_code,
    reason = "the layer's own file: its SIMD path scanner is documented there"
)]
mod fs_policy;
mod hostname;
mod incoming;
mod launch;
#[path = "../../layer/src/net"]
mod layer_net {
    //! The layer's network decisions, included by path so that both paths decide alike: address
    //! filters (`outgoing.filter`), `feature.network.incoming` (ports, mapping, subscription) and
    //! the socket-address layouts.
    #[path = "filter.rs"]
    #[allow(
        dead_code,
        reason = "shared with the layer, which uses parts of it the supervisor does not"
    )]
    pub(crate) mod filter;
    #[path = "incoming_policy.rs"]
    pub(crate) mod incoming_policy;
    #[path = "sockaddr.rs"]
    pub(crate) mod sockaddr;
}
mod net;
mod peer;
use layer_net::filter as net_filter;
mod placeholders;
mod remote;
mod serve;
#[allow(unsafe_code, reason = "the crate's one module of kernel interfaces")]
mod sys;
mod turn;
mod udp;
mod waits;

pub use elf::{DetectError, ProgramKind, SyscallReason, detect, resolve};
pub use launch::{Launch, LaunchError, check_kernel, run};
pub use remote::Endpoints;
