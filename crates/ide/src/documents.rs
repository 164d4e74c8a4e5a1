//! Which files are mirrord configs, and the open documents the editor owns (full text sync).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mirrord_config::Format;
use mirrord_config::source::LineIndex;

/// The language id plugins give mirrord config files they open under any name.
pub const LANGUAGE_ID: &str = "mirrord-config";

/// Documents larger than this are not checked (they are not configs anyone writes by hand).
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

/// Whether `path` names a mirrord config: `mirrord.json`, `*.mirrord.json`, or
/// `.mirrord/*.{json,toml,yaml,yml}`.
pub fn is_config_path(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    if name == "mirrord.json" || name.ends_with(".mirrord.json") {
        return true;
    }
    let in_mirrord_folder = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|folder| folder == ".mirrord");
    in_mirrord_folder
        && matches!(
            Format::from_path(path),
            Some(Format::Json | Format::Toml | Format::Yaml)
        )
        && !name.starts_with('.')
}

/// The format of a config document: by extension, JSON when the extension says nothing.
pub fn format_of(path: Option<&Path>, uri: &str) -> Format {
    path.and_then(Format::from_path)
        .or_else(|| Format::from_path(Path::new(uri.split(['?', '#']).next().unwrap_or(uri))))
        .unwrap_or(Format::Json)
}

/// One open document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The URI the editor uses.
    pub uri: String,
    /// Its file, for `file:` URIs.
    pub path: Option<PathBuf>,
    /// JSON, TOML or YAML.
    pub format: Format,
    /// The current text.
    pub text: String,
    /// The editor's version.
    pub version: i32,
    /// Line starts of `text`.
    pub index: LineIndex,
}

impl Document {
    /// A document with `text`.
    pub fn new(uri: String, path: Option<PathBuf>, text: String, version: i32) -> Document {
        let format = format_of(path.as_deref(), &uri);
        let index = LineIndex::new(&text);
        Document {
            uri,
            path,
            format,
            text,
            version,
            index,
        }
    }

    /// Replaces the text (full sync).
    pub fn set_text(&mut self, text: String, version: i32) {
        self.index = LineIndex::new(&text);
        self.text = text;
        self.version = version;
    }

    /// Whether the document is too large to check.
    pub fn too_large(&self) -> bool {
        self.text.len() > MAX_DOCUMENT_BYTES
    }

    /// The byte offset of an LSP position.
    pub fn offset(&self, line: u32, character: u32) -> usize {
        self.index.offset(&self.text, line, character)
    }
}

/// The open mirrord config documents, by URI.
#[derive(Debug, Default)]
pub struct Documents {
    open: HashMap<String, Document>,
}

impl Documents {
    /// Opens (or reopens) a document.
    pub fn open(&mut self, document: Document) {
        self.open.insert(document.uri.clone(), document);
    }

    /// Applies a full-text change; stale versions (older than what is held) are ignored.
    /// Returns whether the text changed.
    pub fn change(&mut self, uri: &str, text: String, version: i32) -> bool {
        match self.open.get_mut(uri) {
            Some(document) if version >= document.version => {
                document.set_text(text, version);
                true
            }
            _ => false,
        }
    }

    /// Closes a document.
    pub fn close(&mut self, uri: &str) -> Option<Document> {
        self.open.remove(uri)
    }

    /// An open document.
    pub fn get(&self, uri: &str) -> Option<&Document> {
        self.open.get(uri)
    }

    /// Whether a file is open in the editor (then the editor's text is the truth).
    pub fn is_open_path(&self, path: &Path) -> bool {
        self.open
            .values()
            .any(|document| document.path.as_deref() == Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_config_file_names() {
        for yes in [
            "/w/mirrord.json",
            "/w/api.mirrord.json",
            "/w/.mirrord/mirrord.json",
            "/w/.mirrord/staging.toml",
            "/w/.mirrord/x.yaml",
            "/w/.mirrord/x.yml",
        ] {
            assert!(is_config_path(Path::new(yes)), "{yes}");
        }
        for no in [
            "/w/package.json",
            "/w/mirrord.toml",
            "/w/.mirrord/notes.txt",
            "/w/.mirrord/.hidden.json",
        ] {
            assert!(!is_config_path(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn stale_changes_are_ignored() {
        let mut documents = Documents::default();
        documents.open(Document::new("file:///a.json".into(), None, "{}".into(), 1));
        assert!(documents.change("file:///a.json", "{ }".into(), 3));
        assert!(!documents.change("file:///a.json", "{  }".into(), 2));
        assert_eq!(documents.get("file:///a.json").unwrap().text, "{ }");
    }
}
