"""File calls that programs make and users notice, one `key: value` line each.

    file_calls.py descriptors FILE DIRECTORY
        close_range(3, ~0, 0), then closefrom(3), then dup2 onto the layer's own descriptors: after
        each, FILE's first line (open + read), its size (stat) and whether DIRECTORY lists FILE.
    file_calls.py directories DIRECTORY FILE
        open(DIRECTORY, O_DIRECTORY) and O_PATH opens of DIRECTORY and FILE, each with what fstat says.
    file_calls.py fork_reads FILE ROUNDS
        threads read FILE (records of 16 bytes naming their own offset) in a loop through one shared
        descriptor while the main thread forks ROUNDS times; each child reads the same descriptor and
        exits. Prints how many children exited cleanly and whether every read was whole records.
"""

import ctypes
import os
import stat
import sys
import threading

LIBC = ctypes.CDLL(None, use_errno=True)


def attempt(key, action):
    try:
        value = action()
    except OSError as error:
        value = f"ERR {error.strerror}"
    print(f"{key}: {value}", flush=True)


def first_line(path):
    with open(path) as file:
        return file.readline().rstrip("\n")


def lists(directory, path):
    return "yes" if os.path.basename(path) in os.listdir(directory) else "no"


def check_remote(label, path, directory):
    attempt(f"{label} read", lambda: first_line(path))
    attempt(f"{label} stat", lambda: os.stat(path).st_size)
    attempt(f"{label} listdir", lambda: lists(directory, path))


def libc_call(name, *args):
    result = getattr(LIBC, name)(*args)
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return "ok"


def layer_fds():
    """Descriptors of this process that are sockets at 500 or above (where the layer keeps its own)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd >= 500 and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                found.append(fd)
        except OSError:
            pass
    return found


def descriptors(path, directory):
    check_remote("before", path, directory)
    kept = os.open(path, os.O_RDONLY)
    attempt("close_range", lambda: libc_call("close_range", 3, ctypes.c_uint(0xFFFFFFFF), 0))
    attempt("kept fd closed", lambda: "yes" if not fd_open(kept) else "no")
    check_remote("after close_range", path, directory)
    attempt("closefrom", lambda: (LIBC.closefrom(3), "ok")[1])
    check_remote("after closefrom", path, directory)
    # Make sure the layer has a connection again, then write over it with dup2.
    os.stat(path)
    targets = layer_fds()
    null = os.open("/dev/null", os.O_RDONLY)
    for fd in targets:
        os.dup2(null, fd)
    os.close(null)
    attempt("dup2 onto layer fds", lambda: len(targets))
    check_remote("after dup2", path, directory)


def fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def kind(mode):
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return oct(stat.S_IFMT(mode))


def opened(path, flags, describe):
    fd = os.open(path, flags)
    try:
        return describe(fd)
    finally:
        os.close(fd)


def directories(directory, path):
    size = os.stat(path).st_size
    attempt(
        "O_DIRECTORY",
        lambda: opened(
            directory,
            os.O_RDONLY | os.O_DIRECTORY,
            lambda fd: f"{kind(os.fstat(fd).st_mode)} {lists(fd, path)}",
        ),
    )
    attempt(
        "O_PATH directory",
        lambda: opened(directory, os.O_PATH, lambda fd: kind(os.fstat(fd).st_mode)),
    )
    attempt(
        "O_PATH file",
        lambda: opened(
            path,
            os.O_PATH,
            lambda fd: f"{kind(os.fstat(fd).st_mode)} {os.fstat(fd).st_size == size}",
        ),
    )
    attempt(
        "O_DIRECTORY on a file",
        lambda: opened(path, os.O_RDONLY | os.O_DIRECTORY, lambda fd: "opened"),
    )


RECORD = 16


def whole_records(data, size):
    """Whether `data` is consecutive records of the file (each names its own offset)."""
    if len(data) % RECORD:
        return False
    previous = None
    for start in range(0, len(data), RECORD):
        record = data[start : start + RECORD]
        try:
            offset = int(record[:-1])
        except ValueError:
            return False
        if offset % RECORD or offset >= size or (previous is not None and offset != previous + RECORD):
            return False
        previous = offset
    return True


def fork_reads(path, rounds):
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDONLY)
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            data = os.read(fd, RECORD * 64)
            if not data:
                os.lseek(fd, 0, os.SEEK_SET)
                continue
            if not whole_records(data, size):
                bad.append(data[:32])

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    clean = 0
    for _ in range(rounds):
        child = os.fork()
        if child == 0:
            code = 0
            try:
                data = os.read(fd, RECORD * 8)
                if data and not whole_records(data, size):
                    code = 3
            except OSError:
                code = 4
            os._exit(code)
        _, status = os.waitpid(child, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            clean += 1
    stop.set()
    for thread in threads:
        thread.join()
    print(f"children: {clean} of {rounds} exited cleanly", flush=True)
    print(f"reads: {'whole records' if not bad else f'{len(bad)} torn, e.g. {bad[0]!r}'}", flush=True)


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "descriptors":
        descriptors(*arguments)
    elif command == "directories":
        directories(*arguments)
    elif command == "fork_reads":
        fork_reads(arguments[0], int(arguments[1]))
    else:
        sys.exit(f"unknown command {command}")
