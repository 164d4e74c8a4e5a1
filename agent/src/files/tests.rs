//! Tests of file operations inside a fake target root.

use std::os::unix::fs::MetadataExt;

use super::*;

fn table() -> Mutex<FileTable> {
    Mutex::new(FileTable::default())
}

/// A fake target root: a temp dir with a file, a symlink escaping upwards and one absolute.
fn fake_root() -> (PathBuf, TargetRoot) {
    let dir = std::env::temp_dir().join(format!(
        "mirrord-agent-files-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/config.yaml"), "inside: true\n").unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../etc/passwd",
        dir.join("app/escape-relative"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("app/escape-absolute")).unwrap();
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&dir)
        .unwrap();
    (
        dir,
        TargetRoot {
            root: OwnedFd::from(root),
        },
    )
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn read_all(root: &TargetRoot, path: &str) -> RemoteResult<Vec<u8>> {
    let table = table();
    let FileResponse::Opened(handle) = root.handle(
        &table,
        FileRequest::Open {
            path: path.into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        },
    )?
    else {
        panic!("not an open response");
    };
    let FileResponse::Read(bytes) = root.handle(&table, FileRequest::Read { handle, len: 4096 })?
    else {
        panic!()
    };
    Ok(bytes.into_vec())
}

#[test]
fn reads_files_inside_the_root() {
    let (dir, root) = fake_root();
    assert_eq!(
        read_all(&root, "/app/config.yaml").unwrap(),
        b"inside: true\n"
    );
    assert_eq!(
        read_all(&root, "app/config.yaml").unwrap(),
        b"inside: true\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dot_dot_and_symlinks_cannot_leave_the_root() {
    let (dir, root) = fake_root();
    for path in [
        "/../../../../etc/passwd",
        "/app/escape-relative",
        "/app/escape-absolute",
        "/app/../../etc/passwd",
    ] {
        let result = read_all(&root, path);
        assert_eq!(
            result.map_err(|e| e.code),
            Err(ErrorCode::NotFound),
            "{path} must not reach the host's /etc/passwd"
        );
    }
    let lstat = root.handle(
        &table(),
        FileRequest::Stat {
            path: "/app/escape-absolute".into(),
            follow_symlinks: false,
        },
    );
    assert!(matches!(lstat, Ok(FileResponse::Metadata(m)) if m.file_type() == FileType::Symlink));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn lists_creates_and_removes() {
    let (dir, root) = fake_root();
    let table = table();
    root.handle(
        &table,
        FileRequest::Mkdir {
            path: "/app/new".into(),
            mode: 0o755,
        },
    )
    .unwrap();
    let FileResponse::DirOpened(handle) = root
        .handle(
            &table,
            FileRequest::Opendir {
                path: "/app".into(),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let FileResponse::DirEntries(entries) = root
        .handle(
            &table,
            FileRequest::Readdir {
                handle,
                max_entries: 100,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let mut names: Vec<_> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".",
            "..",
            "config.yaml",
            "escape-absolute",
            "escape-relative",
            "new"
        ]
    );
    let inode = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name.as_bytes())
            .unwrap()
            .inode
    };
    assert_eq!(
        inode("."),
        std::fs::metadata(dir.join("app")).unwrap().ino()
    );
    assert_eq!(inode(".."), std::fs::metadata(&dir).unwrap().ino());
    root.handle(
        &table,
        FileRequest::Rename {
            from: "/app/config.yaml".into(),
            to: "/app/new/moved.yaml".into(),
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read(dir.join("app/new/moved.yaml")).unwrap(),
        b"inside: true\n"
    );
    root.handle(
        &table,
        FileRequest::Unlink {
            path: "/app/new/moved.yaml".into(),
        },
    )
    .unwrap();
    root.handle(
        &table,
        FileRequest::Rmdir {
            path: "/app/new".into(),
        },
    )
    .unwrap();
    assert!(!dir.join("app/new").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Regression: `O_TMPFILE` shares the `O_DIRECTORY` bit, so a directory opened with a mode
/// (Python always passes 0o777) was refused with EINVAL.
#[test]
fn directories_open_with_o_directory_whatever_the_mode() {
    let (dir, root) = fake_root();
    let flags = OpenFlags {
        directory: true,
        ..OpenFlags::READ_ONLY
    };
    let opened = root.handle(
        &table(),
        FileRequest::Open {
            path: "/app".into(),
            flags,
            mode: 0o777,
        },
    );
    assert!(matches!(opened, Ok(FileResponse::Opened(_))), "{opened:?}");
    let not_a_directory = root.handle(
        &table(),
        FileRequest::Open {
            path: "/app/config.yaml".into(),
            flags,
            mode: 0o777,
        },
    );
    assert_eq!(not_a_directory.map_err(|e| e.errno()), Err(libc::ENOTDIR));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_roots_parent_is_the_root_itself() {
    let (dir, root) = fake_root();
    let table = table();
    let FileResponse::DirOpened(handle) = root
        .handle(&table, FileRequest::Opendir { path: "/".into() })
        .unwrap()
    else {
        panic!()
    };
    let FileResponse::DirEntries(entries) = root
        .handle(
            &table,
            FileRequest::Readdir {
                handle,
                max_entries: 2,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let inodes: Vec<_> = entries.iter().map(|e| (e.name.clone(), e.inode)).collect();
    let own = std::fs::metadata(&dir).unwrap().ino();
    assert_eq!(inodes, [(b".".to_vec(), own), (b"..".to_vec(), own)]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn extended_attributes_are_the_targets() {
    let (dir, root) = fake_root();
    let file = CString::new(dir.join("app/config.yaml").as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path and name, and a value of the given length.
    let set = unsafe {
        libc::setxattr(
            file.as_ptr(),
            c"user.comment".as_ptr(),
            b"hi".as_ptr().cast(),
            2,
            0,
        )
    };
    assert_eq!(set, 0, "setxattr: {}", std::io::Error::last_os_error());
    let table = table();
    let value = root.handle(
        &table,
        FileRequest::Getxattr {
            path: "/app/config.yaml".into(),
            name: b"user.comment".to_vec(),
            follow_symlinks: true,
        },
    );
    assert_eq!(value, Ok(FileResponse::Xattr(Bytes::from(b"hi"))));
    let names = root.handle(
        &table,
        FileRequest::Listxattr {
            path: "/app/config.yaml".into(),
            follow_symlinks: false,
        },
    );
    assert_eq!(
        names,
        Ok(FileResponse::Xattr(Bytes::from(b"user.comment\0")))
    );
    let missing = root.handle(
        &table,
        FileRequest::Getxattr {
            path: "/app/config.yaml".into(),
            name: b"user.missing".to_vec(),
            follow_symlinks: true,
        },
    );
    assert_eq!(missing.map_err(|e| e.errno()), Err(libc::ENODATA));
    std::fs::remove_dir_all(dir).unwrap();
}
