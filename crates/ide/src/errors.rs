//! The JSON-RPC error codes of the custom requests: stable numbers (documented in
//! `docs/ide-protocol.md`, checked by a test) that plugins can branch on, and the helpers that
//! build the errors.

use std::borrow::Cow;

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, ErrorCode};

/// A stable error code with its name (as documented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The JSON-RPC `code`.
    pub code: i64,
    /// The documented name.
    pub name: &'static str,
}

/// The config has errors; `data.diagnostics` lists them (and `data.configPath` names the file).
pub const CONFIG_INVALID: Code = Code {
    code: -32010,
    name: "ConfigInvalid",
};
/// The config file named explicitly cannot be read or has no known extension.
pub const CONFIG_UNREADABLE: Code = Code {
    code: -32011,
    name: "ConfigUnreadable",
};
/// A path (config, workspace folder) lies outside the workspace folder or does not exist.
pub const PATH_OUTSIDE_WORKSPACE: Code = Code {
    code: -32012,
    name: "PathOutsideWorkspace",
};
/// Neither the config nor the request names a target: the plugin shows its target quick-pick
/// (from `mirrord/listTargets`) and sends the request again with `target`.
pub const TARGET_REQUIRED: Code = Code {
    code: -32013,
    name: "TargetRequired",
};
/// The session could not start (agent, intproxy, target); the message says why.
pub const SESSION_FAILED: Code = Code {
    code: -32014,
    name: "SessionFailed",
};
/// A document or text is larger than the sidecar checks.
pub const DOCUMENT_TOO_LARGE: Code = Code {
    code: -32015,
    name: "DocumentTooLarge",
};
/// Listing targets failed.
pub const TARGETS_FAILED: Code = Code {
    code: -32016,
    name: "TargetsFailed",
};
/// A request handler panicked; the sidecar keeps serving.
pub const INTERNAL_PANIC: Code = Code {
    code: -32099,
    name: "InternalPanic",
};

/// Every code above, for the documentation test.
pub const ALL: &[Code] = &[
    CONFIG_INVALID,
    CONFIG_UNREADABLE,
    PATH_OUTSIDE_WORKSPACE,
    TARGET_REQUIRED,
    SESSION_FAILED,
    DOCUMENT_TOO_LARGE,
    TARGETS_FAILED,
    INTERNAL_PANIC,
];

/// An error with one of the codes above.
pub fn error(code: Code, message: impl Into<Cow<'static, str>>) -> Error {
    Error {
        code: ErrorCode::ServerError(code.code),
        message: message.into(),
        data: None,
    }
}

/// An error with one of the codes above and `data`.
pub fn error_with_data(code: Code, message: impl Into<Cow<'static, str>>, data: Value) -> Error {
    Error {
        data: Some(data),
        ..error(code, message)
    }
}

/// `-32602 Invalid params`.
pub fn invalid_params(message: impl Into<Cow<'static, str>>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: message.into(),
        data: None,
    }
}

/// The error a caught panic becomes.
pub fn panic(method: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    error(
        INTERNAL_PANIC,
        format!("internal error while handling {method}: {detail}"),
    )
}
