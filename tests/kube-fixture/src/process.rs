//! The two process-level operations the simulated kubelet needs from libc: a container process
//! dies with the fixture (so a killed fixture leaves nothing behind), and a container is killed as
//! a whole process group.

/// Makes the spawned process receive SIGKILL when the fixture's thread that spawned it exits
/// (tokio's worker threads live as long as the fixture).
pub(crate) fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which
    // is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SIGKILL to the process group `group` (the container's process and its children).
pub(crate) fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}
