"""Route selection: host (exact and *.suffix), longest path_prefix, methods, header
conditions, 404.

Every static root holds a `who.txt` naming the root, so a response tells which route
served it.  For prefix routes the file exists both at <root>/who.txt and at
<root>/<prefix>/who.txt, so the tests hold whether or not the static handler strips the
matched prefix (that choice is not what is tested here)."""

import unittest

from harness import Atlas, connect, read_response, request

CONFIG = """\
[server]
workers = 1

[[listener]]
name = "paths"
listen = ["127.0.0.1:{port}"]

  # declared so that neither first-match nor last-match would give the right answers
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "r_default" }

  [[listener.route]]
  path_prefix = "/api/v2/"
  handler = { module = "static", root = "r_v2" }

  [[listener.route]]
  path_prefix = "/api/"
  handler = { module = "static", root = "r_api" }

  [[listener.route]]
  path_prefix = "/m/"
  methods = ["POST"]
  handler = { module = "static", root = "r_post" }

  [[listener.route]]
  path_prefix = "/api/"
  headers = { "X-Canary" = "1" }
  handler = { module = "static", root = "r_canary" }

  [[listener.route]]
  path_prefix = "/api/"
  headers = { "X-Canary" = "1", "X-Debug" = "*" }
  handler = { module = "static", root = "r_canary_debug" }

[[listener]]
name = "hosts"
listen = ["127.0.0.1:{port2}"]

  [[listener.route]]
  host = "a.test"
  handler = { module = "static", root = "r_a" }

  [[listener.route]]
  host = "*.wild.test"
  handler = { module = "static", root = "r_wild" }

  [[listener.route]]
  path_prefix = "/get-only/"
  methods = ["GET"]
  handler = { module = "static", root = "r_get" }
"""

FILES = {
    "r_default/who.txt": "default\n",
    "r_default/m/who.txt": "default\n",
    "r_api/who.txt": "api\n",
    "r_api/api/who.txt": "api\n",
    "r_v2/who.txt": "v2\n",
    "r_v2/api/v2/who.txt": "v2\n",
    "r_post/who.txt": "post\n",
    "r_post/m/who.txt": "post\n",
    "r_canary/who.txt": "canary\n",
    "r_canary/api/who.txt": "canary\n",
    "r_canary_debug/who.txt": "canary+debug\n",
    "r_canary_debug/api/who.txt": "canary+debug\n",
    "r_a/who.txt": "a\n",
    "r_wild/who.txt": "wild\n",
    "r_get/who.txt": "get\n",
    "r_get/get-only/who.txt": "get\n",
}


class Routing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(CONFIG, files=FILES)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port
        cls.port2 = cls.atlas.port2

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def served_by(self, port, path, host="x.test", method="GET", headers=None):
        hs = dict(headers or {})
        if method in ("POST", "PUT"):
            hs["Content-Length"] = "0"
        r = request(port, method, path, host=host, headers=hs)
        return r.status, r.body.decode("latin-1").strip()

    def check(self, cases, port):
        for method, host, path, want in cases:
            with self.subTest(method=method, host=host, path=path):
                status, who = self.served_by(port, path, host, method)
                if want == 404:
                    self.assertEqual(status, 404, "%s %s Host: %s -> %s %r"
                                     % (method, path, host, status, who))
                else:
                    self.assertEqual((status, who), (200, want),
                                     "%s %s Host: %s" % (method, path, host))

    def test_longest_prefix_wins(self):
        self.check([
            ("GET", "x.test", "/who.txt", "default"),
            ("GET", "x.test", "/api/who.txt", "api"),
            ("GET", "x.test", "/api/v2/who.txt", "v2"),
        ], self.port)

    def test_header_conditions(self):
        for headers, want in [
            ({}, "api"),
            ({"X-Canary": "1"}, "canary"),
            ({"x-canary": "1"}, "canary"),                     # names are case-insensitive
            ({"X-Canary": "2"}, "api"),                        # values are exact
            ({"X-Canary": "1", "X-Debug": "anything"}, "canary+debug"),  # more conditions win
            ({"X-Debug": "1"}, "api"),                         # all conditions must hold
        ]:
            with self.subTest(headers=headers):
                self.assertEqual(self.served_by(self.port, "/api/who.txt", headers=headers), (200, want))
        # a longer prefix without conditions still beats them
        self.assertEqual(self.served_by(self.port, "/api/v2/who.txt", headers={"X-Canary": "1"}), (200, "v2"))

    def test_methods_filter_falls_through(self):
        # /m/ is only for POST: a GET there goes to the "/" route.
        self.check([("GET", "x.test", "/m/who.txt", "default")], self.port)

    def test_host_exact(self):
        self.check([
            ("GET", "a.test", "/who.txt", "a"),
            ("GET", "A.Test", "/who.txt", "a"),        # host names are case-insensitive
            ("GET", "a.test:8080", "/who.txt", "a"),   # the port is not part of the match
            ("GET", "b.test", "/who.txt", 404),
            ("GET", "xa.test", "/who.txt", 404),
            ("GET", "a.test.evil", "/who.txt", 404),
        ], self.port2)

    def test_host_wildcard(self):
        self.check([
            ("GET", "x.wild.test", "/who.txt", "wild"),
            ("GET", "deep.x.wild.test", "/who.txt", "wild"),
            ("GET", "X.WILD.TEST", "/who.txt", "wild"),
            # "*.wild.test" covers names under wild.test, not wild.test itself
            ("GET", "wild.test", "/who.txt", 404),
            ("GET", "evilwild.test", "/who.txt", 404),
        ], self.port2)

    def test_methods_filter(self):
        self.check([
            ("GET", "other.test", "/get-only/who.txt", "get"),
            ("POST", "other.test", "/get-only/who.txt", 404),
            ("DELETE", "other.test", "/get-only/who.txt", 404),
        ], self.port2)

    def test_nothing_matches_404(self):
        self.check([
            ("GET", "other.test", "/who.txt", 404),
            ("GET", "other.test", "/", 404),
            ("GET", "other.test", "/get-only", 404),   # prefix "/get-only/" needs the slash
        ], self.port2)

    def test_http10_without_host_matches_no_host_route(self):
        with connect(self.port2) as s:
            s.sendall(b"GET /who.txt HTTP/1.0\r\n\r\n")
            r = read_response(s, timeout=15)
        self.assertEqual(r.status, 404, r)
        with connect(self.port2) as s:
            s.sendall(b"GET /get-only/who.txt HTTP/1.0\r\n\r\n")
            r = read_response(s, timeout=15)
        self.assertEqual((r.status, r.body), (200, b"get\n"), r)

    def test_404_keeps_connection(self):
        with connect(self.port2) as s:
            s.sendall(b"GET /who.txt HTTP/1.1\r\nHost: nope.test\r\n\r\n"
                      b"GET /who.txt HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r1 = read_response(s, timeout=15)
            r2 = read_response(s, timeout=15)
        self.assertEqual(r1.status, 404, r1)
        self.assertIsNotNone(r1.header("Content-Length"), r1.headers)
        self.assertEqual((r2.status, r2.body), (200, b"a\n"), r2)

    def test_roots_distinguishable_on_one_connection(self):
        with connect(self.port2) as s:
            for host, want in (("a.test", b"a\n"), ("q.wild.test", b"wild\n"),
                               ("a.test", b"a\n")):
                s.sendall(b"GET /who.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
                r = read_response(s, timeout=15)
                self.assertEqual((r.status, r.body), (200, want), host)


if __name__ == "__main__":
    unittest.main()
