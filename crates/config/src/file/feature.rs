//! `feature`: what of the target the local process sees — environment, files, network, hostname.

use std::collections::BTreeMap;

#[cfg(feature = "files")]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[cfg(feature = "files")]
use super::common::{regex_map_schema, regex_or_list_schema};
use super::{NetworkField, StringOrList, Unsupported};

/// Which parts of the target the local process sees.
///
/// Example: `{ "env": true, "fs": "read", "network": { "incoming": "steal" } }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FeatureFileConfig {
    /// The target's environment variables in the local process: `true`, `false`, or an object
    /// choosing which variables.
    ///
    /// Default: `true` (all but a built-in list such as `PATH` and `HOME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvField>,

    /// File operations: a mode (`"read"`, `"write"`, `"local"`, `"localwithoverrides"`),
    /// `true` (= `"read"`) / `false` (= `"local"`), or an object with per-path patterns.
    ///
    /// Default: `"read"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsField>,

    /// Network: incoming traffic, outgoing connections and DNS. `true`/`false` switch all of it.
    ///
    /// Default: incoming `"mirror"`, outgoing on, DNS through the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkField>,

    /// `gethostname` returns the target's hostname.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<bool>,

    /// mirrord's crash-report capture. Not supported: for a trace, set `agent.log_level` and
    /// `internal_proxy.log_level` (with `internal_proxy.log_destination`) to `"trace"` instead;
    /// loading a config that sets it warns so.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub capture_error_trace: Option<bool>,

    /// Run against a copy of the target's pod instead of the pod itself: same spec, environment
    /// and volumes, but labels that keep it out of the Services' selectors (so it receives only
    /// what mirrord sends it, and stealing takes nothing from the original). The copy is created
    /// for the session and deleted after it. `true`, or an object; Kubernetes targets only.
    ///
    /// Default: `false`. Example: `{ "scale_down": true }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_target: Option<CopyTargetField>,

    /// mirrord operator feature (queue splitting). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_queues: Option<Unsupported>,

    /// mirrord operator feature (database branches). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_branches: Option<Unsupported>,

    /// mirrord operator feature (preview environments). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Unsupported>,

    /// mirrord's "magic" defaults (AWS credentials). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magic: Option<Unsupported>,
}

/// `feature.copy_target` as written: a switch or an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum CopyTargetField {
    /// `true` copies the target's pod.
    Enabled(bool),
    /// Copy the target's pod, with these choices.
    Detailed(CopyTargetFileConfig),
}

/// How the target's pod is copied.
///
/// Example: `{ "scale_down": true, "exclude_containers": ["metrics"] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CopyTargetFileConfig {
    /// Copy the target at all.
    ///
    /// Default: `true` when the object is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Scale the target's deployment (or statefulset) to zero replicas for the session, so only
    /// the copy runs; the replicas are restored when the session ends, also when mirrord is
    /// killed (the session's internal proxy restores them).
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<bool>,

    /// Containers of the pod left out of the copy, by name.
    ///
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_containers: Option<Vec<String>>,

    /// Init containers of the pod left out of the copy, by name.
    ///
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_init_containers: Option<Vec<String>>,
}

/// `feature.env` as written: a switch or a detailed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "a config is parsed once per session; boxing would only add noise"
)]
pub enum EnvField {
    /// `true` loads the target's environment, `false` leaves the local one alone.
    Enabled(bool),
    /// Which variables to load and how to change them.
    Detailed(EnvFileConfig),
}

/// Which of the target's environment variables the local process gets.
///
/// Example: `{ "include": "DATABASE_*;PORT", "override": { "LOG_LEVEL": "debug" } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "files", schemars(extend("not" = {
    "required": ["include", "exclude"],
    "x-mirrord-message": "`include` and `exclude` cannot be used together; keep one of them"
})))]
pub struct EnvFileConfig {
    /// Load only these variables: a `;`-separated string or a list; `*` and `?` are wildcards.
    /// Cannot be used together with `exclude`.
    ///
    /// Default: all variables. Example: `"DATABASE_*;PORT"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<StringOrList>,

