"""A user's HTTP server for the incoming-traffic tests, run unchanged under `mirrord exec`.

    python3 server.py PORT [--close-after-first]

Prints `LISTENING {"address": [host, port]}` once it listens (its own getsockname), then for every
request `REQUEST {...}`: the method, path, the `x-mirrord-user` header, the peer that `accept` returned, and
what getpeername and getsockname say on the accepted socket. Answers each request with
`local app: {same JSON}`. With --close-after-first it closes its listening socket after the first
request, prints `CLOSED` and keeps running.
"""

import http.server
import json
import sys
import threading
import time

PRINT_LOCK = threading.Lock()


def say(line):
    """One whole line on stdout: handler threads and the main thread print concurrently."""
    with PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        report = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "user": self.headers.get("x-mirrord-user"),
                "accept_peer": list(self.client_address[:2]),
                "peer": list(self.connection.getpeername()[:2]),
                "local": list(self.connection.getsockname()[:2]),
            }
        )
        say("REQUEST " + report)
        body = ("local app: " + report + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1])
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    say("LISTENING " + json.dumps({"address": list(server.socket.getsockname())}))
    if "--close-after-first" in sys.argv[2:]:
        # Close the listener at once, without waiting for the keep-alive connection to end.
        server.block_on_close = False
        server.handle_request()
        server.server_close()
        say("CLOSED")
        while True:
            time.sleep(60)
    server.serve_forever()


if __name__ == "__main__":
    main()
