//! Thin wrappers over the external programs and `/proc` files the sandbox uses: running a
//! command and reporting its failure well, the root check, and finding and signalling processes.

use std::{
    ffi::OsStr,
    fs, io,
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::SandboxError;

/// The Debian package that ships `tool`, for "not installed" errors.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "dnsmasq" => "dnsmasq-base",
        "mount" | "umount" => "mount",
        "sh" => "dash",
        _ => "util-linux",
    }
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

/// Sends SIGKILL to `pids` (through the shell's `kill` builtin; no unsafe code here) and waits up
/// to `timeout` for them to die. Returns the pids still alive after that.
pub(crate) fn kill_and_wait(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let alive: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    if alive.is_empty() {
        return alive;
    }
    // Some may exit between the check and the signal; `kill`'s complaint about them is ignored.
    let _ = Command::new("sh")
        .arg("-c")
        .arg("kill -s KILL \"$@\" 2>/dev/null")
        .arg("sh")
        .args(alive.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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
        let command = Command::new("dnsmasq");
        let error = spawn_error(&command, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            error.to_string(),
            "`dnsmasq` was not found on PATH (Debian package `dnsmasq-base`)"
        );
    }
}
