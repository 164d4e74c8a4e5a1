//! Inside the target process: leave the host's mount and UTS namespaces for fresh private ones
//! (`unshare(2)`), turn them into the pod's view of the world, then `pivot_root` into it. All of
//! it is system calls made by this process; no external program is run.
//!
//! The pod's root is a tmpfs holding bind mounts of the host's top-level directories, except:
//! `/app` (its own tmpfs), `/run` and `/tmp` (empty tmpfs), `/sys` (the sandbox's own sysfs),
//! `/proc` (a procfs of the pod's own PID namespace, which `up` gives the target) and `/etc` (an
//! overlay on the host's `/etc` whose writes land on a tmpfs). The pod's files are written into
//! that tree, so none of them exists on the host.

use std::{
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MntFlags, MsFlags},
    sched::CloneFlags,
};
use serde::{Deserialize, Serialize};

use crate::{SandboxError, SandboxFile, system::namespace_id};

/// Everything the target process needs to build its pod, written by `up` to `pod.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    /// The pod's hostname (the sandbox name).
    pub hostname: String,
    /// An empty host directory to mount the pod's root on (the mount exists only in the pod).
    pub rootfs: PathBuf,
    /// An empty host directory for the writable layer of the pod's `/etc`.
    pub etc_layer: PathBuf,
    /// Files to create inside the pod.
    pub files: Vec<SandboxFile>,
    /// Device and inode of the mount namespace of whoever wrote the spec (the host's); the pod
    /// refuses to be built there.
    pub host_mount_namespace: (u64, u64),
    /// Device and inode of the writer's UTS namespace, likewise.
    pub host_uts_namespace: (u64, u64),
}

/// Top-level directories that the pod gets fresh instead of bound from the host.
const OWN_DIRECTORIES: [&str; 6] = ["app", "etc", "proc", "run", "tmp", "sys"];

/// Moves this process into new mount and UTS namespaces (mounts private, so nothing propagates
/// back to the host), builds the pod described by `spec` there and makes it this process's root.
/// Call it while the process has a single thread.
pub fn enter_pod(spec: &PodSpec) -> Result<(), SandboxError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).map_err(|error| {
        SandboxError::io("create the pod's mount and UTS namespaces", error.into())
    })?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|error| SandboxError::io("make the pod's mounts private", error.into()))?;
    build_pod(spec)
}

/// Builds the pod in the current mount and UTS namespaces. Refuses to run in the host's
/// namespaces (those recorded in the spec, and those of pid 1 where they can be read).
fn build_pod(spec: &PodSpec) -> Result<(), SandboxError> {
    for (namespace, file, recorded) in [
        ("mount", "mnt", spec.host_mount_namespace),
        ("UTS", "uts", spec.host_uts_namespace),
    ] {
        let own = namespace_id(&Path::new("/proc/self/ns").join(file));
        let init = namespace_id(&Path::new("/proc/1/ns").join(file));
        if own.is_none() || own == Some(recorded) || own == init {
            return Err(SandboxError::HostNamespace { namespace });
        }
    }
    let root = &spec.rootfs;
    mount_fs("tmpfs", "mirrord-sandbox", root, "mode=0755")?;
    bind_host_entries(root)?;
    for (directory, mode) in [("run", "0755"), ("tmp", "1777"), ("app", "0755")] {
        let target = root.join(directory);
        create_dir(&target)?;
        mount_fs("tmpfs", "mirrord-sandbox", &target, &format!("mode={mode}"))?;
    }
    let sys = root.join("sys");
    create_dir(&sys)?;
    // The sandbox's own sysfs shows its own interfaces; fall back to the host's where a fresh
    // sysfs cannot be mounted (some container runtimes).
    if mount_fs("sysfs", "sysfs", &sys, "").is_err() {
        bind(Path::new("/sys"), &sys)?;
    }
    // A procfs mounted from inside the pod's PID namespace lists the pod's processes only.
    let proc = root.join("proc");
    create_dir(&proc)?;
    mount_fs("proc", "proc", &proc, "")?;
    let etc_is_overlay = mount_etc(spec)?;
    for file in &spec.files {
        write_pod_file(root, file, etc_is_overlay)?;
    }
    fs::write("/proc/sys/kernel/hostname", &spec.hostname)
        .map_err(|error| SandboxError::io("set the pod's hostname", error))?;
    pivot_into(root)
}

/// Binds every top-level host directory and file into the new root, and copies symlinks.
fn bind_host_entries(root: &Path) -> Result<(), SandboxError> {
    let entries =
        fs::read_dir("/").map_err(|error| SandboxError::io("list the host's /", error))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if OWN_DIRECTORIES.iter().any(|own| name == *own) {
            continue;
        }
        let source = Path::new("/").join(&name);
        let target = root.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            let link = fs::read_link(&source)
                .map_err(|error| SandboxError::io(format!("read {}", source.display()), error))?;
            symlink(&link, &target)
                .map_err(|error| SandboxError::io(format!("create {}", target.display()), error))?;
        } else if kind.is_dir() {
            create_dir(&target)?;
            bind(&source, &target)?;
        } else if kind.is_file() {
            fs::write(&target, "")
                .map_err(|error| SandboxError::io(format!("create {}", target.display()), error))?;
            bind(&source, &target)?;
        }
    }
    Ok(())
}

