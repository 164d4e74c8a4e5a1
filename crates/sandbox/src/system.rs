//! Thin wrappers over the one external program the sandbox runs (`ip`) and the `/proc` files and
//! system calls it uses: checking that the program is installed before anything is made, running
//! a command and reporting its failure well, the root check, entering a network namespace on a
//! thread of its own, and finding and signalling processes.

use std::{
    ffi::OsStr,
    fs::{self, File},
    io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sched::CloneFlags,
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::SandboxError;

/// Every external program a sandbox runs, with the Debian package that ships it. Everything
/// else (namespaces, mounts, signals, the services and the DNS server) happens in-process.
pub const REQUIRED_PROGRAMS: [(&str, &str); 1] = [("ip", "iproute2")];

/// The Debian package that ships `tool`, for "not installed" errors.
fn package_of(tool: &str) -> &'static str {
    REQUIRED_PROGRAMS
        .iter()
        .find(|(program, _)| *program == tool)
        .map_or("?", |(_, package)| package)
}

/// Where `program` would be found on `PATH` (as `Command::new` searches it), if anywhere.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}

/// Fails with [`SandboxError::MissingTool`] for the first of [`REQUIRED_PROGRAMS`] that is not
/// installed; called before anything is created.
pub(crate) fn require_programs() -> Result<(), SandboxError> {
    match REQUIRED_PROGRAMS
        .iter()
        .find(|(program, _)| find_on_path(program).is_none())
    {
        Some((program, package)) => Err(SandboxError::MissingTool {
            tool: (*program).to_owned(),
            package,
        }),
        None => Ok(()),
    }
}

/// Runs `work` on a thread of its own that has joined the network namespace at `netns` (and,
/// when `new_pid_namespace`, whose child processes start in a new PID namespace, as its pid 1):
/// sockets it opens and processes it starts live there. This process's other threads are not
/// affected.
pub(crate) fn in_network_namespace<T: Send>(
    netns: &Path,
    new_pid_namespace: bool,
    work: impl FnOnce() -> Result<T, SandboxError> + Send,
) -> Result<T, SandboxError> {
    let namespace = File::open(netns)
        .map_err(|error| SandboxError::io(format!("open {}", netns.display()), error))?;
    thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(|error| {
                    SandboxError::io(format!("enter {}", netns.display()), error.into())
                })?;
                if new_pid_namespace {
                    nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|error| {
                        SandboxError::io("create a PID namespace", error.into())
                    })?;
                }
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Renders a command line for error messages.
pub(crate) fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Turns a failure to start `command` into an error, naming the package when it is missing.
pub(crate) fn spawn_error(command: &Command, error: io::Error) -> SandboxError {
    if error.kind() == io::ErrorKind::NotFound {
        let tool = command.get_program().to_string_lossy().into_owned();
        let package = package_of(&tool);
        SandboxError::MissingTool { tool, package }
    } else {
        SandboxError::io(format!("run `{}`", command_line(command)), error)
    }
}

/// Runs `command` to completion and returns its output, whatever its exit status.
pub(crate) fn output(command: &mut Command) -> Result<Output, SandboxError> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| spawn_error(command, error))
}

/// Runs `command` and fails with its stderr unless it exits successfully; returns its stdout.
pub(crate) fn run(command: &mut Command) -> Result<String, SandboxError> {
    let output = output(command)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(SandboxError::CommandFailed {
            command: command_line(command),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Shorthand for `run(Command::new(program).args(args))`.
pub(crate) fn run_program<I, S>(program: &str, args: I) -> Result<String, SandboxError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(program).args(args))
}

/// Whether this process runs with effective user id 0 (read from `/proc/self/status`).
pub(crate) fn is_root() -> Result<bool, SandboxError> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|error| SandboxError::io("read /proc/self/status", error))?;
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .map(str::to_owned);
    Ok(effective_uid.as_deref() == Some("0"))
}

/// Fails with [`SandboxError::NotRoot`] unless running as root.
pub(crate) fn require_root() -> Result<(), SandboxError> {
    if is_root()? {
        Ok(())
    } else {
        Err(SandboxError::NotRoot)
    }
}

/// Identity of a namespace: the device and inode of its nsfs file (follows `/proc/PID/ns/*`
/// links and `/run/netns/*` bind mounts alike).
pub(crate) type NamespaceId = (u64, u64);

/// The identity of the namespace at `path`, if it exists.
pub(crate) fn namespace_id(path: &Path) -> Option<NamespaceId> {
    fs::metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Every process whose network namespace is one of `namespaces`.
pub(crate) fn pids_in_net_namespaces(namespaces: &[NamespaceId]) -> Vec<u32> {
    if namespaces.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            namespace_id(&Path::new("/proc").join(pid.to_string()).join("ns/net"))
                .is_some_and(|id| namespaces.contains(&id))
        })
        .collect()
}

/// Whether `pid` is a live process (not missing, not a zombie).
pub(crate) fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain anything.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// Sends SIGKILL to `pids` and waits up to `timeout` for them to die. Returns the pids still
/// alive after that.
pub(crate) fn kill_and_wait(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let alive: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    if alive.is_empty() {
        return alive;
    }
    for pid in &alive {
        // One that exited since the check (ESRCH) is what we want anyway.
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let still: Vec<u32> = alive.iter().copied().filter(|pid| is_alive(*pid)).collect();
        if still.is_empty() || Instant::now() >= deadline {
            return still;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }

    #[test]
    fn own_network_namespace_contains_this_process() {
        let own = namespace_id(Path::new("/proc/self/ns/net")).unwrap();
        assert!(pids_in_net_namespaces(&[own]).contains(&std::process::id()));
        assert!(pids_in_net_namespaces(&[]).is_empty());
    }

    #[test]
    fn missing_tools_name_their_package() {
        let command = Command::new("ip");
        let error = spawn_error(&command, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            error.to_string(),
            "`ip` was not found on PATH (Debian package `iproute2`)"
        );
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_on_path("sh").is_some());
        assert_eq!(find_on_path("mirrord-no-such-program"), None);
    }
}
