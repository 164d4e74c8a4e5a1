"""A tiny HTTP server that answers every request with one fixed body (its tag), so a test can tell
which of several same-addressed servers a client reached: the pod's or this machine's.

    python3 tagged_server.py tcp HOST PORT TAG
    python3 tagged_server.py unix PATH TAG

Prints `ready` on stdout once it listens, then serves until killed. Every response is HTTP/1.0
with `Connection: close`, so curl, python and node clients all read it to the end.
"""

import os
import socket
import sys
import threading


def serve(listener, tag):
    body = tag.encode()
    response = (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )

    def answer(connection):
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                request += chunk
            connection.sendall(response)

    while True:
        connection, _ = listener.accept()
        threading.Thread(target=answer, args=(connection,), daemon=True).start()


def main():
    kind = sys.argv[1]
    if kind == "tcp":
        host, port, tag = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    elif kind == "unix":
        path, tag = sys.argv[2], sys.argv[3]
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
    else:
        raise SystemExit(f"unknown kind {kind}")
    listener.listen(64)
    print("ready", flush=True)
    serve(listener, tag)


if __name__ == "__main__":
    main()
