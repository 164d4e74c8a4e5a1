//! Paths given by the editor: workspace folders as paths or URIs, and config paths that must
//! stay inside their workspace folder.

use std::path::{Path, PathBuf};

use serde_json::json;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::Uri;

use super::uri_path;
use crate::errors;

/// A workspace folder given as a path or a `file://` URI.
pub(super) fn folder_path(text: &str) -> Option<PathBuf> {
    if text.starts_with("file:") {
        text.parse::<Uri>().ok().as_ref().and_then(uri_path)
    } else {
        Some(PathBuf::from(text))
    }
}

/// `path` (absolute, or relative to `folder`) when it exists inside `folder`. A path that leaves
/// the folder is refused as such whether or not it exists (checked on its spelling first, then
/// again after symlinks are resolved), so the answer never tells what exists outside.
pub(super) fn inside_workspace(folder: &Path, path: &str) -> Result<PathBuf> {
    let joined = folder.join(path.replace("${workspaceFolder}", &folder.to_string_lossy()));
    let outside = |resolved: &Path| {
        errors::error_with_data(
            errors::PATH_OUTSIDE_WORKSPACE,
            format!(
                "the mirrord config {} is outside the workspace folder {}",
                resolved.display(),
                folder.display()
            ),
            json!({ "configPath": resolved.display().to_string() }),
        )
    };
    let spelled = lexically_normal(&joined);
    if !spelled.starts_with(folder) {
        return Err(outside(&spelled));
    }
    let resolved = joined.canonicalize().map_err(|error| {
        errors::error(
            errors::CONFIG_UNREADABLE,
            format!(
                "cannot read the mirrord config {}: {error}",
                joined.display()
            ),
        )
    })?;
    if !resolved.starts_with(folder) {
        return Err(outside(&resolved));
    }
    Ok(resolved)
}

/// `path` with `.` and `..` resolved on its spelling alone (no file system access).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp_server::jsonrpc::ErrorCode;

    #[test]
    fn paths_leaving_the_folder_are_refused_before_they_are_read() {
        let folder = std::env::temp_dir().canonicalize().unwrap();
        for path in [
            "../elsewhere/missing.json",
            "/etc/passwd",
            "sub/../../x.json",
        ] {
            let error = inside_workspace(&folder, path).unwrap_err();
            assert_eq!(
                error.code,
                ErrorCode::ServerError(errors::PATH_OUTSIDE_WORKSPACE.code),
                "{path}"
            );
        }
        let missing = inside_workspace(&folder, "no-such-dir/../missing-config.json").unwrap_err();
        assert_eq!(
            missing.code,
            ErrorCode::ServerError(errors::CONFIG_UNREADABLE.code)
        );
        assert_eq!(
            lexically_normal(Path::new("/a/./b/../c")),
            PathBuf::from("/a/c")
        );
    }
}
