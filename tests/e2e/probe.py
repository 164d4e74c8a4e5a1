#!/usr/bin/env python3
"""What a Python process sees: one line per check, in the format the e2e tests parse.

Usage:
    probe.py CHECK...                  run the checks in this process
    probe.py fork CHECK...             run them in a child made with os.fork
    probe.py subprocess CHECK...       run them in a child started with subprocess (fork + exec)
    probe.py loop REMOTE LOCAL SECONDS read both files every 100 ms, with timestamps
    probe.py children N DIR            fork N children that each read DIR/child-I.txt at once

Checks and their lines:
    file:PATH            file PATH: <first line> | file PATH: ERR <errno name>
    dir:PATH             dir PATH: <sorted names, comma-separated> | dir PATH: ERR <errno name>
    env:NAME             env NAME: <value> | env NAME: MISSING
    dns:NAME             dns NAME: <first IPv4 address> | dns NAME: ERR <reason>
    tcp:HOST:PORT        tcp HOST:PORT: <echoed text> | tcp HOST:PORT: ERR <reason>
    udp:HOST:PORT        udp HOST:PORT: <echoed text> | udp HOST:PORT: ERR <reason>
    write:PATH=TEXT      write PATH: ok | write PATH: ERR <errno name>
    hostname             hostname: <name>

Every network operation gives up after 2 seconds, so the probe never hangs on one.
"""

import errno
import os
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 2.0
ECHO_PAYLOAD = b"mirrord-e2e-ping"


def errno_name(error):
    return errno.errorcode.get(error.errno, f"E{error.errno}") if error.errno else type(error).__name__


def first_line(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as file:
            return file.readline().rstrip("\n")
    except OSError as error:
        return f"ERR {errno_name(error)}"


def list_dir(path):
    try:
        return ",".join(sorted(os.listdir(path)))
    except OSError as error:
        return f"ERR {errno_name(error)}"


def resolve(name):
    """The first IPv4 address of NAME, or 'ERR …', waiting at most TIMEOUT."""
    answer = {}

    def lookup():
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
            answer["value"] = infos[0][4][0]
        except socket.gaierror as error:
            answer["value"] = f"ERR {error.strerror or error}"
        except OSError as error:
            answer["value"] = f"ERR {errno_name(error)}"

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    return answer.get("value", "ERR timeout")


def split_host_port(target):
    host, _, port = target.rpartition(":")
    return host, int(port)


def socket_error(error):
    if isinstance(error, socket.timeout):
        return "ERR timeout"
    return f"ERR {errno_name(error)}"


def tcp_echo(target):
    host, port = split_host_port(target)
    address = resolve(host)
    if address.startswith("ERR"):
        return address
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT) as stream:
            stream.settimeout(TIMEOUT)
            stream.sendall(ECHO_PAYLOAD)
            received = b""
            while len(received) < len(ECHO_PAYLOAD):
                chunk = stream.recv(len(ECHO_PAYLOAD) - len(received))
                if not chunk:
                    return "ERR closed" if not received else received.decode(errors="replace")
                received += chunk
            return received.decode(errors="replace")
    except OSError as error:
        return socket_error(error)


def udp_echo(target):
    host, port = split_host_port(target)
    address = resolve(host)
    if address.startswith("ERR"):
        return address
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(ECHO_PAYLOAD, (address, port))
            data, _ = sock.recvfrom(2048)
            return data.decode(errors="replace")
    except OSError as error:
        return socket_error(error)


def write_file(spec):
    path, _, text = spec.partition("=")
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return path, "ok"
    except OSError as error:
        return path, f"ERR {errno_name(error)}"


def check(spec):
    kind, _, argument = spec.partition(":")
    if kind == "file":
        line = f"file {argument}: {first_line(argument)}"
    elif kind == "dir":
        line = f"dir {argument}: {list_dir(argument)}"
    elif kind == "env":
        line = f"env {argument}: {os.environ.get(argument, 'MISSING')}"
    elif kind == "dns":
        line = f"dns {argument}: {resolve(argument)}"
    elif kind == "tcp":
        line = f"tcp {argument}: {tcp_echo(argument)}"
    elif kind == "udp":
        line = f"udp {argument}: {udp_echo(argument)}"
    elif kind == "write":
        path, outcome = write_file(argument)
        line = f"write {path}: {outcome}"
    elif kind == "hostname":
        line = f"hostname: {socket.gethostname()}"
    else:
        line = f"unknown check: {spec}"
    print(line, flush=True)


def run_checks(specs):
    for spec in specs:
        check(spec)


def in_forked_child(specs):
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        try:
            run_checks(specs)
        finally:
            sys.stdout.flush()
            os._exit(0)
    _, status = os.waitpid(child, 0)
    print(f"fork: child exited {os.waitstatus_to_exitcode(status)}", flush=True)


def in_subprocess(specs):
    sys.stdout.flush()
    try:
        completed = subprocess.run([sys.executable, os.path.abspath(__file__), *specs], timeout=30)
        print(f"subprocess: exited {completed.returncode}", flush=True)
    except subprocess.TimeoutExpired:
        print("subprocess: timed out", flush=True)


def read_loop(remote, local, seconds):
    end = time.time() + seconds
    while time.time() < end:
        started = time.time()
        remote_line = first_line(remote)
        local_line = first_line(local)
        print(f"loop t={started:.3f} remote: {remote_line} | local: {local_line}", flush=True)
        time.sleep(0.1)
    print("loop: done", flush=True)


def many_children(count, directory, rounds=5):
    """COUNT children, released at once, each reading its own file ROUNDS times."""
    sys.stdout.flush()
    release_rx, release_tx = os.pipe()
    children = []
    for index in range(count):
        child = os.fork()
        if child == 0:
            os.close(release_tx)
            os.read(release_rx, 1)  # end of file once the parent has forked everyone
            expected = f"child {index}"
            seen = [first_line(f"{directory}/child-{index}.txt") for _ in range(rounds)]
            wrong = [line for line in seen if line != expected]
            verdict = "ok" if not wrong else f"WRONG {wrong[0]}"
            os.write(1, f"child {index}: {verdict}\n".encode())
            os._exit(0 if not wrong else 1)
        children.append(child)
    os.close(release_rx)
    os.close(release_tx)
    failed = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failed += 1
    print(f"children: {count} forked, {failed} failed", flush=True)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    mode, rest = argv[0], argv[1:]
    if mode == "fork":
        in_forked_child(rest)
    elif mode == "subprocess":
        in_subprocess(rest)
    elif mode == "loop":
        read_loop(rest[0], rest[1], float(rest[2]))
    elif mode == "children":
        many_children(int(rest[0]), rest[1])
    else:
        run_checks(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