    /// Load every variable except these: a `;`-separated string or a list; `*` and `?` are
    /// wildcards. Cannot be used together with `include`.
    ///
    /// Default: none (beyond the built-in list). Example: `"SECRET_*;USER"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<StringOrList>,

    /// Set these variables in the local process, whatever the target has.
    ///
    /// Default: none. Example: `{ "REGION": "local-test" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#override: Option<BTreeMap<String, String>>,

    /// Remove these variables from the local process (case-insensitive).
    ///
    /// Default: none. Example: `["AWS_PROFILE"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unset: Option<StringOrList>,

    /// A `.env` file whose variables override the target's.
    ///
    /// Default: none. Example: `".env.staging"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,

    /// Replace the value of variables whose name matches a regex (capture groups allowed).
    ///
    /// Default: none. Example: `{ ".+_TIMEOUT": "10000" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_map_schema"))]
    pub mapping: Option<BTreeMap<String, String>>,

    /// mirrord's late environment loading. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_from_process: Option<Unsupported>,
}

/// `feature.fs` as written: a mode, a switch, or a detailed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "a config is parsed once per session; boxing would only add noise"
)]
pub enum FsField {
    /// `true` is `"read"`, `false` is `"local"`.
    Enabled(bool),
    /// A file operations mode.
    Mode(FsMode),
    /// A mode plus per-path patterns.
    Detailed(FsFileConfig),
}

/// How file operations are handled by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FsMode {
    /// Every file is local; mirrord does nothing with files.
    Local,
    /// Files are local except built-in and user-given remote patterns.
    Localwithoverrides,
    /// Files are read from the target; writes stay local.
    Read,
    /// Files are read from and written to the target.
    Write,
}

/// File operations with per-path patterns (regular expressions, matched against the absolute
/// path). The first matching list wins: `not_found`, `local`, `read_only`, `read_write`; then the
/// built-in lists; then `mode`.
///
/// Example: `{ "mode": "write", "read_only": ["^/etc/"], "local": ["\\.log$"] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FsFileConfig {
    /// The default for paths no pattern matches.
    ///
    /// Default: `"read"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FsMode>,

    /// Paths read from and written to the target.
    ///
    /// Default: none. Example: `["^/var/run/app/"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    pub read_write: Option<StringOrList>,

    /// Paths read from the target; opening them for writing opens a local file.
    ///
    /// Default: none. Example: `["^/etc/app/"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    pub read_only: Option<StringOrList>,

    /// Paths always opened locally.
    ///
    /// Default: none. Example: `["\\.log$"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    pub local: Option<StringOrList>,

    /// Paths that do not exist for the local process (`ENOENT`).
    ///
    /// Default: none. Example: `["\\.config/gcloud"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    pub not_found: Option<StringOrList>,

    /// Rewrite paths before anything else: regex to replacement (capture groups allowed).
    ///
    /// Default: none. Example: `{ "^/home/(\\w+)/dev/tomcat": "/etc/tomcat" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_map_schema"))]
    pub mapping: Option<BTreeMap<String, String>>,

    /// Buffer size in bytes for reading read-only remote files; `0` disables buffering.
    ///
    /// Default: `128000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_file_buffer: Option<u64>,

    /// For targets on this machine (`pid/…`, `sandbox/…`), the agent hands the process the open
    /// file descriptor of each remote file (not of directories), so reads, writes, seeks and `mmap`
    /// run at native speed. `false` sends every operation through the agent, as for cluster
    /// targets.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_fds: Option<bool>,

    /// Deprecated spelling of `read_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    #[cfg_attr(feature = "files", schemars(extend("deprecated" = true, "deprecationMessage" = "`include` is deprecated; use `read_write`", "x-mirrord-replaced-by" = "read_write")))]
    pub include: Option<StringOrList>,

    /// Deprecated spelling of `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    #[cfg_attr(feature = "files", schemars(extend("deprecated" = true, "deprecationMessage" = "`exclude` is deprecated; use `local`", "x-mirrord-replaced-by" = "local")))]
    pub exclude: Option<StringOrList>,
}
