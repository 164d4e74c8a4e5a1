//! Starting a program under the filter, with the supervisor serving it.
//!
//! The handover, without any intercepted call on the way: the child (between `fork` and `exec`)
//! installs the filter, writes its pid and the listener's descriptor number to a pipe, and waits on
//! a second pipe; a thread of the supervisor takes a copy of the listener out of the child
//! (`pidfd_getfd`), starts the workers, and says go; the child then `exec`s the program, whose
//! very first `openat` (its dynamic loader's) is already served. The listener is close-on-exec in
//! the child, so the program never holds it.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io::{self, Read, Write},
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::{Arc, mpsc},
};

use mirrord_config::resolved::ResolvedConfig;

use crate::{
    filter,
    fs_policy::{self, FsPolicy, LOCAL_DIR_VARIABLES, ProcessPaths},
    placeholders::Placeholders,
    remote::Endpoints,
    serve::{self, Shared},
    sys::{self, Listener},
};

/// What to run and the session it runs in.
#[derive(Debug)]
pub struct Launch {
    /// The program, as found on `PATH`.
    pub program: PathBuf,
    /// Its arguments (without the program).
    pub arguments: Vec<OsString>,
    /// Its whole environment (the layer not preloaded).
    pub environment: BTreeMap<OsString, OsString>,
    /// The session's resolved config.
    pub config: ResolvedConfig,
    /// The session's intproxy and agent.
    pub endpoints: Endpoints,
}

