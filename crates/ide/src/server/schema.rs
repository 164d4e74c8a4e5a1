//! `mirrord/schema`: the JSON Schema of this binary's config format.

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result;

use super::Backend;
use super::guard::guard;

impl Backend {
    /// `mirrord/schema`.
    pub async fn schema(&self) -> Result<Value> {
        guard("mirrord/schema", async {
            Ok(mirrord_config::schema::schema().clone())
        })
        .await
    }
}
