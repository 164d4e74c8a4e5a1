//! Starting a helper process (the agent, the intproxy) and waiting for the line it prints on
//! stdout once ready, or for the reason it prints when it cannot start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::SessionError;

/// What a helper (the intproxy) prints on stdout, followed by the reason on one line, when it
/// cannot start; `mirrord exec` shows the reason instead of waiting for its time limit.
pub const HELPER_FAILED_PREFIX: &str = "MIRRORD_FAILED=";

/// Spawns a helper in its own process group (so the user's Ctrl-C goes to the user's process
/// only), logs its stderr to `log` (the file and its path), and waits for the `prefix`-line it
/// prints when ready.
pub(crate) fn spawn_and_read<T: std::str::FromStr>(
    mut command: Command,
    what: &'static str,
    prefix: &str,
    (log_file, log): (std::fs::File, &Path),
    timeout: Duration,
) -> Result<(T, Child), SessionError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child: Child = command
        .spawn()
        .map_err(|source| SessionError::Spawn { what, source })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (line_tx, line_rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
            match line.strip_prefix(&prefix) {
                Some(value) => Some(Ok(value.to_owned())),
                None => line
                    .strip_prefix(HELPER_FAILED_PREFIX)
                    .map(|message| Err(message.to_owned())),
            }
        });
        let _ = line_tx.send(found);
        // Keep draining so the helper never blocks on a full pipe.
        for _ in lines {}
    });
    let startup = || SessionError::Startup {
        what,
        seconds: timeout.as_secs(),
        log: log.display().to_string(),
    };
    match line_rx.recv_timeout(timeout) {
        Ok(Some(Err(message))) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(SessionError::HelperFailed {
                what,
                message,
                log: log.display().to_string(),
            })
        }
        Ok(Some(Ok(value))) => match value.trim().parse() {
            Ok(value) => Ok((value, child)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(startup())
            }
        },
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(startup())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// Regression: an intproxy that could not reach the agent (e.g. "no forward found for port …")
    /// only left the reason in its log, and `mirrord exec` waited for its time limit and said "did
    /// not start within 30 s".
    #[test]
    fn a_helper_that_cannot_start_says_why_at_once() {
        let log =
            std::env::temp_dir().join(format!("mirrord-helper-failed-{}", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut helper = Command::new("sh");
        helper.args([
            "-c",
            "echo 'MIRRORD_FAILED=the port-forward to the agent failed: no forward found for port 4000'; sleep 600",
        ]);
        let result = spawn_and_read::<SocketAddr>(
            helper,
            "internal proxy",
            "MIRRORD_INTPROXY_LISTENING=",
            (log_file, &log),
            Duration::from_secs(600),
        );
        let _ = std::fs::remove_file(&log);
        let error = result.expect_err("the helper failed");
        assert!(
            matches!(&error, SessionError::HelperFailed { message, .. }
                if message == "the port-forward to the agent failed: no forward found for port 4000"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the internal proxy could not start: the port-forward")
        );
    }
}
