"""Real TCP servers for the L4 proxy tests, run in threads of the test process on
127.0.0.1 (port 0) and stopped by the test (`with TcpServer(echo) as s:`).

A server runs `handler(conn, rec)` in a thread per accepted connection; `rec` is a
Connection record the handler fills and the test reads (what arrived, whether the peer
ended its stream). Handlers here:

  echo            every byte back; on the peer's EOF, its own EOF (half-close passed on)
  reply_on_eof    reads until EOF, then sends "got N bytes" and closes
  speak_first     sends `greeting` and shuts its sending side at once, then reads until EOF
  proxy_capture   reads a PROXY protocol header (v1 line or v2 binary) into rec.header,
                  then echoes like `echo`
  tls(handler, ctx)  wraps a handler in a server-side TLS session

Every connection is kept in `connections` (accepted order).
"""

import socket
import ssl
import struct
import threading


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.received = bytearray()  # what the handler read (handlers that keep it)
        self.header = b""            # proxy_capture: the PROXY header's bytes
        self.eof = threading.Event()  # the peer ended its stream
        self.done = threading.Event()  # the handler returned


class TcpServer:
    def __init__(self, handler, backlog=128, port=0):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))  # a fixed port: a server started again where it was
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.connections = []
        self.lock = threading.Lock()
        self.threads = []
        self.closing = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.acceptor.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.acceptor.join(10)
        with self.lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(10)

    def count(self):
        with self.lock:
            return len(self.connections)

    def _accept(self):
        while not self.closing:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            rec = Connection(s)
            with self.lock:
                self.connections.append(rec)
            t = threading.Thread(target=self._serve, args=(rec,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, rec):
        try:
            self.handler(rec.sock, rec)
        except (OSError, ssl.SSLError):
            pass
        finally:
            rec.done.set()
            try:
                rec.sock.close()
            except OSError:
                pass


def _pump_back(sock, rec, keep=False):
    while True:
        d = sock.recv(1 << 20)
        if not d:
            rec.eof.set()
            return
        if keep:
            rec.received += d
        sock.sendall(d)


def echo(sock, rec):
    _pump_back(sock, rec)
    sock.shutdown(socket.SHUT_WR)


def reply_on_eof(sock, rec):
    n = 0
    while True:
        d = sock.recv(1 << 20)
        if not d:
            break
        n += len(d)
        rec.received += d
    rec.eof.set()
    sock.sendall(b"got %d bytes" % n)


def speak_first(greeting):
    def handler(sock, rec):
        sock.sendall(greeting)
        sock.shutdown(socket.SHUT_WR)
        while True:
            d = sock.recv(1 << 20)
            if not d:
                break
            rec.received += d
        rec.eof.set()
    return handler


V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            raise OSError("closed inside the PROXY header")
        buf += d
    return buf


def read_proxy_header(sock):
    """The PROXY header at the start of `sock`, byte for byte (v1: through CRLF; v2: the
    16 fixed bytes and the length they announce)."""
    first = _recv_exactly(sock, 12)
    if first == V2_SIGNATURE:
        fixed = _recv_exactly(sock, 4)
        (length,) = struct.unpack("!H", fixed[2:4])
        return first + fixed + _recv_exactly(sock, length)
    line = first
    while not line.endswith(b"\r\n"):
        if len(line) > 107:
            raise OSError("no CRLF within a v1 line's length")
        line += _recv_exactly(sock, 1)
    return line


def proxy_capture(sock, rec):
    rec.header = read_proxy_header(sock)
    _pump_back(sock, rec, keep=True)
    sock.shutdown(socket.SHUT_WR)


def tls(handler, context):
    def wrapped(sock, rec):
        s = context.wrap_socket(sock, server_side=True)
        rec.sock = s
        handler(s, rec)
    return wrapped
