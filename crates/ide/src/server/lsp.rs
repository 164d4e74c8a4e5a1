//! The standard LSP requests and notifications: initialisation, document sync, completion,
//! hover and quick fixes for config documents.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tower_lsp_server::LanguageServer;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use super::guard::{guard, guard_notification};
use super::{Backend, DEFAULT_DIAGNOSTICS_DELAY, lock, uri_key, uri_path};
use crate::documents::{self, Document};
use crate::errors;
use crate::language::{self, ClientSupport};
use crate::protocol::InitializationOptions;

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        guard("initialize", async move {
            let options: InitializationOptions = params
                .initialization_options
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| errors::invalid_params(format!("initializationOptions: {error}")))?
                .unwrap_or_default();
            let mut folders: Vec<PathBuf> = params
                .workspace_folders
                .iter()
                .flatten()
                .filter_map(|folder| uri_path(&folder.uri))
                .collect();
            #[allow(
                deprecated,
                reason = "clients without workspace folders still send rootUri"
            )]
            if folders.is_empty()
                && let Some(root) = params.root_uri.as_ref().and_then(uri_path)
            {
                folders.push(root);
            }
            let snippets = params
                .capabilities
                .text_document
                .as_ref()
                .and_then(|text| text.completion.as_ref())
                .and_then(|completion| completion.completion_item.as_ref())
                .and_then(|item| item.snippet_support)
                .unwrap_or(false);
            let work_done_progress = params
                .capabilities
                .window
                .as_ref()
                .and_then(|window| window.work_done_progress)
                .unwrap_or(false);
            {
                let mut settings = lock(&self.shared.settings);
                settings.diagnostics_delay = options
                    .diagnostics_delay_ms
                    .map_or(DEFAULT_DIAGNOSTICS_DELAY, Duration::from_millis);
                settings.watch_files = options.watch_files.unwrap_or(true);
                settings.folders = folders;
                settings.support = ClientSupport { snippets };
                settings.work_done_progress = work_done_progress;
            }
            self.start_session_tasks();
            Ok(InitializeResult {
                capabilities: ServerCapabilities {
                    text_document_sync: Some(TextDocumentSyncCapability::Kind(
                        TextDocumentSyncKind::FULL,
                    )),
                    completion_provider: Some(CompletionOptions {
                        trigger_characters: Some(["\"", ":", "/", "."].map(str::to_owned).to_vec()),
                        ..CompletionOptions::default()
                    }),
                    hover_provider: Some(HoverProviderCapability::Simple(true)),
                    code_action_provider: Some(CodeActionProviderCapability::Options(
                        CodeActionOptions {
                            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                            ..CodeActionOptions::default()
                        },
                    )),
                    experimental: Some(json!({
                        "mirrord": {
                            "version": env!("CARGO_PKG_VERSION"),
                            "requests": crate::protocol::REQUESTS,
                            "notifications": crate::protocol::NOTIFICATIONS,
                        }
                    })),
                    ..ServerCapabilities::default()
                },
                server_info: Some(ServerInfo {
                    name: "mirrord".to_owned(),
                    version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                }),
                ..InitializeResult::default()
            })
        })
        .await
    }

    async fn initialized(&self, _: InitializedParams) {
        guard_notification("initialized", async {
            // Generate the schema now rather than on the first keystroke.
            tokio::task::spawn_blocking(|| {
                mirrord_config::schema::schema();
            });
            self.start_watching();
        })
        .await;
    }

    async fn shutdown(&self) -> Result<()> {
        let sessions = self.shared.sessions.clone();
        let _ = tokio::task::spawn_blocking(move || sessions.end_all()).await;
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        guard_notification("textDocument/didOpen", async move {
            let item = params.text_document;
            if !Self::is_config_document(&item.uri, &item.language_id) {
                return;
            }
            let key = uri_key(&item.uri);
            lock(&self.shared.documents).open(Document::new(
                key.clone(),
                uri_path(&item.uri),
                item.text,
                item.version,
            ));
            let generation = self.bump_generation(&key);
            self.check_open_document(&item.uri, generation).await;
        })
        .await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        guard_notification("textDocument/didChange", async move {
            let key = uri_key(&params.text_document.uri);
            let Some(change) = params.content_changes.into_iter().last() else {
                return;
            };
            if change.range.is_some() {
                tracing::warn!("ignoring an incremental change; the sidecar asked for full text");
                return;
            }
            if !lock(&self.shared.documents).change(&key, change.text, params.text_document.version)
            {
                return;
            }
            let generation = self.bump_generation(&key);
            let delay = self.settings().diagnostics_delay;
            let uri = params.text_document.uri;
            if delay.is_zero() {
                self.check_open_document(&uri, generation).await;
                return;
            }
            let backend = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if backend.generation(&key) == generation {
                    backend.check_open_document(&uri, generation).await;
                }
            });
        })
        .await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        guard_notification("textDocument/didClose", async move {
            let key = uri_key(&params.text_document.uri);
            let closed = lock(&self.shared.documents).close(&key);
            lock(&self.shared.checked).remove(&key);
            self.bump_generation(&key);
            let on_disk = closed
                .and_then(|document| document.path)
                .filter(|path| path.is_file() && documents::is_config_path(path));
            match on_disk {
                // The file stays in the workspace: show what is on disk.
                Some(path) => self.check_disk_file(&path).await,
                None => {
                    self.shared
                        .client
                        .publish_diagnostics(params.text_document.uri, Vec::new(), None)
                        .await;
                }
            }
        })
        .await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        guard_notification("workspace/didChangeWatchedFiles", async move {
            for change in params.changes {
                if let Some(path) = uri_path(&change.uri)
                    && documents::is_config_path(&path)
                {
                    self.check_disk_file(&path).await;
                }
            }
        })
        .await;
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        guard("textDocument/completion", async move {
            let position = params.text_document_position;
            let key = uri_key(&position.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let offset = document.offset(position.position.line, position.position.character);
            let support = self.settings().support;
            let targets = &self.shared.targets;
            let items =
                language::completion(&document, offset, support, &mut || targets.for_completion());
            Ok(Some(CompletionResponse::List(CompletionList {
                is_incomplete: false,
                items,
            })))
        })
        .await
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        guard("textDocument/hover", async move {
            let position = params.text_document_position_params;
            let key = uri_key(&position.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let offset = document.offset(position.position.line, position.position.character);
            Ok(language::hover(&document, offset))
        })
        .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        guard("textDocument/codeAction", async move {
            let key = uri_key(&params.text_document.uri);
            let Some(document) = lock(&self.shared.documents).get(&key).cloned() else {
                return Ok(None);
            };
            if document.too_large() {
                return Ok(None);
            }
            let cached = lock(&self.shared.checked)
                .get(&key)
                .filter(|(version, _)| *version == document.version)
                .map(|(_, diagnostics)| diagnostics.clone());
            let diagnostics = cached
                .unwrap_or_else(|| mirrord_config::check_str(&document.text, document.format).1);
            let actions = language::code_actions(
                &params.text_document.uri,
                &document,
                params.range,
                &diagnostics,
            );
            Ok(Some(actions))
        })
        .await
    }
}
