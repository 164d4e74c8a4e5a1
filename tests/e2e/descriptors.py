"""What a program sees of a remote file's descriptor, one `key: value` line each.

    descriptors.py FILE DIRECTORY WRITE_PATH TEXT BIG_FILE

link (what /proc/self/fd/N names), inode, first line through pread and through mmap, the
directory's entries listed from a descriptor, a write of TEXT to a new file, what happens when
the process runs out of descriptors (the error, then FILE's first line once some are free again),
and BIG_FILE read from start to end in 64 KiB reads with a step back in the middle (the position
after three reads, then the SHA-256 of the bytes put back together).
"""

import errno
import hashlib
import mmap
import os
import resource
import sys


def attempt(key, action):
    try:
        value = action()
    except OSError as error:
        value = f"ERR {error.strerror}"
    except ValueError as error:
        value = f"ERR {error}"
    print(f"{key}: {value}", flush=True)


def mapped_first_line(fd):
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mapped:
        return bytes(mapped).decode().splitlines()[0]


def write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return "ok"


def exhaust(path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 4, hard))
    opened, error = [], None
    try:
        while len(opened) < 100:
            opened.append(os.open(path, os.O_RDONLY))
    except OSError as failure:
        error = errno.errorcode.get(failure.errno, str(failure.errno))
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    fd = os.open(path, os.O_RDONLY)
    try:
        first = os.pread(fd, 4096, 0).decode().splitlines()[0]
    finally:
        os.close(fd)
    return f"{error} after {len(opened)}, then {first}"


def sequential(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = [os.read(fd, 65536) for _ in range(3)]
        position = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, -1000, os.SEEK_CUR)
        parts[-1] = parts[-1][:-1000]
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
    finally:
        os.close(fd)
    return f"{position} {hashlib.sha256(b''.join(parts)).hexdigest()}"


def main(path, directory, write_path, text, big):
    fd = os.open(path, os.O_RDONLY)
    attempt("link", lambda: os.readlink(f"/proc/self/fd/{fd}"))
    attempt("inode", lambda: os.fstat(fd).st_ino)
    attempt("pread", lambda: os.pread(fd, 4096, 0).decode().splitlines()[0])
    attempt("mmap", lambda: mapped_first_line(fd))
    os.close(fd)
    dir_fd = os.open(directory, os.O_RDONLY)
    attempt("entries", lambda: " ".join(sorted(os.listdir(dir_fd))))
    os.close(dir_fd)
    attempt("write", lambda: write(write_path, text))
    attempt("exhaust", lambda: exhaust(path))
    attempt("sequential", lambda: sequential(big))


if __name__ == "__main__":
    main(*sys.argv[1:6])
