"""SIGTERM / SIGINT: stop accepting, finish in-flight responses, exit 0."""

import hashlib
import os
import signal
import socket
import time
import unittest

from harness import (Atlas, AtlasError, can_connect, connect, listening, read_response,
                     site_config, tail, wait_closed)

MiB = 1024 * 1024
BIG_SIZE = 64 * MiB
WWW = {"index.html": "<p>index</p>\n", "small.txt": "small\n"}


_BIG = []


def big_content():
    """64 MiB of random bytes, made once per process."""
    if not _BIG:
        _BIG.append(os.urandom(BIG_SIZE))
    return _BIG[0]


class BigDownload:
    """A GET of /big.bin read by hand, so the test controls the pace.
    SO_RCVBUF is set small before connecting (this also stops receive-buffer
    autotuning), so most of the 64 MiB is still inside atlasd when it is signalled."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        self.hash = hashlib.sha256()
        self.received = 0
        self.length = None
        self._read_head()

    def _read_head(self):
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = self.sock.recv(65536)
            if not b:
                raise AssertionError("closed before the response head: %r" % buf[:200])
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise AssertionError("status line %r" % lines[0])
        for l in lines[1:]:
            k, _, v = l.partition(":")
            if k.strip().lower() == "content-length":
                self.length = int(v.strip())
        if self.length is None:
            raise AssertionError("no Content-Length in %r" % head)
        self._add(rest)

    def _add(self, data):
        self.hash.update(data)
        self.received += len(data)

    def read_until(self, n, chunk=65536, pause=0.0):
        while self.received < min(n, self.length):
            b = self.sock.recv(min(chunk, self.length - self.received))
            if not b:
                raise AssertionError("connection closed after %d of %d body bytes"
                                     % (self.received, self.length))
            self._add(b)
            if pause:
                time.sleep(pause)

    def read_rest(self, chunk=65536, pause=0.001):
        self.read_until(self.length, chunk, pause)

    def close(self):
        self.sock.close()


class Signals(unittest.TestCase):
    def test_sigterm_with_idle_keepalive_connection(self):
        with Atlas(site_config(workers=2), www=WWW) as a:
            with connect(a.port) as s:
                s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200, r)
                # connection now idle in keep-alive
                rc = a.stop(signal.SIGTERM, timeout=15)
                self.assertEqual(rc, 0, tail(a.stderr_text()))
                closed, extra = wait_closed(s, timeout=15)
                self.assertTrue(closed)
            self.assertFalse(can_connect(a.port), "still accepting after exit")

    def test_sigint_with_idle_keepalive_connection(self):
        with Atlas(site_config(workers=1), www=WWW) as a:
            with connect(a.port) as s:
                s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(s, timeout=15).status, 200)
                rc = a.stop(signal.SIGINT, timeout=15)
                self.assertEqual(rc, 0, tail(a.stderr_text()))

    def test_sigterm_without_connections(self):
        with Atlas(site_config(workers=2), www=WWW) as a:
            rc = a.stop(signal.SIGTERM, timeout=15)
            self.assertEqual(rc, 0, tail(a.stderr_text()))
            self.assertFalse(can_connect(a.port))

    def test_sigterm_mid_large_response_completes(self):
        data = big_content()
        want = hashlib.sha256(data).hexdigest()
        with Atlas(site_config(workers=2), www=dict(WWW, **{"big.bin": data})) as a:
            dl = BigDownload(a.port)
            try:
                self.assertEqual(dl.length, BIG_SIZE)
                dl.read_until(MiB)
                a.send_signal(signal.SIGTERM)
                # Wait (with a deadline) until the drain has begun — every worker's
                # listener is closed — so the rest of the body is read while draining.
                deadline = time.monotonic() + 15
                while listening(a.port) and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertFalse(listening(a.port), "still listening 15s after SIGTERM")
                self.assertFalse(can_connect(a.port), "connection accepted after SIGTERM")
                dl.read_rest(pause=0.001)
                self.assertEqual(dl.received, BIG_SIZE)
                self.assertEqual(dl.hash.hexdigest(), want, "body corrupted during drain")
                # the finished keep-alive connection is closed by the draining server
                closed, extra = wait_closed(dl.sock, timeout=30)
                self.assertTrue(closed, "connection left open after drain")
                self.assertEqual(extra, b"")
            finally:
                dl.close()
            rc = self._wait_exit(a)
            self.assertEqual(rc, 0, tail(a.stderr_text()))

    def test_no_new_connections_while_draining(self):
        data = big_content()
        want = hashlib.sha256(data).hexdigest()
        with Atlas(site_config(workers=2), www=dict(WWW, **{"big.bin": data})) as a:
            dl = BigDownload(a.port)
            try:
                dl.read_until(MiB)
                a.send_signal(signal.SIGTERM)
                # While the big response is stuck (we are not reading), atlasd is still
                # draining; new connections must soon be refused.
                refused = False
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    try:
                        c = socket.create_connection(("127.0.0.1", a.port), timeout=2)
                        c.close()
                    except ConnectionRefusedError:
                        refused = True
                        break
                    except OSError:
                        pass
                    time.sleep(0.1)
                self.assertTrue(refused, "new connections still accepted 15s after SIGTERM")
                self.assertTrue(a.alive(), "atlasd exited before finishing the in-flight "
                                           "response:\n" + tail(a.stderr_text()))
                dl.read_rest(pause=0.0)
                self.assertEqual(dl.hash.hexdigest(), want, "body corrupted during drain")
            finally:
                dl.close()
            rc = self._wait_exit(a)
            self.assertEqual(rc, 0, tail(a.stderr_text()))
            self.assertFalse(can_connect(a.port))

    def _wait_exit(self, a, timeout=30):
        a._stopped_by_test = True
        rc = a.wait(timeout=timeout)
        if rc is None:
            a._kill()
            raise AtlasError("atlasd still running %ds after the drained response ended\n%s"
                             % (timeout, tail(a.stderr_text())))
        return rc


if __name__ == "__main__":
    unittest.main()
