"""The per-route chain: filters (request and response hooks, STOP + resume from a
timer, a filter answering itself), a handler that streams a chunked response
from timers with zero-copy writes, and request bodies delivered to a handler
(Content-Length, chunked, 100-continue) — driven through mod_testkit."""

import unittest

from harness import Atlas, build_request, connect, read_response, request

CONFIG = """
[server]
workers = 1
module_dir = "{modules}"

[[listener]]
name = "web"
listen = ["127.0.0.1:{port}"]

  [[listener.route]]
  path_prefix = "/"
  filters = [{ module = "testkit", name = "outer" }, { module = "testkit", name = "inner" }]
  handler = { module = "static", root = "www" }

  [[listener.route]]
  path_prefix = "/echo"
  handler = { module = "testkit" }
"""

WWW = {"index.html": "<p>hi</p>\n", "a.txt": "aaa\n"}


def checksum(data):
    s = 0
    for b in data:
        s = (s * 31 + b) & 0xFFFFFFFF
    return s


class Filters(unittest.TestCase):
    def test_response_filters_run_in_reverse_order(self):
        with Atlas(CONFIG, www=WWW) as a:
            r = request(a.port, path="/a.txt")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"aaa\n")
            # request hooks ran outer then inner; response hooks inner then outer
            self.assertEqual(r.header_all("X-Filter"), ["inner", "outer"])

    def test_filter_answers_itself(self):
        with Atlas(CONFIG, www=WWW) as a:
            r = request(a.port, path="/a.txt", headers={"X-Test-Deny": "1"})
            self.assertEqual(r.status, 403)
            self.assertEqual(r.body, b"denied by filter\n")

    def test_stop_and_resume_keeps_pipelined_order(self):
        with Atlas(CONFIG, www=WWW) as a, connect(a.port) as s:
            reqs = b""
            for i in range(6):
                delay = [("X-Test-Delay", "30")] if i % 2 == 0 else []
                path = "/a.txt" if i % 3 else "/index.html"
                reqs += build_request("GET", path, headers=delay)
            s.sendall(reqs)
            for i in range(6):
                r = read_response(s, timeout=15)
                self.assertEqual(r.status, 200)
                want = b"aaa\n" if i % 3 else b"<p>hi</p>\n"
                self.assertEqual(r.body, want, "response %d out of order" % i)


class StreamingHandler(unittest.TestCase):
    def test_chunked_response_from_timers(self):
        with Atlas(CONFIG, www=WWW) as a:
            r = request(a.port, path="/echo")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertEqual(r.body, b"piece 0\npiece 1\npiece 2\nbytes=0 sum=0\n")

    def test_body_with_content_length(self):
        body = bytes(range(256)) * 4000  # ~1 MB, crosses many receive buffers
        with Atlas(CONFIG, www=WWW) as a:
            r = request(a.port, "POST", "/echo", body=body, timeout=30)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.body.endswith(
                ("bytes=%d sum=%d\n" % (len(body), checksum(body))).encode()), r.body[-80:])

    def test_chunked_body_and_keepalive(self):
        parts = [b"x" * 10, b"y" * 5000, b"z"]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        body = b"".join(parts)
        with Atlas(CONFIG, www=WWW) as a, connect(a.port) as s:
            s.sendall(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                                    body=chunked) + build_request("GET", "/a.txt"))
            r = read_response(s, timeout=15)
            self.assertTrue(r.body.endswith(
                ("bytes=%d sum=%d\n" % (len(body), checksum(body))).encode()), r.body)
            r2 = read_response(s, timeout=15)
            self.assertEqual(r2.body, b"aaa\n")

    def test_expect_100_continue_before_body(self):
        with Atlas(CONFIG, www=WWW) as a, connect(a.port) as s:
            s.sendall(build_request("POST", "/echo", headers=[("Content-Length", "5"),
                                                               ("Expect", "100-continue")]))
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 100)
            s.sendall(b"hello")
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.body.endswith(b"bytes=5 sum=%d\n" % checksum(b"hello")))

    def test_client_leaving_mid_stream_does_not_hurt(self):
        with Atlas(CONFIG, www=WWW) as a:
            for _ in range(20):
                s = connect(a.port)
                s.sendall(build_request("GET", "/echo"))
                s.recv(10)
                s.close()
            r = request(a.port, path="/a.txt")
            self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
