//! `mirrord/endSession`: ends a session started by `mirrord/patchLaunchConfig`.

use tower_lsp_server::jsonrpc::Result;

use super::Backend;
use super::guard::guard;
use crate::protocol::{EndSessionParams, EndSessionResult};

impl Backend {
    /// `mirrord/endSession`.
    pub async fn end_session(&self, params: EndSessionParams) -> Result<EndSessionResult> {
        guard("mirrord/endSession", async move {
            let sessions = self.shared.sessions.clone();
            let ended = tokio::task::spawn_blocking(move || {
                sessions.end(&params.session_id, "ended by mirrord/endSession")
            })
            .await
            .unwrap_or(false);
            Ok(EndSessionResult { ended })
        })
        .await
    }
}
