//! `mirrord verify-config`: check a config file and print every problem with line and column.
//!
//! Text output is one line per problem, `FILE:LINE:COL: error|warning: message` (1-based line and
//! column, like compilers print). JSON output is
//! `{"valid", "diagnostics": [{"severity", "message", "path", "range"}], "config"}` with LSP-style
//! 0-based ranges and the resolved config when valid.

use std::io::Write;
use std::path::PathBuf;

use mirrord_config::{Diagnostic, Overrides};

use crate::exit::{Outcome, report_error};

/// Output formats of `verify-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// `FILE:LINE:COL: severity: message` lines.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when the config is valid (warnings allowed), 1 when it has errors, 2 when the file cannot be read."
)]
pub(crate) struct VerifyConfigArgs {
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    /// The config file (.json, .toml, .yaml or .yml).
    file: PathBuf,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    valid: bool,
    diagnostics: &'a [Diagnostic],
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a mirrord_config::ResolvedConfig>,
}

pub(crate) fn run(args: VerifyConfigArgs) -> Outcome {
    // Environment overrides are not applied: this command checks the file as written.
    let loaded = match mirrord_config::load_file(&args.file, &Overrides::default()) {
        Ok(loaded) => loaded,
        Err(error) => {
            let message = match std::error::Error::source(&error) {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            };
            report_error(
                &message,
                Some("pass the path of a mirrord config file, e.g. .mirrord/mirrord.json"),
            );
            return Outcome::UsageOrIo;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        OutputFormat::Text => write_text(&mut stdout, &args.file, &loaded.diagnostics),
        OutputFormat::Json => {
            let report = JsonReport {
                valid: loaded.is_valid(),
                diagnostics: &loaded.diagnostics,
                config: loaded.config.as_ref(),
            };
            serde_json::to_writer_pretty(&mut stdout, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(stdout))
        }
    };
    if let Err(error) = written {
        report_error(&format!("cannot write to stdout: {error}"), None);
        return Outcome::UsageOrIo;
    }
    if loaded.is_valid() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

fn write_text(
    out: &mut impl Write,
    file: &std::path::Path,
    diagnostics: &[Diagnostic],
) -> std::io::Result<()> {
    for diagnostic in diagnostics {
        let start = diagnostic.range.start;
        writeln!(
            out,
            "{}:{}:{}: {}: {}",
            file.display(),
            start.line + 1,
            start.character + 1,
            diagnostic.severity,
            diagnostic.message
        )?;
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if errors == 0 {
        writeln!(
            out,
            "{}: valid ({warnings} warning{})",
            file.display(),
            if warnings == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
