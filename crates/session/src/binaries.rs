//! Finding the files shipped beside the `mirrord` binary (the agent, the layer) and the binary
//! itself, which the session re-runs as `mirrord intproxy` and `mirrord sandbox serve`.

use std::path::PathBuf;

use crate::SessionError;

/// The running `mirrord` binary.
pub(crate) fn current_exe() -> Result<PathBuf, SessionError> {
    std::env::current_exe().map_err(|source| SessionError::Spawn {
        what: "session (cannot find the mirrord binary)",
        source,
    })
}

/// A file shipped beside the `mirrord` binary (or named by `env`).
pub fn artifact(
    file_name: &str,
    what: &'static str,
    env: &'static str,
) -> Result<PathBuf, SessionError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let beside = current_exe()?.with_file_name(file_name);
    if beside.exists() {
        return Ok(beside);
    }
    Err(SessionError::MissingArtifact {
        what,
        looked_at: beside.display().to_string(),
        env,
    })
}
