//! mirrord's configuration: the types users write (`mirrord.json`, `.toml`, `.yaml`), the JSON
//! Schema generated from them, loading with positioned diagnostics, environment and CLI
//! overrides, and the fully resolved config handed to every process of a session.
//!
//! The entry points are [`load_str`] / [`load_file`]: they return the resolved config (when there
//! are no errors) *and every problem found*, each with a key path and an LSP-style range. The CLI
//! (`mirrord verify-config`) and the IDE sidecar use the same functions, so they never disagree.
//!
//! Features: `files` (on by default) is everything that reads a config file — the JSON, TOML and
//! YAML parsers, the JSON Schema and validation, diagnostics and overrides. Without it the crate
//! is the config types and [`ResolvedConfig`] (read from JSON), which is all the preloaded layer
//! and the supervisor need.

#![forbid(unsafe_code)]

#[cfg(feature = "files")]
pub mod diagnostic;
pub mod discover;
pub mod file;
#[cfg(feature = "files")]
mod load;
#[cfg(feature = "files")]
pub mod overrides;
pub mod resolved;
#[cfg(feature = "files")]
pub mod schema;
#[cfg(feature = "files")]
pub mod schema_nav;
#[cfg(feature = "files")]
pub mod source;
pub mod suggest;
#[cfg(feature = "files")]
mod validate;

#[cfg(feature = "files")]
pub use diagnostic::{Diagnostic, Position, Range, Severity};
pub use file::FileConfig;
#[cfg(feature = "files")]
pub use load::{
    LoadError, Loaded, check_str, check_str_cancellable, load_bytes, load_file, load_str,
    load_without_file,
};
#[cfg(feature = "files")]
pub use overrides::Overrides;
pub use resolved::ResolvedConfig;
#[cfg(feature = "files")]
pub use source::Format;