/// Why the program could not be started on the system-call path.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The kernel lacks a facility.
    #[error("this kernel cannot run the system-call path: it lacks {0}")]
    Kernel(&'static str),
    /// A pattern of `feature.fs` does not compile.
    #[error("feature.fs: {0}")]
    Policy(#[from] regex::Error),
    /// The outgoing filter does not parse.
    #[error("{0}")]
    Network(String),
    /// The placeholder directory cannot be made.
    #[error("cannot create the supervisor's directory under {path}: {source}")]
    Placeholders {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The program could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The filter's listener could not be taken over.
    #[error("cannot take over the seccomp listener of `{program}`: {message}")]
    Handover {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
}

/// Checks that this kernel has everything the system-call path uses.
pub fn check_kernel() -> Result<(), LaunchError> {
    sys::check_kernel().map_err(LaunchError::Kernel)
}

/// Starts the program under the filter, serves it until it exits, and returns its status.
/// Processes it leaves behind keep their filter; once the supervisor is gone their intercepted
/// calls fail with `ENOSYS`.
pub fn run(launch: Launch) -> Result<ExitStatus, LaunchError> {
    check_kernel()?;
    let policy = if launch.config.feature.fs.mode == mirrord_config::file::FsMode::Local {
        None
    } else {
        Some(FsPolicy::new(
            &launch.config.feature.fs,
            process_paths(&launch),
        )?)
    };
    let outgoing = crate::net::OutgoingPolicy::new(&launch.config).map_err(LaunchError::Network)?;
    let outgoing = outgoing.is_enabled().then_some(outgoing);
    let incoming = crate::incoming::Incoming::new(&launch.config.feature.network.incoming);
    let calls = filter::intercepted_calls(&launch.config);
    let endpoints = launch.endpoints.clone();
    let skipped = skipped_names(&launch.config);
    supervise(
        &launch.program,
        &launch.arguments,
        &launch.environment,
        &calls,
        move |listener, placeholders| Shared {
            listener,
            policy,
            outgoing,
            incoming,
            placeholders,
            endpoints,
            local_listeners: Default::default(),
            skipped,
            waits: Default::default(),
            placed: Default::default(),
        },
    )
}

/// Spawns `program` with the filter for `calls`, hands the listener to workers sharing what
/// `shared` makes of it, and waits for the program.
fn supervise(
    program_path: &Path,
    arguments: &[OsString],
    environment: &BTreeMap<OsString, OsString>,
    calls: &[libc::c_long],
    shared: impl FnOnce(Listener, Placeholders) -> Shared + Send + 'static,
) -> Result<ExitStatus, LaunchError> {
    let base = std::env::temp_dir();
    let placeholders = Placeholders::new(&base).map_err(|source| LaunchError::Placeholders {
        path: base.display().to_string(),
        source,
    })?;
    let program = filter::program(calls);
    let name = program_path.display().to_string();
    let spawn_error = |source| LaunchError::Spawn {
        program: name.clone(),
        source,
    };

    let (mut report_rx, report_tx) = io::pipe().map_err(spawn_error)?;
    let (go_rx, mut go_tx) = io::pipe().map_err(spawn_error)?;
    let mut command = Command::new(program_path);
    command.args(arguments).env_clear().envs(environment);
    sys::install_before_exec(
        &mut command,
        program,
        report_tx.as_raw_fd(),
        go_rx.as_raw_fd(),
        !sys::is_root(),
    );

    let (handover_tx, handover_rx) = mpsc::channel::<Result<Arc<Shared>, String>>();
    let helper = std::thread::Builder::new()
        .name("mirrord-supervisor-handover".into())
        .spawn(move || {
            let mut report = [0u8; 8];
            if report_rx.read_exact(&mut report).is_err() {
                // The child failed before installing the filter; spawn says why.
                return;
            }
            let pid = u32::from_ne_bytes(report[..4].try_into().unwrap());
            let fd = i32::from_ne_bytes(report[4..].try_into().unwrap());
            let taken = sys::take_descriptor(pid, fd).map_err(|error| {
                format!(
                    "pidfd_getfd of the child's descriptor {fd}: {error} (ptrace restrictions?)"
                )
            });
            let result = taken.map(|listener| {
                let shared = Arc::new(shared(Listener::new(listener), placeholders));
                serve::start(Arc::clone(&shared));
                shared
            });
            let go = [u8::from(result.is_ok())];
            let _ = go_tx.write_all(&go);
            let _ = handover_tx.send(result);
        })
        .map_err(spawn_error)?;

    let spawned = command.spawn();
    // The child has exec'd or failed: our copies of its pipe ends must go, so that the helper
    // sees the end of the report pipe if the child never wrote to it.
    drop(report_tx);
    drop(go_rx);
    let _ = helper.join();
    let handover = handover_rx.recv().ok();
    let (mut child, shared) = match (spawned, handover) {
        (Ok(child), Some(Ok(shared))) => (child, shared),
        (_, Some(Err(message))) => {
            return Err(LaunchError::Handover {
                program: name,
                message,
            });
        }
        (Err(source), _) => return Err(spawn_error(source)),
        (Ok(mut child), None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Handover {
                program: name,
                message: "the child never reported its listener".into(),
            });
        }
    };
    sys::ignore_terminal_signals();
    let status = child.wait().map_err(spawn_error);
    // The workers keep the shared state until the process exits, so it is never dropped.
    shared.placeholders.remove_all();
    status
}

/// The executable names whose calls run untouched: `skip_processes` (empty by default, so a
/// default session pays nothing for it). The build tools the layer also skips are not added: a
/// check costs a `readlink` per intercepted call, and a launch that runs them (the IDE's Go
/// launches) names them in `skip_processes`.
fn skipped_names(config: &ResolvedConfig) -> Vec<String> {
    config.skip_processes.clone()
}

/// The facts the built-in file lists use, for the program about to run.
fn process_paths(launch: &Launch) -> ProcessPaths {
    let absolute = |path: &Path| -> Option<Vec<u8>> {
        let bytes = path.as_os_str().as_bytes();
        (bytes.first() == Some(&b'/')).then(|| fs_policy::normalize(bytes).into_owned())
    };
    let variable = |name: &str| launch.environment.get(&OsString::from(name));
    ProcessPaths {
        home: variable("HOME").and_then(|home| absolute(Path::new(home))),
        executable: std::fs::canonicalize(&launch.program)
            .ok()
            .and_then(|path| absolute(&path)),
        startup_cwd: std::env::current_dir().ok().and_then(|cwd| absolute(&cwd)),
        local_dirs: LOCAL_DIR_VARIABLES
            .iter()
            .filter_map(|name| variable(name))
            .filter_map(|dir| absolute(Path::new(dir)))
            .collect(),
    }
}
