//! Loading a config file: parse (JSON, TOML, YAML), validate against the schema, apply the
//! overrides, resolve, and report every problem with its position.

use std::path::Path;

use crate::diagnostic::{self, Diagnostic, Severity};
use crate::file::FileConfig;
use crate::overrides::Overrides;
use crate::resolved::{self, ResolvedConfig};
use crate::source::{self, Format, LineIndex};
use crate::{schema, validate};

/// The outcome of loading a config: the config when it has no errors, and every diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The config as written, after overrides; `None` when there are errors.
    pub file: Option<FileConfig>,
    /// The resolved config; `None` when there are errors.
    pub config: Option<ResolvedConfig>,
    /// Every problem found, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether the config can be used (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.config.is_some()
    }
}

/// Errors that prevent reading a config file at all (as opposed to problems in its content).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The extension names no supported format.
    #[error(
        "cannot tell the format of config file {path}: use a .json, .toml, .yaml or .yml extension"
    )]
    UnknownFormat {
        /// The file.
        path: String,
    },
}

/// Parses and validates `text` without overrides or resolution: the diagnostics an editor shows.
/// Takes time linear in the size of the text.
pub fn check_str(text: &str, format: Format) -> (Option<FileConfig>, Vec<Diagnostic>) {
    check_str_cancellable(text, format, &|| false).unwrap_or_default()
}

/// [`check_str`] that gives up, returning `None`, once `cancelled` returns true (an editor's
/// newer version of the document makes this one's check useless). `cancelled` is asked between
/// the steps and every few hundred values during validation.
pub fn check_str_cancellable(
    text: &str,
    format: Format,
    cancelled: &dyn Fn() -> bool,
) -> Option<(Option<FileConfig>, Vec<Diagnostic>)> {
    let index = LineIndex::new(text);
    let (node, syntax_errors) = source::parse(text, format);
    if cancelled() {
        return None;
    }
    let mut raw: Vec<diagnostic::RawDiagnostic> = syntax_errors
        .into_iter()
        .map(|error| {
            diagnostic::RawDiagnostic::error(&Default::default(), error.span, error.message)
        })
        .collect();
    let mut file_config = None;
    if let Some(node) = &node {
        raw.extend(validate::validate(node, schema::schema(), cancelled)?);
        if !raw.iter().any(|d| d.severity == Severity::Error) {
            match serde_json::from_value::<FileConfig>(node.to_json()) {
                Ok(config) => file_config = Some(config),
                Err(error) => raw.push(diagnostic::RawDiagnostic::error(
                    &Default::default(),
                    node.span.start..node.span.start,
                    format!("invalid config: {error}"),
                )),
            }
        }
    }
    raw.sort_by_key(|d| (d.span.start, d.severity));
    raw.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    let diagnostics = raw.into_iter().map(|d| d.locate(text, &index)).collect();
    Some((file_config, diagnostics))
}

/// Loads a config from text: parse, validate, apply `overrides` (already merged from the
/// environment and the command line), resolve.
pub fn load_str(text: &str, format: Format, overrides: &Overrides) -> Loaded {
    let (file, diagnostics) = check_str(text, format);
    finish_loading(file, diagnostics, overrides)
}

/// Loads a config from bytes, reporting invalid UTF-8 as a diagnostic at the first bad byte.
pub fn load_bytes(bytes: &[u8], format: Format, overrides: &Overrides) -> Loaded {
    match std::str::from_utf8(bytes) {
        Ok(text) => load_str(text, format, overrides),
        Err(error) => {
            let valid = &bytes[..error.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let text = std::str::from_utf8(valid).unwrap_or_default();
            let index = LineIndex::new(text);
            let end = text.len();
            let diagnostic = diagnostic::RawDiagnostic::error(
                &Default::default(),
                end..end,
                "the file is not valid UTF-8".to_owned(),
            )
            .locate(text, &index);
            Loaded {
                file: None,
                config: None,
                diagnostics: vec![diagnostic],
            }
        }
    }
}

/// Loads the config file at `path` (format by extension).
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Loaded, LoadError> {
    let format = Format::from_path(path).ok_or_else(|| LoadError::UnknownFormat {
        path: path.display().to_string(),
    })?;
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(load_bytes(&bytes, format, overrides))
}

/// The config of a session without a config file: defaults plus `overrides`.
pub fn load_without_file(overrides: &Overrides) -> Loaded {
    finish_loading(Some(FileConfig::default()), Vec::new(), overrides)
}

fn finish_loading(
    file: Option<FileConfig>,
    mut diagnostics: Vec<Diagnostic>,
    overrides: &Overrides,
) -> Loaded {
    let mut file = file;
    if let Some(config) = &mut file {
        diagnostics.extend(overrides.apply(config));
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Loaded {
            file: None,
            config: None,
            diagnostics,
        };
    }
    let config = file.as_ref().map(resolved::resolve);
    Loaded {
        file,
        config,
        diagnostics,
    }
}
