"""Connection-level chains: a stream handler owning the whole connection (L4),
and a transport between the socket and the chain — both under an L4 handler and
under the HTTP codec — driven through mod_testkit's echo and XOR transport."""

import hashlib
import os
import socket
import unittest

from harness import Atlas, connect, read_response, recv_exactly, recv_to_eof, run_check

ECHO = """
[server]
workers = 1
module_dir = "{modules}"

[[listener]]
name = "echo"
listen = ["127.0.0.1:{port}"]
chain = [{ module = "testkit", banner = "hello\\n" }]
"""

XOR_ECHO = """
[server]
workers = 1
module_dir = "{modules}"

[[listener]]
name = "xecho"
listen = ["127.0.0.1:{port}"]
chain = [{ module = "testkit", key = 7 }, { module = "testkit" }]
"""

XOR_HTTP = """
[server]
workers = 2
module_dir = "{modules}"

[[listener]]
name = "xhttp"
listen = ["127.0.0.1:{port}"]
chain = [{ module = "testkit", key = 90 }, { module = "http" }]
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "www" }
"""


def xor(data, key):
    return bytes(b ^ key for b in data)


class XorSock:
    """A socket whose bytes are XOR-ed both ways, for read_response()."""

    def __init__(self, sock, key):
        self.sock, self.key = sock, key

    def sendall(self, data):
        self.sock.sendall(xor(data, self.key))

    def recv(self, n):
        return xor(self.sock.recv(n), self.key)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def gettimeout(self):
        return self.sock.gettimeout()


class StreamHandler(unittest.TestCase):
    def test_banner_echo_and_half_close(self):
        with Atlas(ECHO) as a, connect(a.port) as s:
            self.assertEqual(recv_exactly(s, 6), b"hello\n")
            s.sendall(b"ping")
            self.assertEqual(recv_exactly(s, 4), b"ping")
            s.sendall(b"last words")
            s.shutdown(socket.SHUT_WR)  # the echo answers with its own half-close
            self.assertEqual(recv_to_eof(s), b"last words")

    def test_bulk_echo_is_intact(self):
        data = os.urandom(8 << 20)
        with Atlas(ECHO) as a, connect(a.port) as s:
            recv_exactly(s, 6)
            import threading
            t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
            t.start()
            got = recv_to_eof(s, timeout=60)
            t.join()
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())

    def test_transport_under_stream(self):
        with Atlas(XOR_ECHO) as a, connect(a.port) as s:
            s.sendall(xor(b"through the toy cipher", 7))
            self.assertEqual(xor(recv_exactly(s, 22), 7), b"through the toy cipher")


class TransportUnderHttp(unittest.TestCase):
    WWW = {"index.html": "<p>x</p>\n", "big.bin": bytes(range(256)) * 12288}

    def test_requests_and_files_pass_through(self):
        with Atlas(XOR_HTTP, www=self.WWW) as a, connect(a.port) as raw:
            s = XorSock(raw, 90)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_response(s, timeout=20)
            self.assertEqual((r.status, r.body), (200, b"<p>x</p>\n"))
            r = read_response(s, timeout=30)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, self.WWW["big.bin"])

    def test_plaintext_gets_nothing_sensible(self):
        # Plain HTTP on the transport's port is garbage after the XOR: the codec answers
        # 400 (XOR-ed) and closes, and the server stays healthy.
        with Atlas(XOR_HTTP, www=self.WWW) as a, connect(a.port) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = xor(recv_to_eof(raw), 90)
            self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:40])
            with connect(a.port) as raw2:
                s = XorSock(raw2, 90)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(s, timeout=20).status, 200)


class Check(unittest.TestCase):
    def test_wrong_kind_is_named(self):
        cfg = XOR_HTTP.replace('{ module = "testkit", key = 90 }', '{ module = "static", root = "www" }')
        code, _, err = run_check(cfg)
        self.assertEqual(code, 1)
        self.assertIn("listener.xhttp.chain[0]", err)
        self.assertIn("transport", err)


if __name__ == "__main__":
    unittest.main()
