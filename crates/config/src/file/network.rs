//! `feature.network`: incoming traffic (mirror/steal), outgoing connections and DNS.

#[cfg(feature = "files")]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[cfg(feature = "files")]
use super::common::{regex_or_list_schema, regex_schema};
use super::{StringOrList, Unsupported};

/// `feature.network` as written: a switch or a detailed object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum NetworkField {
    /// `true` keeps the defaults; `false` turns incoming, outgoing and DNS off.
    Enabled(bool),
    /// Incoming, outgoing and DNS settings.
    Detailed(NetworkFileConfig),
}

/// Incoming traffic, outgoing connections and DNS.
///
/// Example: `{ "incoming": "steal", "outgoing": { "udp": false }, "dns": true }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NetworkFileConfig {
    /// Traffic arriving at the target's ports: `"mirror"`, `"steal"`, `"off"`, `true`/`false`,
    /// or an object.
    ///
    /// Default: `"mirror"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<IncomingField>,

    /// Outgoing connections leave from the target's network: `true`/`false` or an object.
    ///
    /// Default: TCP and UDP on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<OutgoingField>,

    /// Resolve names through the target's DNS: `true`/`false` or an object with a filter.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsField>,

    /// Send IPv6 traffic through the target too. With `false`, connections and datagrams to IPv6
    /// addresses stay local (IPv4-mapped addresses such as `::ffff:10.0.0.1` are IPv4 and still
    /// go) and names resolved through the target give IPv4 addresses only (its AAAA answers are
    /// dropped). Listeners on `::` receive the target's traffic either way.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
}

/// `feature.network.incoming` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum IncomingField {
    /// `true` is the default (`"mirror"`), `false` is `"off"`.
    Enabled(bool),
    /// The incoming mode.
    Mode(IncomingMode),
    /// The mode plus filters and port settings.
    Detailed(Box<IncomingFileConfig>),
}

/// What happens to traffic that arrives at a port the local process listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IncomingMode {
    /// The target still answers; the local process gets a copy of every connection.
    Mirror,
    /// The local process answers instead of the target (all traffic, or only HTTP requests that
    /// match `http_filter`).
    Steal,
    /// No incoming traffic reaches the local process.
    Off,
}

/// Incoming traffic in detail.
///
/// Example: `{ "mode": "steal", "http_filter": { "header_filter": "x-user: me" }, "port_mapping": [[9333, 80]] }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "files", schemars(extend("not" = {
    "required": ["ports", "ignore_ports"],
    "x-mirrord-message": "`ports` and `ignore_ports` cannot be used together; keep one of them"
})))]
pub struct IncomingFileConfig {
    /// `"mirror"`, `"steal"` or `"off"`.
    ///
    /// Default: `"mirror"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IncomingMode>,

    /// Steal only the HTTP requests that match (HTTP/1.1 and HTTP/2); all other requests keep
    /// going to the target. Only with `"mode": "steal"`.
    ///
    /// Default: none (steal whole connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_filter: Option<HttpFilterFileConfig>,

    /// Deprecated spelling of `http_filter` (`filter` is a header regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("deprecated" = true, "deprecationMessage" = "`http_header_filter` is deprecated; use `http_filter` with `header_filter`", "x-mirrord-replaced-by" = "http_filter")))]
    pub http_header_filter: Option<HttpHeaderFilterFileConfig>,

    /// Pairs `[local, remote]`: the local process listening on `local` receives the traffic of
    /// the target's port `remote`.
    ///
    /// Default: none. Example: `[[9333, 80]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mapping: Option<Vec<(u16, u16)>>,

    /// Pairs `[port, local_port]`: when the local process listens on `port`, really listen on
    /// `local_port` (e.g. to avoid needing root for port 80).
    ///
    /// Default: none. Example: `[[80, 8080]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_ports: Option<Vec<(u16, u16)>>,

    /// Do not mirror or steal sockets that listen on localhost only.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_localhost: Option<bool>,

    /// Ports that stay local. Cannot be used together with `ports`.
    ///
    /// Default: none. Example: `[9999]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_ports: Option<Vec<u16>>,

    /// Only these ports are mirrored or stolen; others stay local. Cannot be used together with
    /// `ignore_ports`.
    ///
    /// Default: all ports. Example: `[80, 8080]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,

    /// mirrord operator port locks. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_concurrent_steal: Option<Unsupported>,

    /// mirrord operator TLS delivery. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_delivery: Option<Unsupported>,

    /// mirrord operator TLS delivery (old spelling). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_delivery: Option<Unsupported>,
}