/// Mounts the pod's `/etc`: an overlay over the host's `/etc` with a tmpfs upper layer, so the
/// pod can replace files without touching the host. Falls back to a bind mount (files are then
/// replaced by bind mounts over them) where overlayfs is unavailable. Returns whether it is an
/// overlay.
fn mount_etc(spec: &PodSpec) -> Result<bool, SandboxError> {
    let etc = spec.rootfs.join("etc");
    create_dir(&etc)?;
    let layer = &spec.etc_layer;
    mount_fs("tmpfs", "mirrord-sandbox", layer, "mode=0755")?;
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    create_dir(&upper)?;
    create_dir(&work)?;
    let options = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if mount_fs("overlay", "mirrord-sandbox-etc", &etc, &options).is_ok() {
        return Ok(true);
    }
    bind(Path::new("/etc"), &etc)?;
    Ok(false)
}

/// Writes one pod file into the new root (not yet pivoted into).
fn write_pod_file(
    root: &Path,
    file: &SandboxFile,
    etc_is_overlay: bool,
) -> Result<(), SandboxError> {
    let relative = file.path.strip_prefix("/").unwrap_or(&file.path);
    let target = root.join(relative);
    let io_error =
        |error: io::Error| SandboxError::io(format!("write {}", target.display()), error);
    if !etc_is_overlay && relative.starts_with("etc") {
        // A bind of the host's /etc: never write through it. Put the contents on the pod's /run
        // tmpfs and bind that file over the host's.
        let staged = root.join("run/mirrord-sandbox").join(relative);
        if let Some(parent) = staged.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        fs::write(&staged, &file.contents).map_err(io_error)?;
        if fs::symlink_metadata(&target).is_err() {
            // Nothing to mount over, and creating it would create it on the host.
            return Err(io_error(io::Error::from(io::ErrorKind::NotFound)));
        }
        return bind(&staged, &target);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    // Replace rather than write through: in the overlay, a symlink such as /etc/resolv.conf
    // would otherwise lead to a host file.
    match fs::remove_file(&target) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(io_error(error)),
        _ => {}
    }
    fs::write(&target, &file.contents).map_err(io_error)
}

/// Makes `root` the root of this mount namespace and detaches the host's tree.
fn pivot_into(root: &Path) -> Result<(), SandboxError> {
    let old_root = root.join(".oldroot");
    create_dir(&old_root)?;
    nix::unistd::pivot_root(root, &old_root).map_err(|error| {
        SandboxError::io(format!("pivot_root into {}", root.display()), error.into())
    })?;
    std::env::set_current_dir("/")
        .map_err(|error| SandboxError::io("enter the pod's root", error))?;
    nix::mount::umount2("/.oldroot", MntFlags::MNT_DETACH)
        .map_err(|error| SandboxError::io("detach the host's tree", error.into()))?;
    fs::remove_dir("/.oldroot").map_err(|error| SandboxError::io("remove /.oldroot", error))
}

fn create_dir(path: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(path)
        .map_err(|error| SandboxError::io(format!("create {}", path.display()), error))
}

/// Mounts a new file system of type `fstype` on `target`, with mount options `data`.
fn mount_fs(fstype: &str, source: &str, target: &Path, data: &str) -> Result<(), SandboxError> {
    nix::mount::mount(
        Some(source),
        target,
        Some(fstype),
        MsFlags::empty(),
        (!data.is_empty()).then_some(data),
    )
    .map_err(|error| {
        SandboxError::io(
            format!("mount {fstype} on {} ({data})", target.display()),
            error.into(),
        )
    })
}

/// Binds `source` (with every mount below it) on `target`.
fn bind(source: &Path, target: &Path) -> Result<(), SandboxError> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|error| {
        SandboxError::io(
            format!("bind {} on {}", source.display(), target.display()),
            error.into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_host_namespaces() {
        // The spec records the test's own namespaces, so this must not mount anything.
        let spec = PodSpec {
            hostname: "x".to_owned(),
            rootfs: PathBuf::from("/nonexistent/rootfs"),
            etc_layer: PathBuf::from("/nonexistent/etc"),
            files: Vec::new(),
            host_mount_namespace: namespace_id(Path::new("/proc/self/ns/mnt")).unwrap(),
            host_uts_namespace: namespace_id(Path::new("/proc/self/ns/uts")).unwrap(),
        };
        assert!(matches!(
            build_pod(&spec),
            Err(SandboxError::HostNamespace { namespace: "mount" })
        ));
    }
}
