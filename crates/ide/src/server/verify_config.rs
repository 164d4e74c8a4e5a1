//! `mirrord/verifyConfig`: the same report as `mirrord verify-config --output json`.

use mirrord_config::{Format, Overrides};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::guard::guard;
use super::workspace::folder_path;
use super::{Backend, lock};
use crate::documents::MAX_DOCUMENT_BYTES;
use crate::errors;
use crate::protocol::{VerifyConfigParams, VerifyConfigResult};

impl Backend {
    /// `mirrord/verifyConfig`.
    pub async fn verify_config(&self, params: VerifyConfigParams) -> Result<VerifyConfigResult> {
        guard("mirrord/verifyConfig", async move {
            let (text, format) = match (params.text, params.uri) {
                (Some(text), _) => (text, params.format.unwrap_or(Format::Json)),
                (None, Some(uri)) => {
                    let open = lock(&self.shared.documents)
                        .get(&uri)
                        .map(|document| (document.text.clone(), document.format));
                    match open {
                        Some(found) => found,
                        None => {
                            let path = folder_path(&uri).ok_or_else(|| {
                                errors::invalid_params(format!("`{uri}` is not a file URI"))
                            })?;
                            let format = params
                                .format
                                .or_else(|| Format::from_path(&path))
                                .ok_or_else(|| {
                                    errors::error(
                                        errors::CONFIG_UNREADABLE,
                                        format!("cannot tell the format of {}: use a .json, .toml, .yaml or .yml extension", path.display()),
                                    )
                                })?;
                            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                            if size > MAX_DOCUMENT_BYTES as u64 {
                                return Err(too_large(size as usize));
                            }
                            let bytes = std::fs::read(&path).map_err(|error| {
                                errors::error(
                                    errors::CONFIG_UNREADABLE,
                                    format!("cannot read {}: {error}", path.display()),
                                )
                            })?;
                            let loaded = off_the_loop(move || {
                                mirrord_config::load_bytes(&bytes, format, &Overrides::default())
                            })
                            .await;
                            return Ok(VerifyConfigResult {
                                valid: loaded.is_valid(),
                                diagnostics: loaded.diagnostics,
                                config: loaded.config,
                            });
                        }
                    }
                }
                (None, None) => {
                    return Err(errors::invalid_params("give `uri`, or `text` and `format`"));
                }
            };
            if text.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large(text.len()));
            }
            let loaded =
                off_the_loop(move || mirrord_config::load_str(&text, format, &Overrides::default()))
                    .await;
            Ok(VerifyConfigResult {
                valid: loaded.is_valid(),
                diagnostics: loaded.diagnostics,
                config: loaded.config,
            })
        })
        .await
    }
}

fn too_large(size: usize) -> Error {
    errors::error(
        errors::DOCUMENT_TOO_LARGE,
        format!(
            "the document is {size} bytes; mirrord checks config files of at most {MAX_DOCUMENT_BYTES} bytes"
        ),
    )
}

/// Runs a check on the blocking pool, so the sidecar answers other requests meanwhile; a panic
/// there is a panic of the request (answered with its stable code by the guard).
async fn off_the_loop<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
