//! `mirrord exec` for programs the layer cannot reach (Go, statically linked): which path a
//! command takes, the one line that says so, and running it under `mirrord-supervisor` (the
//! `mirrord` process stays as the supervisor and exits with the program's status).

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
};

use mirrord_config::resolved::ResolvedConfig;
use mirrord_supervisor::{Endpoints, Launch, ProgramKind, SyscallReason};

use crate::exit::{Outcome, report_error};

/// The path a command takes.
#[derive(Debug)]
pub(crate) enum Route {
    /// The layer, preloaded (libc programs, scripts, programs not found here).
    Layer,
    /// The system-call path.
    Syscall {
        /// The program, found on `PATH`.
        program: PathBuf,
        /// Why.
        reason: SyscallReason,
    },
}

/// Reads the program's headers. An error is one the user must see (a program for another
/// machine); a program that is not found takes the layer path and fails there as before.
pub(crate) fn choose(program: &OsStr) -> Result<Route, String> {
    let Some(found) =
        mirrord_supervisor::resolve(Path::new(program), std::env::var_os("PATH").as_deref())
    else {
        return Ok(Route::Layer);
    };
    match mirrord_supervisor::detect(&found) {
        Ok(ProgramKind::Libc) => Ok(Route::Layer),
        Ok(ProgramKind::Syscall(reason)) => {
            mirrord_supervisor::check_kernel().map_err(|error| {
                format!(
                    "`{}` needs the system-call path ({reason}), but {error}",
                    program.to_string_lossy()
                )
            })?;
            Ok(Route::Syscall {
                program: found,
                reason,
            })
        }
        Err(mirrord_supervisor::DetectError::Unreadable { .. }) => Ok(Route::Layer),
        Err(error) => Err(error.to_string()),
    }
}

/// Tells the user, in one line on stderr, that the program takes the system-call path and why.
#[allow(clippy::print_stderr, reason = "progress is for the user, on stderr")]
pub(crate) fn announce(program: &OsStr, reason: SyscallReason) {
    eprintln!(
        "mirrord: `{}` takes the system-call path (seccomp user notification): {reason}",
        program.to_string_lossy()
    );
}

/// Runs the program under the supervisor and returns its exit status as ours (a signal `N`
/// becomes `128 + N`, as shells report it).
pub(crate) fn run(
    program: PathBuf,
    arguments: &[OsString],
    mut environment: BTreeMap<OsString, OsString>,
    layer_path: &Path,
    config: &ResolvedConfig,
    session: &mirrord_session::Session,
) -> Outcome {
    remove_layer(&mut environment, layer_path);
    let endpoints = Endpoints {
        intproxy: session.intproxy_addr,
        token: session.token.clone(),
        agent_fds: session
            .agent_fd_socket
            .clone()
            .filter(|_| config.feature.fs.native_fds),
    };
    supervise(program, arguments, environment, config, endpoints)
}

/// Runs `program` under the supervisor of a session whose endpoints are known, with
/// `environment` as it is (the layer already taken out), and returns its exit status as ours.
pub(crate) fn supervise(
    program: PathBuf,
    arguments: &[OsString],
    environment: BTreeMap<OsString, OsString>,
    config: &ResolvedConfig,
    endpoints: Endpoints,
) -> Outcome {
    let launch = Launch {
        program,
        arguments: arguments.to_vec(),
        environment,
        config: config.clone(),
        endpoints,
    };
    match mirrord_supervisor::run(launch) {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exit(u8::try_from(code).unwrap_or(1)),
            (None, Some(signal)) => Outcome::Exit(u8::try_from(128 + signal).unwrap_or(255)),
            (None, None) => Outcome::Failure,
        },
        Err(error) => {
            report_error(&error.to_string(), None);
            Outcome::Failure
        }
    }
}

/// Takes the layer out of `LD_PRELOAD` (other preloaded libraries stay): on this path the filter
/// serves every process of the tree, and a layer as well would handle calls twice.
pub(crate) fn remove_layer(environment: &mut BTreeMap<OsString, OsString>, layer_path: &Path) {
    let key = OsString::from("LD_PRELOAD");
    let Some(preload) = environment.get(&key) else {
        return;
    };
    let kept: Vec<&str> = preload
        .to_str()
        .unwrap_or_default()
        .split([':', ' '])
        .filter(|entry| !entry.is_empty() && Path::new(entry) != layer_path)
        .collect();
    if kept.is_empty() {
        environment.remove(&key);
    } else {
        let joined = kept.join(":");
        environment.insert(key, joined.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_layer_leaves_ld_preload() {
        let layer = Path::new("/opt/mirrord/libmirrord_layer.so");
        let mut environment = BTreeMap::from([(
            OsString::from("LD_PRELOAD"),
            OsString::from("/opt/mirrord/libmirrord_layer.so:/usr/lib/other.so"),
        )]);
        remove_layer(&mut environment, layer);
        assert_eq!(
            environment.get(&OsString::from("LD_PRELOAD")),
            Some(&OsString::from("/usr/lib/other.so"))
        );
        let mut alone = BTreeMap::from([(
            OsString::from("LD_PRELOAD"),
            OsString::from("/opt/mirrord/libmirrord_layer.so"),
        )]);
        remove_layer(&mut alone, layer);
        assert!(alone.is_empty());
    }
}