/// Which HTTP requests to steal. Give one of `header_filter`, `path_filter`, `method_filter`,
/// `all_of`, `any_of`.
///
/// Example: `{ "header_filter": "^x-user: me$" }` or
/// `{ "all_of": [{ "header": "x-user: me" }, { "path": "^/api/" }] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpFilterFileConfig {
    /// Steal requests with a header matching this regex, tested against `Name: value` lines
    /// (case-insensitive).
    ///
    /// Example: `"^x-user: me$"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_schema"))]
    pub header_filter: Option<String>,

    /// Steal requests whose path (with or without the query) matches this regex
    /// (case-insensitive).
    ///
    /// Example: `"^/api/"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_schema"))]
    pub path_filter: Option<String>,

    /// Steal requests with this HTTP method (case-insensitive).
    ///
    /// Example: `"POST"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_filter: Option<String>,

    /// Steal requests that match every one of these filters.
    ///
    /// Example: `[{ "header": "x-user: me" }, { "path": "^/api/" }]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(length(min = 1)))]
    pub all_of: Option<Vec<InnerHttpFilter>>,

    /// Steal requests that match at least one of these filters.
    ///
    /// Example: `[{ "path": "^/debug/" }, { "method": "PATCH" }]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(length(min = 1)))]
    pub any_of: Option<Vec<InnerHttpFilter>>,

    /// Filter HTTP only on these ports; other stolen ports are stolen whole.
    ///
    /// Default: every stolen port. Example: `[80, 8080]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,

    /// mirrord operator body filters. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_filter: Option<Unsupported>,
}

/// One filter inside `all_of` / `any_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged, deny_unknown_fields)]
pub enum InnerHttpFilter {
    /// `{ "header": REGEX }`: a header line `Name: value` matches.
    Header {
        /// Regex tested against `Name: value` header lines (case-insensitive).
        #[cfg_attr(feature = "files", schemars(schema_with = "regex_schema"))]
        header: String,
    },
    /// `{ "path": REGEX }`: the request path matches.
    Path {
        /// Regex tested against the request path (case-insensitive).
        #[cfg_attr(feature = "files", schemars(schema_with = "regex_schema"))]
        path: String,
    },
    /// `{ "method": METHOD }`: the request method is this one.
    Method {
        /// HTTP method name (case-insensitive).
        method: String,
    },
}

/// Deprecated header filter (`http_header_filter`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpHeaderFilterFileConfig {
    /// Regex tested against `Name: value` header lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_schema"))]
    pub filter: Option<String>,

    /// Ports to filter on. Default: `[80, 8080]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
}

/// `feature.network.outgoing` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum OutgoingField {
    /// `true`: TCP and UDP leave from the target; `false`: both stay local.
    Enabled(bool),
    /// Protocols and filters.
    Detailed(OutgoingFileConfig),
}

/// Outgoing connections in detail.
///
/// Example: `{ "tcp": true, "udp": false, "filter": { "local": [":53", "10.0.0.0/8"] } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingFileConfig {
    /// TCP connections leave from the target.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<bool>,

    /// UDP datagrams leave from the target.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<bool>,

    /// Keep connections to localhost (127.0.0.0/8, `::1`) local. With `false`, they reach the
    /// target's own loopback — its sidecars: a mesh proxy, a database proxy, a metrics agent on
    /// `localhost:PORT` — except connections to mirrord's own internal proxy, to the ports of
    /// `incoming.ignore_ports` (where the IDE puts a launch's debugger ports), to ports an
    /// outgoing `filter` keeps local, and to ports that the process or another process of the
    /// session listens on locally, so a program that talks to itself keeps working.
    ///
    /// Default: `false`. Example: `true` (all of localhost stays on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_localhost: Option<bool>,

    /// Which destinations go through the target (`remote`) or stay local (`local`); give one.
    /// Entries: `[tcp://|udp://][name|address|subnet/mask][:port]`.
    ///
    /// Default: everything through the target. Example: `{ "local": [":53", "10.0.0.0/8"] }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AddressFilter>,

    /// Unix stream sockets of the target: a `connect` to a socket path that matches one of
    /// these regexes reaches the socket at that path inside the target (a Docker socket, a
    /// database's socket, a sidecar's `/run/app.sock`); other paths stay local. Abstract socket
    /// names always stay local. For targets on this machine (`pid/…`, `sandbox/…`) the process
    /// gets the target's own socket; for cluster targets the agent connects inside the target
    /// and the bytes are relayed through a unix socket of the session's. Go and static programs
    /// (the system-call path) are relayed in both cases. A matching path that does not exist in
    /// the target fails the `connect` with `ENOENT` (`ECONNREFUSED` when nothing listens).
    ///
    /// Default: none. Example: `"^/var/run/app\\.sock$"` or `["\\.sock$"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(schema_with = "regex_or_list_schema"))]
    pub unix_streams: Option<StringOrList>,
}

/// A destination filter: either `remote` or `local`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AddressFilter {
    /// Only these go through the target; everything else stays local.
    Remote(StringOrList),
    /// These stay local; everything else goes through the target.
    Local(StringOrList),
}

/// `feature.network.dns` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum DnsField {
    /// `true`: resolve through the target; `false`: resolve locally.
    Enabled(bool),
    /// Enabled with a filter.
    Detailed(DnsFileConfig),
}

/// DNS in detail.
///
/// Example: `{ "enabled": true, "filter": { "local": ["localhost", "internal.corp"] } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DnsFileConfig {
    /// Resolve through the target.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Which names go through the target (`remote`) or stay local (`local`); give one.
    /// Entries: `[name|address|subnet/mask][:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AddressFilter>,
}
