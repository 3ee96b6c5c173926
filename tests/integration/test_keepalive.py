"""Keep-alive, pipelining, Connection semantics, many connections, slow clients."""

import errno
import selectors
import socket
import time
import unittest

from harness import (Atlas, connect, raised_nofile, read_response, site_config,
                     wait_closed)

N_FILES = 10
# distinct bodies of distinct lengths, so a mix-up cannot go unnoticed
BODIES = {"p%d.txt" % i: ("page %d " % i + "x" * (i * 7) + "\n") for i in range(N_FILES)}
WWW = dict(BODIES)
WWW["index.html"] = "<p>index</p>\n"
WWW["big.bin"] = bytes(range(256)) * 256  # 64 KiB: a pipeline of these exceeds the output cap


def body_of(i):
    return BODIES["p%d.txt" % (i % N_FILES)].encode()


def get_req(i, extra=""):
    return ("GET /p%d.txt HTTP/1.1\r\nHost: x\r\n%s\r\n" % (i % N_FILES, extra)).encode()


class KeepAlive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(site_config(workers=1), www=WWW)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def test_ten_pipelined_in_one_send(self):
        with connect(self.port) as s:
            s.sendall(b"".join(get_req(i) for i in range(10)))
            for i in range(10):
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
                self.assertEqual(r.body, body_of(i), "response %d out of order" % i)

    def test_deep_pipeline(self):
        n = 500
        with connect(self.port) as s:
            s.sendall(b"".join(get_req(i * 3) for i in range(n)))
            for i in range(n):
                r = read_response(s, timeout=30)
                self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
                self.assertEqual(r.body, body_of(i * 3), "response %d out of order" % i)

    def test_pipeline_then_half_close_is_answered_in_full(self):
        # 200 pipelined requests for 64 KiB each (12.5 MiB of answers) and then FIN: the
        # server stops parsing while its output is over the cap, and must still answer
        # every complete request the client sent before closing its side.
        n = 200
        with connect(self.port) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * n)
            s.shutdown(socket.SHUT_WR)
            for i in range(n):
                r = read_response(s, timeout=30)
                self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
                self.assertEqual(r.body, WWW["big.bin"], "response %d" % i)
            closed, _ = wait_closed(s, timeout=15)
            self.assertTrue(closed)

    def test_pipelined_with_bodies(self):
        # The bodies look like requests: if the server failed to skip them it would
        # answer an extra GET /p9.txt and everything after would be shifted.
        inner = b"GET /p9.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        chunked = (b"%x\r\n" % 10) + inner[:10] + b"\r\n" + \
                  (b"%x\r\n" % (len(inner) - 10)) + inner[10:] + b"\r\n0\r\n\r\n"
        data = (get_req(0) +
                b"GET /p1.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner) +
                inner +
                get_req(2) +
                b"GET /p3.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                chunked +
                get_req(4, "Connection: close\r\n"))
        with connect(self.port) as s:
            s.sendall(data)
            for i in range(5):
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
                self.assertEqual(r.body, body_of(i), "response %d" % i)
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed, "not closed after Connection: close")
            self.assertEqual(extra, b"", "extra bytes: a request body was answered")

    def test_ten_thousand_requests_one_connection(self):
        with connect(self.port, timeout=30) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(10000):
                s.sendall(get_req(i))
                r = read_response(s, timeout=30)
                if r.status != 200 or r.body != body_of(i):
                    self.fail("request %d: %r body=%r" % (i, r, r.body[:80]))

    def test_connection_close_closes(self):
        with connect(self.port) as s:
            s.sendall(get_req(1, "Connection: close\r\n"))
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, body_of(1))
            self.assertTrue(r.closes(), r.headers)
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed)
            self.assertEqual(extra, b"")

    def test_connection_close_token_in_list(self):
        with connect(self.port) as s:
            s.sendall(get_req(1, "Connection: foo, close\r\n"))
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200, r)
            closed, _ = wait_closed(s, timeout=15)
            self.assertTrue(closed)

    def test_requests_after_close_are_ignored(self):
        # Anything pipelined after a `Connection: close` request is not answered.
        with connect(self.port) as s:
            s.sendall(get_req(1, "Connection: close\r\n") + get_req(2))
            r = read_response(s, timeout=15)
            self.assertEqual(r.body, body_of(1))
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed)
            self.assertEqual(extra, b"")

    def test_http10_closes_by_default(self):
        with connect(self.port) as s:
            s.sendall(b"GET /p2.txt HTTP/1.0\r\n\r\n")
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, body_of(2))
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed, "HTTP/1.0 connection left open")
            self.assertEqual(extra, b"")

    def test_http10_keep_alive_header(self):
        with connect(self.port) as s:
            for i in range(3):
                s.sendall(b"GET /p%d.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, body_of(i))
                # a 1.0 client only knows the connection persists if told so
                self.assertIn("keep-alive", (r.header("Connection") or "").lower(), r.headers)
            s.sendall(b"GET /p5.txt HTTP/1.0\r\n\r\n")
            r = read_response(s, timeout=15)
            self.assertEqual(r.body, body_of(5))
            closed, _ = wait_closed(s, timeout=15)
            self.assertTrue(closed)

    def test_http11_keep_alive_default(self):
        with connect(self.port) as s:
            for i in range(5):
                s.sendall(get_req(i))
                r = read_response(s, timeout=15)
                self.assertEqual(r.body, body_of(i))
                self.assertFalse(r.closes(), r.headers)
            closed, _ = wait_closed(s, timeout=1)
            self.assertFalse(closed, "server closed an idle keep-alive connection at once")

    def test_byte_by_byte(self):
        body = b"hello chunked world"
        data = (get_req(3) +
                b"GET /p4.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde" +
                b"GET /p5.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" +
                get_req(6, "Connection: close\r\n"))
        with connect(self.port, nodelay=True, timeout=30) as s:
            for b in data:
                s.send(bytes([b]))
                time.sleep(0.002)
            for i in (3, 4, 5, 6):
                r = read_response(s, timeout=30)
                self.assertEqual(r.status, 200, "p%d: %r" % (i, r))
                self.assertEqual(r.body, body_of(i))
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed)
            self.assertEqual(extra, b"")

    def test_split_at_every_position(self):
        # The same request cut in two at each offset (head split across reads).
        req = b"GET /p7.txt HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
        with connect(self.port, nodelay=True, timeout=30) as s:
            for cut in range(1, len(req)):
                s.sendall(req[:cut])
                time.sleep(0.005)
                s.sendall(req[cut:])
                r = read_response(s, timeout=30)
                self.assertEqual(r.status, 200, "cut at %d: %r" % (cut, r))
                self.assertEqual(r.body, body_of(7))


