//! Built-in sandbox pods: local stand-ins for Kubernetes pods, made of network namespaces, a
//! mount namespace, a PID namespace, a DNS server and small Rust services, so that mirrord can be
//! used and tested end to end with no cluster.
//!
//! A sandbox `NAME` is:
//! - the network namespace `mirrord-sb-NAME`, joined to the host by a veth pair
//!   (`msbN` on the host, 10.241.N.0/24), where the *target* runs: an HTTP/1.1 service on port 80
//!   in its own mount, UTS and PID namespaces (`/app` and parts of `/etc` exist only there, and its
//!   `/proc` lists only the pod's processes) with its own environment variables, and the pod's DNS
//!   server ([`dns`]) answering `*.sandbox.svc` on 127.0.0.1:53 over UDP and TCP;
//! - the network namespace `mirrord-sb-NAME-db`, "another service in the cluster", joined only to
//!   the sandbox (10.242.N.0/24) and serving TCP and UDP echo on port 7.
//!
//! [`Sandbox::up`] builds one and waits until every service answers; [`Sandbox::down`] removes
//! every process, namespace, interface, route and state file it made. State lives under
//! [`STATE_ROOT`]. The only external program is `ip` (iproute2), for namespaces, links and routes
//! ([`REQUIRED_PROGRAMS`], checked before anything is made); namespaces are entered, mounts made
//! and processes signalled with system calls. The services themselves, the DNS server included,
//! run as hidden subcommands of the `mirrord` binary (see [`UpOptions::helper_command`]) so this
//! crate never needs to know where that binary is.
//!
//! Invariants: nothing here touches the host's `/etc`, `/app` or routes beyond the one `msbN`
//! interface and the one `unreachable 10.242.N.0/24` route per sandbox; the host has no working
//! route to the db namespace; `up` and `down` are serialised by one lock file, so concurrent
//! callers never share an address.

#![forbid(unsafe_code)]

mod addressing;
mod contents;
pub mod dns;
mod error;
mod name;
mod network;
pub mod pod;
pub mod probe;
mod sandbox;
pub mod services;
mod state;
mod system;

pub use addressing::SandboxAddresses;
pub use contents::SandboxFile;
pub use error::SandboxError;
pub use name::{MAX_NAME_LEN, validate_name};
pub use sandbox::{
    DNS_PORT, ECHO_PORT, HTTP_PORT, STATE_ROOT, Sandbox, SandboxInfo, SandboxPids, UpOptions,
};
pub use state::PidFile;
pub use system::REQUIRED_PROGRAMS;
