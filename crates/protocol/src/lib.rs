//! The mirrord wire protocol: every message the layer, the intproxy and the agent exchange, and the frames
//! that carry them. Shared by all three; the agent, the intproxy and the layer never invent frames of
//! their own.
//!
//! The crate does no IO and has no async runtime: it defines serde types and pure encode/decode functions
//! (plus [`read_frame`]/[`write_frame`], thin generic helpers over a caller's `std::io::Read`/`Write`).
//! It has no `unsafe` code.
//!
//! # Channels
//!
//! ```text
//! layer (one per process) ──LayerToProxy / ProxyToLayer──> intproxy ──ClientToAgent / AgentToClient──> agent
//! ```
//!
//! - layer ↔ intproxy ([`layer_channel`]): each layer instance (the user process and every forked or exec'd
//!   child) has its own connection. The layer asks for file, environment and DNS work and for network
//!   plumbing, and never relays connection bytes: the intproxy hands it a loopback address to connect to
//!   instead.
//! - intproxy ↔ agent ([`agent_channel`]): one connection per session, carrying every layer's requests and
//!   the bytes of every relayed connection and datagram.
//!
//! Both channels share the operation payloads: [`files`], [`env`](mod@env), [`dns`], [`outgoing`], [`incoming`].
//!
//! # Frames
//!
//! A frame is a `u32` big-endian payload length followed by the payload: one message encoded with
//! `postcard`. A payload longer than [`MAX_FRAME_LEN`] (16 MiB) is rejected, by the sender and by the
//! receiver, before anything is allocated for it. A payload that is not exactly one valid message is an
//! error for that frame (the stream stays in step); a length over the cap is fatal for the stream.
//! Read, write and data messages carry at most [`MAX_IO_CHUNK`] (1 MiB) bytes.
//!
//! # Handshake
//!
//! The client's first frame is a [`Hello`] (protocol version, [`SessionToken`], [`ClientKind`]); the server
//! answers with a [`HelloReply`]: `Welcome` with its own version, or `Refused` with a reason, after which it
//! closes the connection. A server serves nothing before a hello with the session's token and the same major
//! version ([`Hello::answer`] is that rule; [`HelloReply::check`] is the client's side of it).
//!
//! # Requests, responses, events
//!
//! Requests carry a [`RequestId`] chosen by the sender; exactly one response echoes it, holding the
//! operation's payload or a [`RemoteError`]. Other messages (connection data, connection closed, heartbeats,
//! the agent being lost) answer nothing and are separate variants. Errors are data: an [`ErrorCode`] that
//! the layer turns into an errno ([`ErrorCode::errno`]) or a `getaddrinfo` result ([`ErrorCode::eai`]).
//! When the agent connection is lost, the intproxy answers every pending and later remote request with
//! [`ErrorCode::AgentLost`] and tells each layer with [`ProxyToLayer::AgentLost`].
//!
//! # Compatibility
//!
//! postcard is not self-describing: the order of fields and variants *is* the wire format.
//!
//! - Never reorder, rename-by-moving, remove or retype a field or variant.
//! - Appending a variant at the end of an enum is a minor version bump ([`ProtocolVersion`]); a peer must not
//!   send a variant newer than the minor version the other side announced.
//! - Any other change is a major bump, and peers with different majors refuse each other in the handshake.
//! - [`Hello`] and [`HelloReply`] never change, so that this refusal always works.
//! - `tests/fixtures/` holds encoded frames that must keep decoding to the same values; a change there is a
//!   wire change.

#![forbid(unsafe_code)]

pub mod agent_channel;
mod bytes;
pub mod dns;
pub mod env;
pub mod error;
pub mod fd_channel;
pub mod files;
pub mod frame;
pub mod handshake;
pub mod ids;
pub mod incoming;
pub mod layer_channel;
pub mod outgoing;
pub mod token;
pub mod version;
mod wire_bytes;

pub use agent_channel::{AgentRequest, AgentResponse, AgentToClient, ClientToAgent};
pub use bytes::Bytes;
pub use error::{ErrorCode, RemoteError, RemoteResult};
pub use frame::{
    DecodeError, EncodeError, FrameDecoder, MAX_FRAME_LEN, MAX_IO_CHUNK, ReadFrameError,
    WriteFrameError, decode_payload, encode, encode_batch, encode_into, read_frame,
    read_frame_with, write_frame,
};
pub use handshake::{ClientKind, HandshakeError, Hello, HelloReply};
pub use ids::{ConnectionId, DirHandle, FileHandle, RequestId, UdpSocketId};
pub use layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
pub use token::SessionToken;
pub use version::{IncompatibleVersion, ProtocolVersion, check_compatible};
