//! The layer's own log: `tracing` events appended to the file named by `MIRRORD_LAYER_LOG` (filtered by
//! `MIRRORD_LAYER_LOG_LEVEL`, default `info`). Without that variable nothing is logged. The layer never
//! writes to the user process's stdout or stderr, and panics inside the layer are logged here instead of
//! printed.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    sync::Arc,
};

use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

/// The environment variable naming the log file.
pub(crate) const LOG_FILE_VARIABLE: &str = "MIRRORD_LAYER_LOG";
/// The environment variable holding the log filter.
pub(crate) const LOG_LEVEL_VARIABLE: &str = "MIRRORD_LAYER_LOG_LEVEL";

/// Installs the file logger (when asked for) and a panic hook that logs instead of printing.
pub(crate) fn initialize() {
    // This library has its own copy of `std`, so this hook sees only the layer's panics, never the user
    // program's (even when it is written in Rust).
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic inside the layer");
    }));

    let Some(path) = std::env::var_os(LOG_FILE_VARIABLE).filter(|path| !path.is_empty()) else {
        return;
    };
    let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
    else {
        return;
    };
    let filter = std::env::var(LOG_LEVEL_VARIABLE).unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = fmt()
        .with_writer(PidPrefixed(Arc::new(file)))
        .with_ansi(false)
        .with_thread_ids(true)
        .with_env_filter(filter)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Writes each log line with the process id in front (forked children share the file).
struct PidPrefixed(Arc<File>);

impl<'a> MakeWriter<'a> for PidPrefixed {
    type Writer = PidPrefixedLine;

    fn make_writer(&'a self) -> Self::Writer {
        PidPrefixedLine(self.0.clone())
    }
}

/// One event's writer: every `write` becomes one appended `pid N: …` record.
struct PidPrefixedLine(Arc<File>);

impl Write for PidPrefixedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut line = format!("pid {}: ", std::process::id()).into_bytes();
        line.extend_from_slice(buf);
        (&*self.0).write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
