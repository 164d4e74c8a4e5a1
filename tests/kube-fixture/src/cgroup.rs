//! Putting a backed pod's process in a cgroup named after its container ID, as containerd does
//! (`…/cri-containerd-<id>.scope`), so the agent's `/proc/*/cgroup` scan finds it; and undoing it.

use std::path::{Path, PathBuf};

/// The directory under each hierarchy that holds this fixture's cgroups.
const PARENT: &str = "mirrord-kube-fixture";

/// A writable cgroup hierarchy: the cgroup2 mount if there is one, else the v1 `pids` hierarchy.
pub(crate) fn root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut v2 = None;
    let mut v1 = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(mount_point), Some(fs_type)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if *fs_type == "cgroup2" && v2.is_none() {
            v2 = Some(PathBuf::from(mount_point));
        } else if *fs_type == "cgroup"
            && fields
                .get(3)
                .is_some_and(|options| options.split(',').any(|o| o == "pids"))
        {
            v1 = Some(PathBuf::from(mount_point));
        }
    }
    v2.into_iter()
        .chain(v1)
        .find(|root| std::fs::create_dir_all(root.join(PARENT)).is_ok())
}

/// Moves `pid` into `ROOT/mirrord-kube-fixture/<fixture pid>/cri-containerd-<id>.scope`.
pub(crate) fn place(root: &Path, pid: u32, container_id: &str) -> std::io::Result<PathBuf> {
    let dir = root
        .join(PARENT)
        .join(std::process::id().to_string())
        .join(format!("cri-containerd-{container_id}.scope"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
    Ok(dir)
}

/// Moves `pid` back to the hierarchy's root and removes the cgroup (and this fixture's directory).
pub(crate) fn release(pid: u32, dir: &Path) {
    let fixture_dir = dir.parent();
    if let Some(root) = fixture_dir.and_then(Path::parent).and_then(Path::parent) {
        let _ = std::fs::write(root.join("cgroup.procs"), pid.to_string());
    }
    let _ = std::fs::remove_dir(dir);
    if let Some(fixture_dir) = fixture_dir {
        let _ = std::fs::remove_dir(fixture_dir);
        if let Some(parent) = fixture_dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Removes cgroups left by fixtures that were killed (those of running fixtures stay), moving any
/// process in them back to the root.
pub(crate) fn sweep() {
    let Some(root) = root() else { return };
    let parent = root.join(PARENT);
    let Ok(fixtures) = std::fs::read_dir(&parent) else {
        return;
    };
    for fixture in fixtures.flatten() {
        let alive = fixture
            .file_name()
            .to_str()
            .is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if alive {
            continue;
        }
        for entry in std::fs::read_dir(fixture.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path();
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = std::fs::remove_dir(fixture.path());
    }
    let _ = std::fs::remove_dir(&parent);
}
