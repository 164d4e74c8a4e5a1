//! `mirrord/listTargets`: the picker's groups, with the workspace's recently used targets first.

use tower_lsp_server::jsonrpc::Result;

use super::Backend;
use super::guard::guard;
use super::workspace::folder_path;
use crate::errors;
use crate::protocol::{ListTargetsParams, ListTargetsResult};
use crate::targets;

impl Backend {
    /// `mirrord/listTargets`.
    pub async fn list_targets(&self, params: ListTargetsParams) -> Result<ListTargetsResult> {
        guard("mirrord/listTargets", async move {
            let backend = self.clone();
            tokio::task::spawn_blocking(move || {
                let listing = backend.shared.targets.list(&params)?;
                let recent = params
                    .workspace_folder
                    .as_deref()
                    .and_then(folder_path)
                    .map(|folder| backend.shared.recent.get(&folder))
                    .unwrap_or_default();
                Ok(ListTargetsResult {
                    groups: targets::groups(&listing, &recent, params.kinds.as_deref()),
                    current_namespace: listing.current_namespace,
                    namespaces: listing.namespaces,
                })
            })
            .await
            .map_err(|error| errors::error(errors::TARGETS_FAILED, error.to_string()))?
            .map_err(|message: String| errors::error(errors::TARGETS_FAILED, message))
        })
        .await
    }
}
