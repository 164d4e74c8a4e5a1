//! The one tracing set-up of mirrord's processes that log: the agent, the intproxy and the IDE
//! sidecar (`mirrord intproxy`, `mirrord ide`), and the test cluster's node runner. Each logs
//! without colours (to stderr, which the session sends to a log file, or to a file of its own),
//! as text or as JSON lines, filtered by a `RUST_LOG`-style filter. A filter that does not parse
//! is replaced by the process's fallback, and the first line logged says so.
//!
//! The preloaded layer logs differently (to a file opened behind its hooks' back, see
//! `layer/src/logging.rs`) and does not use this crate.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Stderr;
use std::sync::Mutex;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How a process logs.
#[derive(Debug, Clone)]
pub struct LogOptions<'a> {
    /// The `RUST_LOG`-style filter asked for (`--log-level`, a config key).
    pub filter: &'a str,
    /// The filter used when `filter` does not parse.
    pub fallback: &'a str,
    /// JSON lines instead of text.
    pub json: bool,
}

impl<'a> LogOptions<'a> {
    /// Text logs with `filter`, falling back to `fallback`.
    pub fn new(filter: &'a str, fallback: &'a str) -> Self {
        Self {
            filter,
            fallback,
            json: false,
        }
    }

    /// JSON lines when `json` is set.
    pub fn json(self, json: bool) -> Self {
        Self { json, ..self }
    }
}

/// Where the logs go.
#[derive(Debug)]
pub enum LogTarget {
    /// The process's stderr.
    Stderr,
    /// A file opened by the caller (appended to).
    File(File),
}

/// Installs the process's global subscriber. Call once, first thing in `main`.
pub fn init(options: &LogOptions<'_>, target: LogTarget) {
    let (subscriber, problem) = match target {
        LogTarget::Stderr => subscriber(options, std::io::stderr as fn() -> Stderr),
        LogTarget::File(file) => subscriber(options, Mutex::new(file)),
    };
    // A second call (a test harness that already set one) keeps the first.
    if tracing::subscriber::set_global_default(subscriber).is_ok()
        && let Some(problem) = problem
    {
        tracing::warn!("{problem}");
    }
}

/// The subscriber for `options` writing to `writer`, and what to say first when the filter did
/// not parse.
pub fn subscriber<W>(
    options: &LogOptions<'_>,
    writer: W,
) -> (Box<dyn Subscriber + Send + Sync>, Option<String>)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, problem) = match EnvFilter::try_new(options.filter) {
        Ok(filter) => (filter, None),
        Err(error) => (
            EnvFilter::try_new(options.fallback).unwrap_or_else(|_| EnvFilter::new("info")),
            Some(format!(
                "the log filter `{}` is not valid ({error}); logging with `{}`",
                options.filter, options.fallback
            )),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let subscriber: Box<dyn Subscriber + Send + Sync> = if options.json {
        Box::new(builder.json().finish())
    } else {
        Box::new(builder.finish())
    };
    (subscriber, problem)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;

    /// A writer that keeps what was written, for reading back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    fn logged(options: &LogOptions<'_>) -> (String, Option<String>) {
        let captured = Captured::default();
        let (subscriber, problem) = subscriber(options, captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(port = 80, "listening");
            tracing::debug!("details");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (text, problem)
    }

    #[test]
    fn text_logs_are_filtered_and_without_colours() {
        let (text, problem) = logged(&LogOptions::new("info", "warn"));
        assert_eq!(problem, None);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("INFO"), "{text}");
        assert!(text.contains("listening port=80"), "{text}");
        assert!(!text.contains('\u{1b}'), "no escape codes: {text:?}");
    }

    #[test]
    fn json_logs_are_one_object_a_line() {
        let (text, _) = logged(&LogOptions::new("debug", "warn").json(true));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with('{') && lines[0].ends_with('}'),
            "{text}"
        );
        assert!(lines[0].contains(r#""message":"listening""#), "{text}");
        assert!(lines[0].contains(r#""port":80"#), "{text}");
    }

    #[test]
    fn an_invalid_filter_falls_back_and_says_so() {
        let (text, problem) = logged(&LogOptions::new("mirrord=loud", "warn"));
        assert_eq!(text, "", "warn lets no info through");
        let problem = problem.expect("the filter was invalid");
        assert!(
            problem.starts_with("the log filter `mirrord=loud` is not valid")
                && problem.ends_with("logging with `warn`"),
            "{problem}"
        );
    }
}
