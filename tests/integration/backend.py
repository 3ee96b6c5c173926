"""A real HTTP/1.1 upstream for proxy tests: python3's http.server (threaded,
keep-alive) on 127.0.0.1, port 0, run in a thread of the test process and stopped
by the test (`with Backend() as b:`).

Paths:
  /echo            200, JSON {method, path, headers [[name, value]...], body_len, body_sha256,
                   name, conn} (reads Content-Length or chunked request bodies)
  /len/N           200 with N bytes ('a'..'z' repeating), Content-Length
  /big/N           the same, written in 1 MiB pieces (for bodies too big to hold)
  /chunked/N/K     200, Transfer-Encoding: chunked, N bytes in K chunks
  /close/N         200, N bytes, no Content-Length, then closes (HTTP/1.0 style)
  /status/S        status S, empty body (no body at all for 204/304)
  /sleep/MS        sleeps, then 200 "slept"
  /pieces          a 103, then "hello" under a head written in three pieces
  /hop             200 with Connection: X-Up-Secret, X-Up-Secret: 1, Keep-Alive: timeout=5
  /stream/N        N x 64 KiB pieces, chunked, 20 ms apart; records whether the client
                   (the proxy) went away before the end in `aborted`
  /hold            200 "held" once the test calls release() (or after 60 s): a request
                   kept in flight for as long as the test needs, without a timed sleep;
                   `holding` counts those that arrived
Wrappers, put in front of any of the paths above (they combine):
  /drop-reused/... on a connection that already served a request, the request (head and
                   body) is read and the connection closed without a response: an upstream
                   closing a keep-alive connection just as the proxy reuses it.  On a fresh
                   connection the rest of the path is served as usual.  `dropped` lists
                   (method, path) of the requests dropped this way.
  /keepalive/T/... the response to the rest of the path carries Keep-Alive: timeout=T
Leading unknown segments are skipped ("/named/echo" is /echo). Every response carries
X-Backend: <name>. `connections` counts accepted connections.
"""

import hashlib
import http.server
import json
import socketserver
import threading
import time


def pattern(n):
    base = b"abcdefghijklmnopqrstuvwxyz"
    return (base * (n // len(base) + 1))[:n]


KINDS = ("echo", "len", "big", "chunked", "close", "status", "sleep", "hop", "stream", "pieces", "hold")
HOLD_LIMIT = 60.0  # seconds a /hold request waits for release() at most


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.conn_id = self.server.connections
        self.served = 0      # requests answered on this connection
        self.extra = []      # (name, value) added to the current response head (/keepalive)

    def end_headers(self):
        for k, v in self.extra:
            self.send_header(k, v)
        super().end_headers()

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        h = hashlib.sha256()
        got = 0
        while got < n:
            chunk = self.rfile.read(min(1 << 20, n - got))
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        self._sha = h.hexdigest()
        return got

    def _send(self, status, body=b"", headers=(), length=True):
        self.send_response(status)
        self.send_header("X-Backend", self.server.name)
        for k, v in headers:
            self.send_header(k, v)
        if length and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _route(self):
        try:
            self._dispatch()
        finally:
            self.extra = []
            self.served += 1

    def _dispatch(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        drop = False
        # A proxy route may keep its own prefix ("/named/echo"): the first known word counts.
        while len(parts) > 1 and parts[0] not in KINDS:
            if parts[0] == "drop-reused":
                drop = True
            elif parts[0] == "keepalive" and len(parts) > 2:
                self.extra.append(("Keep-Alive", "timeout=" + parts[1]))
                parts = parts[1:]
            parts = parts[1:]
        kind = parts[0]
        self.server.seen.append((self.command, self.path, dict(self.headers.items())))
        if drop and self.served > 0:
            # Read the whole request so that the close is a clean FIN (unread bytes would
            # make it a reset), then close without a byte of response.
            self._body()
            with self.server.lock:
                self.server.dropped.append((self.command, self.path))
            self.close_connection = True
            return
        if kind == "echo":
            b = self._body()
            if isinstance(b, bytes):
                body_len, sha = len(b), hashlib.sha256(b).hexdigest()
            else:
                body_len, sha = b, self._sha
            out = json.dumps({"method": self.command, "path": self.path,
                              "headers": [[k, v] for k, v in self.headers.items()],
                              "body_len": body_len, "body_sha256": sha, "name": self.server.name,
                              "conn": self.conn_id}).encode()
            self._send(200, out, [("Content-Type", "application/json")])
        elif kind == "len":
            self._body()
            self._send(200, pattern(int(parts[1])))
        elif kind == "big":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            piece = pattern(1 << 20)
            left = n
            while left:
                step = min(left, len(piece))
                self.wfile.write(piece[:step])
                left -= step
        elif kind == "chunked":
            n, k = int(parts[1]), int(parts[2])
            data = pattern(n)
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = max(1, (n + k - 1) // k)
            for i in range(0, n, step):
                piece = data[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "close":
            data = pattern(int(parts[1]))
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
        elif kind == "status":
            self._send(int(parts[1]), b"")
        elif kind == "sleep":
            time.sleep(int(parts[1]) / 1000.0)
            self._send(200, b"slept")
        elif kind == "pieces":
            # A 103 then a final head cut in three, 50 ms apart, so that the proxy most
            # likely sees them in separate reads (the pauses only make that likely; the
            # response must come out right either way).
            out = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nX-Backend: " + self.server.name.encode() + b"\r\nCont",
                   b"ent-Length: 5\r\n", b"\r\nhello")
            for piece in out:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.05)
        elif kind == "hold":
            with self.server.lock:
                self.server.holding += 1
            self.server.released.wait(HOLD_LIMIT)
            self._send(200, b"held")
        elif kind == "hop":
            self._send(200, b"hop", [("Connection", "X-Up-Secret"), ("X-Up-Secret", "1"),
                                     ("Keep-Alive", "timeout=5")])
        elif kind == "stream":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = pattern(65536)
            try:
                for _ in range(n):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    time.sleep(0.02)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.server.aborted.set()
                self.close_connection = True
        else:
            self._send(404, b"no such backend path\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _route


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many proxied requests at once (socketserver says 5)


class Backend:
    def __init__(self, name="b1"):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.name = name
        self.httpd.lock = threading.Lock()
        self.httpd.connections = 0
        self.httpd.holding = 0
        self.httpd.seen = []
        self.httpd.aborted = threading.Event()
        self.httpd.released = threading.Event()
        self.httpd.dropped = []
        self.port = self.httpd.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def connections(self):
        return self.httpd.connections

    @property
    def holding(self):
        return self.httpd.holding

    @property
    def seen(self):
        return self.httpd.seen

    @property
    def aborted(self):
        return self.httpd.aborted

    @property
    def dropped(self):
        return self.httpd.dropped

    def release(self):
        """Lets every /hold request (waiting or still to come) answer."""
        self.httpd.released.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()  # no handler thread is left waiting
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
