//! Diagnostics: every problem found in a config, with severity, key path and an LSP-style range.

use serde::{Deserialize, Serialize};

use crate::source::{LineIndex, Span};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config cannot be used.
    Error,
    /// The config works, but something is deprecated or ignored.
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A 0-based line and UTF-16 character offset, as in the Language Server Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// 0-based line.
    pub line: u32,
    /// 0-based UTF-16 code unit offset in the line.
    pub character: u32,
}

/// A range between two positions, end exclusive, as in the Language Server Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Range {
    /// Where the problem starts.
    pub start: Position,
    /// Where it ends (exclusive).
    pub end: Position,
}

impl Range {
    /// The range of byte `span` in `text`.
    pub fn from_span(text: &str, index: &LineIndex, span: &Span) -> Range {
        let (line, character) = index.position(text, span.start);
        let start = Position { line, character };
        let (line, character) = index.position(text, span.end.max(span.start));
        Range {
            start,
            end: Position { line, character },
        }
    }
}

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and, where it can, how to fix it.
    pub message: String,
    /// The key path, e.g. `feature.network.incoming.mode` or `feature.fs.read_only[1]`; empty
    /// for the whole document.
    pub path: String,
    /// Where in the file.
    pub range: Range,
    /// A text that can replace the range to fix the problem (a "did you mean" key or value, or
    /// the new spelling of a deprecated key); editors offer it as a quick fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

impl Diagnostic {
    /// Whether this is an error (the config cannot be used).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A diagnostic before positions are computed (byte spans, path segments).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawDiagnostic {
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) path: KeyPath,
    pub(crate) span: Span,
    pub(crate) replacement: Option<String>,
}

impl RawDiagnostic {
    pub(crate) fn error(path: &KeyPath, span: Span, message: String) -> RawDiagnostic {
        RawDiagnostic {
            severity: Severity::Error,
            message,
            path: path.clone(),
            span,
            replacement: None,
        }
    }

    pub(crate) fn warning(path: &KeyPath, span: Span, message: String) -> RawDiagnostic {
        RawDiagnostic {
            severity: Severity::Warning,
            message,
            path: path.clone(),
            span,
            replacement: None,
        }
    }

    pub(crate) fn with_replacement(mut self, replacement: Option<String>) -> RawDiagnostic {
        self.replacement = replacement;
        self
    }

    pub(crate) fn locate(self, text: &str, index: &LineIndex) -> Diagnostic {
        Diagnostic {
            severity: self.severity,
            message: self.message,
            path: self.path.to_string(),
            range: Range::from_span(text, index, &self.span),
            replacement: self.replacement,
        }
    }
}

/// A path of keys and list indexes from the document root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<PathSegment>);

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl KeyPath {
    /// This path extended by an object key.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_owned()));
        KeyPath(segments)
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        KeyPath(segments)
    }

    /// The segments.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// The last key, if the path ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(PathSegment::Key(key)) => Some(key),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if position == 0 => write!(formatter, "{key}")?,
                PathSegment::Key(key) => write!(formatter, ".{key}")?,
                PathSegment::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}
