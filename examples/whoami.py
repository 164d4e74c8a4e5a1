#!/usr/bin/env python3
"""Prints what this process sees: run it with and without mirrord and compare.

    cargo build --release -p mirrord-cli -p mirrord-agent -p mirrord-layer
    target/release/mirrord exec --target sandbox/demo -- python3 examples/whoami.py

(README's quick start; as root: the sandbox pod and the agent need it. tests/quickstart/run.sh
checks this output line by line.)

Under mirrord every line below comes from the target (the sandbox pod `demo`): a file that
exists only there, one of its environment variables, a name only its DNS resolves, and a reply
from a service only its network reaches. Without mirrord each line says what is missing.
"""

import os
import socket

TIMEOUT = 2.0
FILE = "/app/config.yaml"
VARIABLE = "SANDBOX_GREETING"
SERVICE = ("db.sandbox.svc", 7)  # a TCP echo service that only the pod can reach


def first_line(path):
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline().rstrip("\n")
    except OSError as error:
        return f"cannot read it ({error.strerror})"


def resolve(name):
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError as error:
        return f"does not resolve ({error.strerror or error})"


def echo(host, port):
    address = resolve(host)
    if not address[0].isdigit():
        return f"no connection: {host} {address}"
    message = b"hello from whoami.py"
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT) as stream:
            stream.sendall(message)
            reply = b""
            while len(reply) < len(message):
                chunk = stream.recv(len(message) - len(reply))
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        return f"no reply ({error.strerror or 'timed out'})"
    return f"replied {reply.decode(errors='replace')!r}" if reply else "no reply"


def main():
    rows = [
        ("hostname", socket.gethostname()),
        (f"first line of {FILE}", first_line(FILE)),
        (f"${VARIABLE}", os.environ.get(VARIABLE, "not set")),
        (f"{SERVICE[0]} resolves to", resolve(SERVICE[0])),
        (f"tcp echo at {SERVICE[0]}:{SERVICE[1]}", echo(*SERVICE)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