class IdleTimeout(unittest.TestCase):
    def test_idle_keep_alive_connection_is_closed(self):
        with Atlas(site_config(limits={"idle_timeout": '"1s"'}), www=WWW) as a:
            with connect(a.port) as s:
                s.sendall(get_req(0))
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200, r)
                closed, extra = wait_closed(s, timeout=60)
                self.assertTrue(closed, "idle connection still open 60s after idle_timeout=1s")
                self.assertEqual(extra, b"")


class ManyConnections(unittest.TestCase):
    N = 1000
    PER_CONN = 3

    def test_thousand_concurrent_connections(self):
        with raised_nofile(self.N * 2 + 256) as limit:
            if limit < self.N + 64:
                self.skipTest("RLIMIT_NOFILE %d too low for %d connections" % (limit, self.N))
            # generous header/idle timeouts: establishing all connections first may take
            # a while (SYN retries if the accept backlog overflows, ASan builds)
            cfg = site_config(workers=2, limits={"header_timeout": '"120s"',
                                                 "idle_timeout": '"120s"'})
            with Atlas(cfg, www=WWW) as a:
                errors = run_many(a.port, self.N, self.PER_CONN, timeout=240)
                a.assert_alive()
                self.assertEqual(errors, [], "%d of %d connections failed; first: %s"
                                 % (len(errors), self.N, errors[:5]))


class _Conn:
    __slots__ = ("sock", "idx", "connected", "done", "out", "buf", "err")

    def __init__(self, sock, idx):
        self.sock = sock
        self.idx = idx
        self.connected = False
        self.done = 0
        self.out = b""
        self.buf = bytearray()
        self.err = None


def run_many(port, n, per_conn, timeout):
    """Open n connections, wait until every one is established (all open at once), then
    make per_conn keep-alive requests on each, all interleaved through one selector.
    Returns a list of error strings (empty when every request got the right 200)."""
    sel = selectors.DefaultSelector()
    conns = []
    deadline = time.monotonic() + timeout
    try:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", port))
            c = _Conn(s, i)
            if rc not in (0, errno.EINPROGRESS):
                c.err = "connect: %s" % errno.errorcode.get(rc, rc)
            conns.append(c)
            if c.err is None:
                sel.register(s, selectors.EVENT_WRITE, c)
        # phase 1: every connection established
        pending = sum(1 for c in conns if c.err is None)
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e:
                    c.err = "connect: %s" % errno.errorcode.get(e, e)
                    sel.unregister(c.sock)
                else:
                    c.connected = True
                    sel.unregister(c.sock)
                pending -= 1
        for c in conns:
            if c.err is None and not c.connected:
                c.err = "connect did not complete"
                sel.unregister(c.sock)
        # phase 2: requests (first one on every connection at once)
        active = 0
        for c in conns:
            if c.err is None:
                c.out = get_req(c.idx)
                sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                active += 1
        while active and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=1.0):
                c = key.data
                try:
                    if ev & selectors.EVENT_WRITE and c.out:
                        sent = c.sock.send(c.out)
                        c.out = c.out[sent:]
                        if not c.out:
                            sel.modify(c.sock, selectors.EVENT_READ, c)
                    if ev & selectors.EVENT_READ:
                        data = c.sock.recv(65536)
                        if not data:
                            raise ConnectionError("closed by server after %d responses"
                                                  % c.done)
                        c.buf += data
                        while _take_response(c):
                            c.done += 1
                            if c.done == per_conn:
                                sel.unregister(c.sock)
                                active -= 1
                                break
                            c.out = get_req(c.idx + c.done)
                            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                except (OSError, ValueError) as e:
                    c.err = "conn %d: %s" % (c.idx, e)
                    try:
                        sel.unregister(c.sock)
                    except (KeyError, ValueError):
                        pass
                    active -= 1
        for c in conns:
            if c.err is None and c.done < per_conn:
                c.err = "conn %d: only %d of %d responses before the deadline" % (
                    c.idx, c.done, per_conn)
        return [c.err for c in conns if c.err]
    finally:
        sel.close()
        for c in conns:
            c.sock.close()


def _take_response(c):
    """Parse one complete response from c.buf if present; verify it; True if consumed."""
    end = c.buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = bytes(c.buf[:end]).decode("latin-1").split("\r\n")
    length = None
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length is None:
        raise ValueError("response without Content-Length: %r" % head)
    if len(c.buf) < end + 4 + length:
        return False
    body = bytes(c.buf[end + 4:end + 4 + length])
    del c.buf[:end + 4 + length]
    if not head[0].startswith("HTTP/1.1 200"):
        raise ValueError("status %r" % head[0])
    want = body_of(c.idx + c.done)
    if body != want:
        raise ValueError("wrong body %r, want %r" % (body[:40], want[:40]))
    return True


if __name__ == "__main__":
    unittest.main()
