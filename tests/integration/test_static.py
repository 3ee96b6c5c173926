"""mod_static against its spec: content types and the `mime` overrides, the validator
headers (Last-Modified, ETag, Accept-Ranges), HEAD, 405, conditional requests, single byte
ranges and If-Range, directories (index, 403, 301), path traversal and symlinks, cache
freshness after on-disk changes, precompressed .br/.gz variants, a 1 GiB file streamed
without being read into memory, the seed's static example, and `atlasd -t` errors for bad
handler keys.

Most requests go on a fresh connection with `Connection: close` and are read until the
server closes (see fetch()), so a HEAD or 304 carrying a stray body is noticed.
Files of the main site get a fixed mtime (MTIME, in 2020) before the first request, so
Last-Modified / ETag / If-Modified-Since / If-Range values are known exactly.
"""

import email.utils
import gzip
import hashlib
import os
import re
import shutil
import tempfile
import time
import unittest

from harness import (Atlas, REPO, build_request, connect, free_port,
                     parse_response_bytes, raw, read_response, run_check, site_config, vm_hwm)

MTIME = 1600000000                               # Sun, 13 Sep 2020 12:26:40 GMT
LM = email.utils.formatdate(MTIME, usegmt=True)  # IMF-fixdate
DAY = 86400


def httpdate(t):
    return email.utils.formatdate(t, usegmt=True)


def etag_for(mtime, size):
    """The spec's ETag: "<mtime-seconds hex>-<size hex>"."""
    return '"%x-%x"' % (int(mtime), size)


def blob(seed, n):
    """n bytes of non-repeating content (every slice is distinguishable)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


def as_bytes(v):
    return v.encode() if isinstance(v, str) else v


def handler_config(extra="", root="www", **kw):
    """site_config() with more keys in the static handler's inline table."""
    cfg = site_config(root=root, **kw)
    old = 'root = "%s" }' % root
    assert old in cfg
    return cfg.replace(old, 'root = "%s"%s }' % (root, (", " + extra) if extra else ""))


def fetch(port, path, method="GET", headers=(), body=b"", timeout=10):
    """One request with `Connection: close`; read until the server closes.  The response
    must be complete and nothing may follow it (HEAD, 304: no body at all)."""
    hs = [("Connection", "close")]
    hs += list(headers.items()) if isinstance(headers, dict) else list(headers)
    if body:
        hs.append(("Content-Length", str(len(body))))
    data = raw(port, build_request(method, path, headers=hs, body=body), timeout=timeout)
    r, rest = parse_response_bytes(data, head=(method == "HEAD"))
    if r is None:
        raise AssertionError("no complete response to %s %s: %r" % (method, path, data[:400]))
    if rest:
        raise AssertionError("%d bytes after the %s response to %s %s: %r"
                             % (len(rest), r.status, method, path, rest[:200]))
    return r


def keepalive(port, reqs, timeout=10):
    """Several requests one after the other on one keep-alive connection, ending with a
    sentinel GET of /hello.txt (so a body sent after a HEAD would garble its framing).
    reqs: [(method, path, headers)].  Returns the responses, the sentinel's last."""
    out = []
    with connect(port, timeout=timeout) as s:
        for method, path, headers in list(reqs) + [("GET", "/hello.txt", ())]:
            hs = list(headers.items()) if isinstance(headers, dict) else list(headers)
            s.sendall(build_request(method, path, headers=hs))
            r = read_response(s, head=(method == "HEAD"), timeout=timeout)
            if r.closes():
                raise AssertionError("keep-alive connection closed after %s %s: %r"
                                     % (method, path, r))
            out.append(r)
    return out


def comparable(r):
    """Headers minus the ones that legitimately differ between two answers."""
    return sorted((k.lower(), v) for k, v in r.headers
                  if k.lower() not in ("date", "connection", "keep-alive"))


def set_mtimes(base, t=MTIME):
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.utime(p, (t, t))


def vary_tokens(r):
    return {t.strip().lower() for v in r.header_all("Vary") for t in v.split(",")}


IMF_RE = (r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
          r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


# --------------------------------------------------------------------------- main site

RANGE = blob(b"range", 1000)        # the 1000-byte range file
LARGE = blob(b"large", 600000)      # above the default cache.max_file_size (256k): streamed

WWW = {
    "index.html": "<!doctype html><title>static</title><p>home</p>\n",
    "hello.txt": "hello, static\n",
    "style.css": "p { margin: 0 }\n",
    "app.js": "console.log('static');\n",
    "data.json": '{"static": true}\n',
    "pixel.png": b"\x89PNG\r\n\x1a\n" + blob(b"png", 120),
    "blob.qqzz": blob(b"unknown", 77),
    "noext": "no extension\n",
    "range.bin": RANGE,
    "large.bin": LARGE,
    "sub/index.html": "<p>sub index</p>\n",
    "sub/deeper/page.html": "<p>deep</p>\n",
    "sub/deeper/index.html": "<p>deeper index</p>\n",
    "noindex/alpha-file.txt": "alpha\n",
    "noindex/beta-file.txt": "beta\n",
    # variants exist, but precompressed is off by default: never used
    "pre.js": "var pre = 1;\n",
    "pre.js.br": b"BROTLI-BYTES-NOT-TO-BE-SERVED",
    "pre.js.gz": gzip.compress(b"var pre = 1;\n"),
}

TYPES = [
    ("/index.html", "text/html"),
    ("/hello.txt", "text/plain; charset=utf-8"),
    ("/style.css", "text/css"),
    ("/app.js", "application/javascript"),
    ("/data.json", "application/json"),
    ("/pixel.png", "image/png"),
    ("/blob.qqzz", "application/octet-stream"),
    ("/noext", "application/octet-stream"),
    ("/sub/deeper/page.html", "text/html"),
]


class StaticSite(unittest.TestCase):
    """The default handler config: `{ module = "static", root = "www" }`."""

    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(site_config(), www=WWW)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port
        set_mtimes(cls.atlas.path("www"))  # before any request: nothing is cached yet

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def etag(self, rel):
        return etag_for(MTIME, len(as_bytes(WWW[rel])))

    # -- 1. content types, headers, HEAD

    def test_content_types_and_headers(self):
        for path, ctype in TYPES:
            with self.subTest(path=path):
                want = as_bytes(WWW[path.lstrip("/")])
                r = fetch(self.port, path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, want)
                self.assertEqual(r.header("Content-Type"), ctype)
                self.assertEqual(r.header("Content-Length"), str(len(want)))
                self.assertEqual(r.header("Last-Modified"), LM)
                self.assertRegex(r.header("Last-Modified"), IMF_RE)
                self.assertEqual((r.header("ETag") or "").lower(),
                                 etag_for(MTIME, len(want)), r.headers)
                self.assertEqual(r.header("Accept-Ranges"), "bytes")
                for name in ("Content-Type", "Content-Length", "Last-Modified", "ETag",
                             "Accept-Ranges"):
                    self.assertEqual(len(r.header_all(name)), 1, (name, r.headers))
                self.assertIsNone(r.header("Transfer-Encoding"))
                self.assertIsNone(r.header("Content-Encoding"))

    def test_head_same_headers_no_body(self):
        for path in ("/hello.txt", "/index.html", "/", "/sub/", "/range.bin", "/large.bin",
                     "/pixel.png"):
            with self.subTest(path=path):
                g = fetch(self.port, path)
                h = fetch(self.port, path, method="HEAD")   # fetch: nothing after the head
                self.assertEqual(g.status, 200, g)
                self.assertEqual(h.status, 200, h)
                self.assertEqual(h.body, b"")
                strip = lambda r: sorted((k.lower(), v) for k, v in r.headers
                                         if k.lower() != "date")
                self.assertEqual(strip(h), strip(g))
                self.assertEqual(h.header("Content-Length"), str(len(g.body)))

    def test_keepalive_answers_match(self):
        # Keep-alive HTTP/1.1 without conditionals may take a cached fast path: its answers
        # (GET and HEAD, first and repeated) must be the same as the Connection: close ones.
        paths = [p for p, _ in TYPES] + ["/", "/sub/", "/range.bin", "/large.bin"]
        reqs = []
        for path in paths:
            reqs += [("GET", path, ()), ("HEAD", path, ()), ("GET", path, ())]
        got = keepalive(self.port, reqs)
        for i, path in enumerate(paths):
            with self.subTest(path=path):
                ref = fetch(self.port, path)
                self.assertEqual(ref.status, 200, ref)
                g1, h, g2 = got[3 * i: 3 * i + 3]
                for r in (g1, h, g2):
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(comparable(r), comparable(ref))
                    self.assertRegex(r.header("Date") or "", IMF_RE)
                    self.assertEqual(len(r.header_all("Date")), 1, r.headers)
                self.assertEqual(g1.body, ref.body)
                self.assertEqual(g2.body, ref.body)
                self.assertEqual(h.body, b"")
        self.assertEqual(got[-1].body, as_bytes(WWW["hello.txt"]))

    def test_keepalive_conditionals_and_ranges(self):
        et = etag_for(MTIME, 1000)
        reqs = [("GET", "/range.bin", ()),
                ("GET", "/range.bin", [("If-None-Match", et)]),
                ("GET", "/range.bin", [("If-Modified-Since", LM)]),
                ("GET", "/range.bin", [("Range", "bytes=10-19")]),
                ("HEAD", "/range.bin", [("Range", "bytes=10-19")]),
                ("GET", "/range.bin", [("Range", "bytes=2000-")]),
                ("GET", "/range.bin", ())]
        r = keepalive(self.port, reqs)
        self.assertEqual([x.status for x in r], [200, 304, 304, 206, 200, 416, 200, 200])
        self.assertEqual(r[0].body, RANGE)
        self.assertEqual(r[3].body, RANGE[10:20])
        self.assertEqual(r[3].header("Content-Range"), "bytes 10-19/1000")
        self.assertEqual(r[4].header("Content-Length"), "1000")
        self.assertEqual(r[5].header("Content-Range"), "bytes */1000")
        self.assertEqual(r[6].body, RANGE)

    def test_head_pipelined_before_get(self):
        # A HEAD that sent a body would garble the GET behind it.
        with connect(self.port) as s:
            s.sendall(build_request("HEAD", "/range.bin") + build_request("GET", "/hello.txt"))
            h = read_response(s, head=True)
            g = read_response(s)
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.header("Content-Length"), "1000")
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.body, as_bytes(WWW["hello.txt"]))

    def test_precompressed_off_by_default(self):
        r = fetch(self.port, "/pre.js", headers={"Accept-Encoding": "br, gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["pre.js"]))
        self.assertIsNone(r.header("Content-Encoding"), r.headers)
        self.assertEqual(r.header("Content-Type"), "application/javascript")

    def test_missing_is_404(self):
        for path in ("/nope.txt", "/sub/nope.html", "/nodir/", "/nodir/x.txt",
                     "/hello.txt/x"):
            with self.subTest(path=path):
                self.assertEqual(fetch(self.port, path).status, 404)

    # -- 2. methods

    def test_other_methods_405(self):
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            for path in ("/hello.txt", "/"):
                with self.subTest(method=method, path=path):
                    body = b"x=1" if method in ("POST", "PUT", "PATCH") else b""
                    r = fetch(self.port, path, method=method, body=body)
                    self.assertEqual(r.status, 405, r)
                    self.assertEqual(r.header("Allow"), "GET, HEAD", r.headers)
        # and the file is untouched
        self.assertEqual(fetch(self.port, "/hello.txt").body, as_bytes(WWW["hello.txt"]))

    # -- 3. conditional requests

    def assert_304(self, r, etag=True):
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        if etag:
            self.assertEqual((r.header("ETag") or "").lower(), self.etag("hello.txt"), r.headers)

    def assert_full(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["hello.txt"]))

    def test_if_none_match(self):
        et = self.etag("hello.txt")
        cases = [
            ("exact", et, 304),
            ("list", '"aaa", "bbb", %s' % et, 304),
            ("list no spaces", '"aaa",%s,"bbb"' % et, 304),
            ("star", "*", 304),
            ("weak", "W/" + et, 304),
            ("weak in list", '"zzz", W/%s' % et, 304),
            ("mismatch", '"nope"', 200),
            ("mismatch list", '"a", W/"b"', 200),
            ("other size", etag_for(MTIME, 999), 200),
            ("other mtime", etag_for(MTIME + 1, len(as_bytes(WWW["hello.txt"]))), 200),
        ]
        for name, value, status in cases:
            with self.subTest(case=name, inm=value):
                r = fetch(self.port, "/hello.txt", headers={"If-None-Match": value})
                self.assert_304(r) if status == 304 else self.assert_full(r)
        with self.subTest(case="HEAD exact"):
            self.assert_304(fetch(self.port, "/hello.txt", method="HEAD",
                                  headers={"If-None-Match": et}))

    def test_if_modified_since(self):
        cases = [
            ("equal", LM, 304),
            ("one second later", httpdate(MTIME + 1), 304),
            ("a day later", httpdate(MTIME + DAY), 304),
            ("one second earlier", httpdate(MTIME - 1), 200),
            ("a day earlier", httpdate(MTIME - DAY), 200),
            ("garbage", "not a date", 200),
            ("bad fields", "Sun, 45 Foo 2020 99:26:40 GMT", 200),
            ("empty", "", 200),
        ]
        for name, value, status in cases:
            with self.subTest(case=name, ims=value):
                r = fetch(self.port, "/hello.txt", headers={"If-Modified-Since": value})
                self.assert_304(r) if status == 304 else self.assert_full(r)

    def test_if_none_match_beats_if_modified_since(self):
        et = self.etag("hello.txt")
        with self.subTest("INM mismatch, IMS would give 304"):
            r = fetch(self.port, "/hello.txt", headers=[("If-None-Match", '"nope"'),
                                                        ("If-Modified-Since", LM)])
            self.assert_full(r)
        with self.subTest("INM match, IMS would give 200"):
            r = fetch(self.port, "/hello.txt", headers=[("If-Modified-Since",
                                                         httpdate(MTIME - DAY)),
                                                        ("If-None-Match", et)])
            self.assert_304(r)

    # -- 4. ranges

    def range_cases(self):
        et = etag_for(MTIME, 1000)
        # (name, headers, status, (first, last) for 206 / None)
        return [
            ("first byte", [("Range", "bytes=0-0")], 206, (0, 0)),
            ("first 100", [("Range", "bytes=0-99")], 206, (0, 99)),
            ("middle", [("Range", "bytes=100-199")], 206, (100, 199)),
            ("last 10 explicit", [("Range", "bytes=990-999")], 206, (990, 999)),
            ("end clamped", [("Range", "bytes=990-5000")], 206, (990, 999)),
            ("end one past", [("Range", "bytes=500-1000")], 206, (500, 999)),
            ("open-ended", [("Range", "bytes=500-")], 206, (500, 999)),
            ("open-ended whole", [("Range", "bytes=0-")], 206, (0, 999)),
            ("open-ended last byte", [("Range", "bytes=999-")], 206, (999, 999)),
            ("suffix 100", [("Range", "bytes=-100")], 206, (900, 999)),
            ("suffix 1", [("Range", "bytes=-1")], 206, (999, 999)),
            ("suffix longer than file", [("Range", "bytes=-5000")], 206, (0, 999)),
            ("start at size", [("Range", "bytes=1000-")], 416, None),
            ("start at size, closed", [("Range", "bytes=1000-1001")], 416, None),
            ("start past size", [("Range", "bytes=5000-6000")], 416, None),
            ("suffix zero", [("Range", "bytes=-0")], 416, None),
            ("two ranges", [("Range", "bytes=0-1,5-6")], 200, None),
            ("two ranges spaced", [("Range", "bytes=0-1, 5-6")], 200, None),
            ("range and suffix", [("Range", "bytes=0-0,-1")], 200, None),
            ("malformed: letters", [("Range", "bytes=abc")], 200, None),
            ("malformed: last < first", [("Range", "bytes=5-2")], 200, None),
            ("malformed: empty set", [("Range", "bytes=")], 200, None),
            ("malformed: lone dash", [("Range", "bytes=-")], 200, None),
            ("malformed: three parts", [("Range", "bytes=1-2-3")], 200, None),
            ("malformed: hex", [("Range", "bytes=0x10-0x20")], 200, None),
            ("malformed: no '='", [("Range", "bytes 0-1")], 200, None),
            ("unknown unit", [("Range", "pages=0-1")], 200, None),
            ("If-Range etag match", [("Range", "bytes=10-19"), ("If-Range", et)], 206, (10, 19)),
            ("If-Range etag mismatch", [("Range", "bytes=10-19"), ("If-Range", '"nope"')],
             200, None),
            ("If-Range weak etag", [("Range", "bytes=10-19"), ("If-Range", "W/" + et)],
             200, None),
            ("If-Range date match", [("Range", "bytes=10-19"), ("If-Range", LM)], 206, (10, 19)),
            ("If-Range date later", [("Range", "bytes=10-19"),
                                     ("If-Range", httpdate(MTIME + DAY))], 200, None),
            ("If-Range date earlier", [("Range", "bytes=10-19"),
                                       ("If-Range", httpdate(MTIME - 1))], 200, None),
            ("If-Range garbage", [("Range", "bytes=10-19"), ("If-Range", "garbage")],
             200, None),
            ("If-Range with suffix", [("Range", "bytes=-5"), ("If-Range", et)], 206, (995, 999)),
        ]

    def check_range(self, path, data, name, headers, status, span, method="GET"):
        r = fetch(self.port, path, method=method, headers=headers)
        size = len(data)
        self.assertEqual(r.status, status, "%s: %r" % (name, r))
        if status == 206:
            a, b = span
            self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (a, b, size))
            self.assertEqual(r.header("Content-Length"), str(b - a + 1))
            self.assertEqual(r.body, data[a:b + 1])
        elif status == 416:
            self.assertEqual(r.header("Content-Range"), "bytes */%d" % size)
        else:
            self.assertIsNone(r.header("Content-Range"), r.headers)
            self.assertEqual(r.header("Content-Length"), str(size))
            if method == "GET":
                self.assertEqual(r.body, data)

    def test_range_table(self):
        cases = self.range_cases()
        self.assertGreaterEqual(len(cases), 12)
        for name, headers, status, span in cases:
            with self.subTest(case=name, headers=headers):
                self.check_range("/range.bin", RANGE, name, headers, status, span)

    def test_range_ignored_for_head(self):
        # "Range (GET only)"
        self.check_range("/range.bin", RANGE, "HEAD", [("Range", "bytes=0-9")], 200, None,
                         method="HEAD")

    def test_range_on_streamed_file(self):
        n = len(LARGE)
        for name, headers, status, span in [
                ("middle", [("Range", "bytes=300000-300099")], 206, (300000, 300099)),
                ("suffix", [("Range", "bytes=-10")], 206, (n - 10, n - 1)),
                ("clamped", [("Range", "bytes=%d-%d" % (n - 10, n + 5000))], 206,
                 (n - 10, n - 1)),
                ("open", [("Range", "bytes=100-")], 206, (100, n - 1)),
                ("unsatisfiable", [("Range", "bytes=%d-" % n)], 416, None),
                ("multi", [("Range", "bytes=0-1,5-6")], 200, None)]:
            with self.subTest(case=name):
                self.check_range("/large.bin", LARGE, name, headers, status, span)

    # -- 5. directories

    def test_directory_index(self):
        for path, rel in (("/", "index.html"), ("/sub/", "sub/index.html"),
                          ("/sub/deeper/", "sub/deeper/index.html"),
                          ("/sub//", "sub/index.html"), ("/sub/?q=1", "sub/index.html")):
            with self.subTest(path=path):
                r = fetch(self.port, path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, as_bytes(WWW[rel]))
                self.assertEqual(r.header("Content-Type"), "text/html")

    def test_directory_without_index_403_no_listing(self):
        os.makedirs(self.atlas.path("www", "emptydir"), exist_ok=True)
        for path in ("/noindex/", "/emptydir/"):
            with self.subTest(path=path):
                r = fetch(self.port, path)
                self.assertEqual(r.status, 403, r)
                self.assertNotIn(b"alpha-file", r.body)
                self.assertNotIn(b"beta-file", r.body)

    def test_directory_without_slash_301(self):
        for path, loc in (("/sub", "/sub/"), ("/sub/deeper", "/sub/deeper/"),
                          ("/noindex", "/noindex/"),
                          ("/sub?a=1&b=two", "/sub/?a=1&b=two"),
                          ("/sub/deeper?x=%20y", "/sub/deeper/?x=%20y")):
            for method in ("GET", "HEAD"):
                with self.subTest(path=path, method=method):
                    r = fetch(self.port, path, method=method)
                    self.assertEqual(r.status, 301, r)
                    self.assertEqual(r.header("Location"), loc, r.headers)


# --------------------------------------------------------------------------- options

FULL_HANDLER = ('index = ["index.html"], '
                'cache = { entries = 4096, max_file_size = "256k", total = "64m", '
                'valid = "1s" }, '
                'mime = { md = "text/markdown; charset=utf-8", qqzz = "application/x-qqzz" }, '
                'etag = true, precompressed = false')


class SpecExampleConfig(unittest.TestCase):
    """Every key of the spec's example handler table, plus a `mime` entry for an extension
    the built-in table does not know."""

    def test_mime_overrides(self):
        www = {"readme.md": "# title\n", "x.qqzz": "q\n", "hello.txt": "hi\n",
               "index.html": "<p>i</p>\n"}
        with Atlas(handler_config(FULL_HANDLER), www=www) as a:
            for path, ctype in (("/readme.md", "text/markdown; charset=utf-8"),
                                ("/x.qqzz", "application/x-qqzz"),
                                ("/hello.txt", "text/plain; charset=utf-8"),
                                ("/index.html", "text/html"), ("/", "text/html")):
                with self.subTest(path=path):
                    for method in ("GET", "HEAD"):
                        r = fetch(a.port, path, method=method)
                        self.assertEqual(r.status, 200, r)
                        self.assertEqual(r.header("Content-Type"), ctype)
                        self.assertIsNotNone(r.header("ETag"), r.headers)


class NoEtag(unittest.TestCase):
    def test_etag_false(self):
        www = {"hello.txt": "hello\n", "range.bin": RANGE}
        with Atlas(handler_config("etag = false"), www=www) as a:
            set_mtimes(a.path("www"))
            for method in ("GET", "HEAD"):
                with self.subTest(method=method):
                    r = fetch(a.port, "/hello.txt", method=method)
                    self.assertEqual(r.status, 200, r)
                    self.assertIsNone(r.header("ETag"), r.headers)
                    self.assertEqual(r.header("Last-Modified"), LM)
                    self.assertEqual(r.header("Accept-Ranges"), "bytes")
            with self.subTest("If-Modified-Since still works"):
                r = fetch(a.port, "/hello.txt", headers={"If-Modified-Since": LM})
                self.assertEqual(r.status, 304, r)
                self.assertIsNone(r.header("ETag"), r.headers)
            with self.subTest("If-Range by date still works"):
                r = fetch(a.port, "/range.bin", headers=[("Range", "bytes=1-3"),
                                                         ("If-Range", LM)])
                self.assertEqual(r.status, 206, r)
                self.assertEqual(r.body, RANGE[1:4])


class CustomIndex(unittest.TestCase):
    def test_first_existing_index(self):
        www = {"both/home.txt": "home\n", "both/index.html": "<p>index</p>\n",
               "only/index.html": "<p>only</p>\n", "none/other.html": "x\n",
               "index.html": "<p>root</p>\n"}
        cfg = handler_config('index = ["missing.html", "home.txt", "index.html"]')
        with Atlas(cfg, www=www) as a:
            for path, status, body, ctype in (
                    ("/both/", 200, b"home\n", "text/plain; charset=utf-8"),
                    ("/only/", 200, b"<p>only</p>\n", "text/html"),
                    ("/", 200, b"<p>root</p>\n", "text/html"),
                    ("/none/", 403, None, None)):
                with self.subTest(path=path):
                    r = fetch(a.port, path)
                    self.assertEqual(r.status, status, r)
                    if body is not None:
                        self.assertEqual(r.body, body)
                        self.assertEqual(r.header("Content-Type"), ctype)
                    else:
                        self.assertNotIn(b"other.html", r.body)


# --------------------------------------------------------------------------- traversal

SECRET = "TOP-SECRET-%s\n" % hashlib.sha256(os.urandom(16)).hexdigest()[:24]
SECRET2 = "OTHER-SECRET-%s\n" % hashlib.sha256(os.urandom(16)).hexdigest()[:24]

# (raw request-target bytes, exact status or None for "one of 400/403/404")
# The exact ones are what the spec pins down: a path climbing above the root is a 400 from
# the core, %00 is a 400, and a double-encoded name is decoded once only (a literal, 404).
HOSTILE = [
    # plain and mixed dot segments
    (b"/../secret.txt", 400),
    (b"/../../secret.txt", 400),
    (b"/a/../../secret.txt", 400),
    (b"/pub/../../secret.txt", 400),
    (b"/./../secret.txt", 400),
    (b"//../secret.txt", 400),
    (b"/pub/./.././../secret.txt", 400),
    (b"/../outside/secret2.txt", 400),
    # encoded dots
    (b"/%2e%2e/secret.txt", 400),
    (b"/%2E%2E/secret.txt", 400),
    (b"/.%2e/secret.txt", 400),
    (b"/%2e./secret.txt", 400),
    (b"/pub/%2e%2e/%2e%2e/secret.txt", 400),
    # encoded slashes
    (b"/..%2fsecret.txt", 400),
    (b"/..%2Fsecret.txt", 400),
    (b"/%2e%2e%2fsecret.txt", 400),
    (b"/pub/..%2f..%2fsecret.txt", 400),
    (b"/%2e%2e%2f%2e%2e%2foutside%2fsecret2.txt", 400),
    # double encoding: decoded once only -> a literal name that does not exist
    (b"/%252e%252e/secret.txt", 404),
    (b"/%252e%252e%252fsecret.txt", 404),
    (b"/..%252fsecret.txt", 404),
    (b"/%252E%252E/%252E%252E/secret.txt", 404),
    # backslashes (not separators on Linux)
    (b"/..\\secret.txt", None),
    (b"/pub\\..\\..\\secret.txt", None),
    (b"/%5c..%5csecret.txt", None),
    (b"/..%5csecret.txt", None),
    (b"/%2e%2e%5csecret.txt", None),
    # NUL
    (b"/%00/../secret.txt", 400),
    (b"/secret.txt%00.html", 400),
    (b"/..%00/secret.txt", 400),
    (b"/pub/real.txt%00", 400),
    # overlong UTF-8 for '.' and '/'
    (b"/%c0%ae%c0%ae/secret.txt", None),
    (b"/%c0%ae%c0%ae%c0%afsecret.txt", None),
    (b"/..%c0%afsecret.txt", None),
    (b"/%e0%80%ae%e0%80%ae/secret.txt", None),
    (b"/%c1%9c..%c1%9csecret.txt", None),
    # ..;/ (path parameters are not a thing here)
    (b"/..;/secret.txt", None),
    (b"/pub/..;/..;/secret.txt", None),
    (b"/.;/..;/secret.txt", None),
    # odd dot runs, bad escapes
    (b"/.../secret.txt", None),
    (b"/....//secret.txt", None),
    (b"/%u002e%u002e/secret.txt", None),
    (b"/%2/secret.txt", None),
    # absolute-form targets
    (b"http://x/../../secret.txt", None),
    (b"http://localhost/%2e%2e/secret.txt", None),
    (b"http://localhost/pub/..%2f..%2fsecret.txt", None),
    # the secret is not below the root at all
    (b"/secret.txt", 404),
    (b"/outside/secret2.txt", 404),
    # symlinks inside the root pointing outside it
    (b"/link-secret", None),
    (b"/link-secret-abs", None),
    (b"/pub/deep-link", None),
    (b"/link-outdir/secret2.txt", None),
    (b"/link-outdir-abs/secret2.txt", None),
    (b"/link-outdir/", None),
    (b"/link-outdir", None),
    (b"/up/secret.txt", None),
    (b"/up/outside/secret2.txt", None),
    (b"/up/atlas.toml", None),
    (b"/up/www/pub/real.txt", None),
    (b"/link-outdir%2fsecret2.txt", None),
    (b"/%6cink-secret", None),   # %6c = 'l'
    (b"/leakdir/", None),        # its index.html is a symlink to the secret
    (b"/leakdir/index.html", None),
]


class Traversal(unittest.TestCase):
    """www/ is the root; secret.txt and outside/ sit next to it in the config dir."""

    @classmethod
    def setUpClass(cls):
        files = {"secret.txt": SECRET, "outside/secret2.txt": SECRET2,
                 "www/index.html": "<p>index</p>\n", "www/pub/real.txt": "real\n",
                 "www/%2e%2e/decoy.txt": "decoy\n", "www/leakdir/readme.txt": "r\n"}
        cls.atlas = Atlas(site_config(), files=files)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port
        p = cls.atlas.path
        links = [
            ("www/link-secret", "../secret.txt"),
            ("www/link-secret-abs", p("secret.txt")),
            ("www/pub/deep-link", "../../secret.txt"),
            ("www/link-outdir", "../outside"),
            ("www/link-outdir-abs", p("outside")),
            ("www/up", ".."),
            ("www/inside-link.txt", "pub/real.txt"),
            ("www/inside-dirlink", "pub"),
            ("www/pub/up-and-in.html", "../index.html"),
            ("www/leakdir/index.html", "../../secret.txt"),
        ]
        for name, target in links:
            os.symlink(target, p(name))

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def test_table_size(self):
        self.assertGreaterEqual(len(HOSTILE), 25)

    def test_hostile_paths(self):
        for target, exact in HOSTILE:
            with self.subTest(target=target):
                req = (b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                       b"Connection: close\r\n\r\n")
                data = raw(self.port, req, timeout=10)
                self.assertNotIn(SECRET.strip().encode(), data)
                self.assertNotIn(SECRET2.strip().encode(), data)
                r, _ = parse_response_bytes(data)
                self.assertIsNotNone(r, "no response: %r" % data[:300])
                if exact is None:
                    self.assertIn(r.status, (400, 403, 404), r)
                else:
                    self.assertEqual(r.status, exact, r)
        self.atlas.assert_alive()

    def test_double_encoding_is_a_literal_name(self):
        # www/%2e%2e/decoy.txt exists: %252e%252e decodes once to the literal "%2e%2e".
        r = fetch(self.port, "/%252e%252e/decoy.txt")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"decoy\n")

    def test_encoded_slash_decodes_to_slash(self):
        r = fetch(self.port, "/pub%2freal.txt")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"real\n")

    def test_symlinks_inside_root_served(self):
        txt = "text/plain; charset=utf-8"
        for path, body, ctype in (("/inside-link.txt", b"real\n", txt),
                                  ("/inside-dirlink/real.txt", b"real\n", txt),
                                  ("/pub/up-and-in.html", b"<p>index</p>\n", "text/html"),
                                  ("/inside-dirlink/", None, None)):
            with self.subTest(path=path):
                r = fetch(self.port, path)
                if body is None:   # a symlinked directory without index: 403, no listing
                    self.assertEqual(r.status, 403, r)
                    self.assertNotIn(b"real.txt", r.body)
                else:
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body, body)
                    self.assertEqual(r.header("Content-Type"), ctype)


# --------------------------------------------------------------------------- caching

POLL_DEADLINE = 10.0


class CacheFreshness(unittest.TestCase):
    """Files served from the small-file cache are re-validated within cache.valid
    (default 1s).  Never a timing assertion: poll with a deadline until the change shows."""

    @classmethod
    def setUpClass(cls):
        cls.www = {"same.txt": "version-one:AAAA\n", "grow.txt": "short\n",
                   "renamed.txt": "before rename\n", "gone.txt": "here today\n",
                   "big.bin": blob(b"big-old", 300000), "index.html": "<p>i</p>\n"}
        cls.atlas = Atlas(site_config(), www=cls.www)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def warm(self, path, body):
        for _ in range(3):   # served at least twice: whatever is cacheable is cached now
            r = fetch(self.port, path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, body)
        # Let the clock move past the file timestamp granularity so the rewrite below gets a
        # different mtime (a precondition of the test, not a timing assertion).
        time.sleep(0.05)

    def poll(self, path, old, new_status, new_body=None, sock=None):
        """Poll until `path` answers new_status (and new_body); every answer on the way
        must be either the old content or the new one, never a mixture.  With sock: on
        that keep-alive connection, else each on a new connection."""
        deadline = time.monotonic() + POLL_DEADLINE
        seen = []
        while True:
            if sock is None:
                r = fetch(self.port, path)
            else:
                sock.sendall(build_request("GET", path))
                r = read_response(sock)
            seen.append(r.status)
            if r.status == new_status and (new_body is None or r.body == new_body):
                return r
            self.assertTrue(r.status == 200 and r.body == old,
                            "neither old nor new content: %r %r" % (r, r.body[:80]))
            if time.monotonic() > deadline:
                self.fail("%s still served the old content after %.0fs (%d polls)"
                          % (path, POLL_DEADLINE, len(seen)))
            time.sleep(0.05)

    def test_rewrite_same_size_in_place(self):
        old, new = b"version-one:AAAA\n", b"version-two:BBBB\n"
        self.assertEqual(len(old), len(new))
        self.warm("/same.txt", old)
        with open(self.atlas.path("www", "same.txt"), "r+b") as f:
            f.write(new)
        r = self.poll("/same.txt", old, 200, new)
        self.assertEqual(r.header("Content-Length"), str(len(new)))

    def test_rewrite_seen_on_keepalive_connection(self):
        old, new = b"keep-alive one\n", b"keep-alive two\n"
        path = self.atlas.path("www", "ka.txt")
        with open(path, "wb") as f:
            f.write(old)
        with connect(self.port) as s:
            for _ in range(3):
                s.sendall(build_request("GET", "/ka.txt"))
                r = read_response(s)
                self.assertEqual((r.status, r.body), (200, old), r)
            time.sleep(0.05)
            with open(path, "r+b") as f:
                f.write(new)
            self.poll("/ka.txt", old, 200, new, sock=s)
            os.remove(path)
            self.poll("/ka.txt", new, 404, sock=s)

    def test_rewrite_different_size(self):
        old, new = b"short\n", b"a considerably longer second version\n" * 3
        self.warm("/grow.txt", old)
        with open(self.atlas.path("www", "grow.txt"), "wb") as f:
            f.write(new)
        self.poll("/grow.txt", old, 200, new)

    def test_replaced_by_rename(self):
        old, new = b"before rename\n", b"after rename!\n"
        self.warm("/renamed.txt", old)
        tmp = self.atlas.path("www", ".renamed.tmp")
        with open(tmp, "wb") as f:
            f.write(new)
        os.replace(tmp, self.atlas.path("www", "renamed.txt"))
        self.poll("/renamed.txt", old, 200, new)

    def test_deleted_becomes_404(self):
        old = b"here today\n"
        self.warm("/gone.txt", old)
        os.remove(self.atlas.path("www", "gone.txt"))
        self.poll("/gone.txt", old, 404)

    def test_large_file_rewrite(self):
        old, new = self.www["big.bin"], blob(b"big-new", 300000)
        self.warm("/big.bin", old)
        with open(self.atlas.path("www", "big.bin"), "r+b") as f:
            f.write(new)
        self.poll("/big.bin", old, 200, new)


# --------------------------------------------------------------------------- precompressed

PRE_ORIG = b"function atlas() { return 'precompressed'; }\n" * 20
PRE_BR = b"\x8b\x07BR-VARIANT-" + blob(b"br", 50)     # the server does not decode it
PRE_GZ = gzip.compress(PRE_ORIG)
CSS_ORIG = b"body { color: #123456; }\n" * 10
CSS_GZ = gzip.compress(CSS_ORIG)


class Precompressed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        www = {"app.js": PRE_ORIG, "app.js.br": PRE_BR, "app.js.gz": PRE_GZ,
               "style.css": CSS_ORIG, "style.css.gz": CSS_GZ,
               "plain.txt": "no variants\n", "index.html": "<p>i</p>\n"}
        cls.atlas = Atlas(handler_config("precompressed = true"), www=www)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def check(self, r, encoding, body, ctype, method="GET"):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Encoding"), encoding, r.headers)
        self.assertIn("accept-encoding", vary_tokens(r), r.headers)
        self.assertEqual(r.header("Content-Type"), ctype)
        self.assertEqual(r.header("Content-Length"), str(len(body)))
        if method == "GET":
            self.assertEqual(r.body, body)

    def test_negotiation(self):
        js = "application/javascript"
        cases = [
            ("br, gzip", "br", PRE_BR),
            ("gzip, br", "br", PRE_BR),
            ("gzip, deflate, br", "br", PRE_BR),
            ("br;q=0.5", "br", PRE_BR),
            ("gzip", "gzip", PRE_GZ),
            ("gzip, deflate", "gzip", PRE_GZ),
            ("br;q=0, gzip", "gzip", PRE_GZ),
            ("gzip;q=0, br;q=0", None, PRE_ORIG),
            ("deflate", None, PRE_ORIG),
            ("identity", None, PRE_ORIG),
            (None, None, PRE_ORIG),
        ]
        for ae, enc, body in cases:
            for method in ("GET", "HEAD"):
                with self.subTest(accept_encoding=ae, method=method):
                    hs = {} if ae is None else {"Accept-Encoding": ae}
                    r = fetch(self.port, "/app.js", method=method, headers=hs)
                    self.check(r, enc, body, js, method)

    def test_negotiation_keepalive(self):
        # The same negotiation on one keep-alive connection, twice over (cached answers).
        cases = [("br, gzip", "br", PRE_BR), ("gzip", "gzip", PRE_GZ),
                 (None, None, PRE_ORIG), ("gzip;q=0, br;q=0", None, PRE_ORIG),
                 ("br", "br", PRE_BR), ("identity", None, PRE_ORIG)] * 2
        reqs = [("GET", "/app.js", {} if ae is None else {"Accept-Encoding": ae})
                for ae, _, _ in cases]
        got = keepalive(self.port, reqs)
        for (ae, enc, body), r in zip(cases, got):
            with self.subTest(accept_encoding=ae):
                self.check(r, enc, body, "application/javascript")

    def test_variant_added_later(self):
        # The identity file is cached first; a .br that appears afterwards is a change on
        # disk like any other and must be picked up (poll, cache.valid is 1s).
        with open(self.atlas.path("www", "late.js"), "wb") as f:
            f.write(PRE_ORIG)
        ae = {"Accept-Encoding": "br"}
        for _ in range(3):
            r = fetch(self.port, "/late.js", headers=ae)
            self.assertEqual((r.status, r.header("Content-Encoding")), (200, None), r)
            self.assertEqual(r.body, PRE_ORIG)
        with open(self.atlas.path("www", "late.js.br"), "wb") as f:
            f.write(PRE_BR)
        deadline = time.monotonic() + POLL_DEADLINE
        while True:
            r = fetch(self.port, "/late.js", headers=ae)
            self.assertEqual(r.status, 200, r)
            if r.header("Content-Encoding") == "br":
                break
            self.assertEqual(r.body, PRE_ORIG)
            if time.monotonic() > deadline:
                self.fail("late.js.br not used %.0fs after it appeared" % POLL_DEADLINE)
            time.sleep(0.05)
        self.check(r, "br", PRE_BR, "application/javascript")

    def test_variant_symlinked_outside_root_not_served(self):
        secret = "PRECOMPRESSED-SECRET-%s" % os.urandom(8).hex()
        with open(self.atlas.path("secret.br"), "w") as f:
            f.write(secret)
        with open(self.atlas.path("www", "leak.js"), "wb") as f:
            f.write(PRE_ORIG)
        os.symlink("../secret.br", self.atlas.path("www", "leak.js.br"))
        os.symlink(self.atlas.path("secret.br"), self.atlas.path("www", "leak.js.gz"))
        for ae in ("br", "gzip", "br, gzip"):
            with self.subTest(accept_encoding=ae):
                data = raw(self.port, build_request("GET", "/leak.js", headers=[
                    ("Accept-Encoding", ae), ("Connection", "close")]), timeout=10)
                self.assertNotIn(secret.encode(), data)
                r, _ = parse_response_bytes(data)
                self.assertIsNotNone(r, data[:300])
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.header("Content-Encoding"), r.headers)
                self.assertEqual(r.body, PRE_ORIG)

    def test_gzip_body_is_the_file(self):
        r = fetch(self.port, "/app.js", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.header("Content-Encoding"), "gzip", r.headers)
        self.assertEqual(gzip.decompress(r.body), PRE_ORIG)

    def test_only_gzip_variant(self):
        for ae, enc, body in (("br, gzip", "gzip", CSS_GZ), ("br", None, CSS_ORIG),
                              (None, None, CSS_ORIG)):
            with self.subTest(accept_encoding=ae):
                hs = {} if ae is None else {"Accept-Encoding": ae}
                r = fetch(self.port, "/style.css", headers=hs)
                self.check(r, enc, body, "text/css")

    def test_no_variants(self):
        r = fetch(self.port, "/plain.txt", headers={"Accept-Encoding": "br, gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Content-Encoding"), r.headers)
        self.assertEqual(r.body, b"no variants\n")

    def test_range_gets_identity(self):
        for ae in ("br, gzip", "gzip"):
            with self.subTest(accept_encoding=ae):
                r = fetch(self.port, "/app.js", headers=[("Accept-Encoding", ae),
                                                         ("Range", "bytes=5-24")])
                self.assertEqual(r.status, 206, r)
                self.assertIsNone(r.header("Content-Encoding"), r.headers)
                self.assertEqual(r.header("Content-Range"), "bytes 5-24/%d" % len(PRE_ORIG))
                self.assertEqual(r.body, PRE_ORIG[5:25])
                self.assertIn("accept-encoding", vary_tokens(r), r.headers)


# --------------------------------------------------------------------------- big file

GIB = 1 << 30
# How much the peak RSS may grow over a 1 GiB download (buffering it would grow it by
# about that much). Growth, not the peak itself: an ASan build starts at ~64 MiB (its
# binary alone is ~35 MiB resident), and that grows with the code, not with the download.
VMHWM_GROWTH_LIMIT = 32 * 1024 * 1024


def sha256_file(path):
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.hexdigest()


class BigFile(unittest.TestCase):
    """A sparse 1 GiB file (a few real 64 KiB blocks) through one GET: a few seconds on
    loopback.  Disk use stays at a few hundred KiB."""

    def test_1gib_streamed_not_buffered(self):
        with Atlas(site_config(), www={"index.html": "x"}) as a:
            path = a.path("www", "huge.bin")
            with open(path, "wb") as f:
                f.truncate(GIB)
                for off in (0, 4096 * 1000 + 17, GIB // 2 - 3, GIB - 65536):
                    f.seek(off)
                    f.write(os.urandom(65536))
            self.assertEqual(os.path.getsize(path), GIB)
            want = sha256_file(path)
            before = vm_hwm(a.pid)

            deadline = time.monotonic() + 240
            with connect(a.port, timeout=60) as s:
                s.sendall(build_request("GET", "/huge.bin", headers=[("Connection", "close")]))
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "closed before the response head: %r" % head)
                    head += chunk
                head, _, first = head.partition(b"\r\n\r\n")
                r, _ = parse_response_bytes(head + b"\r\n\r\n", head=True)
                self.assertIsNotNone(r, head)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Content-Length"), str(GIB))
                self.assertIsNone(r.header("Content-Encoding"))
                h = hashlib.sha256(first)
                got = len(first)
                buf = bytearray(1 << 20)
                mv = memoryview(buf)
                while got < GIB:
                    if time.monotonic() > deadline:
                        self.fail("download too slow: %d of %d bytes" % (got, GIB))
                    n = s.recv_into(buf)
                    if n == 0:
                        break
                    h.update(mv[:n])
                    got += n
                self.assertEqual(got, GIB, "body length")
            self.assertEqual(h.hexdigest(), want)
            a.assert_alive()
            hwm = vm_hwm(a.pid)
            self.assertLess(hwm - before, VMHWM_GROWTH_LIMIT, "atlasd VmHWM %.1f MiB after a 1 GiB download, "
                            "%.1f MiB before" % (hwm / 1048576.0, before / 1048576.0))


# --------------------------------------------------------------------------- seed example


class SeedExample(unittest.TestCase):
    def test_seed_static_example_unchanged(self):
        src = os.path.join(REPO, "configs", "examples", "static-files")
        tmp = tempfile.mkdtemp(prefix="atlas-seed-")
        try:
            dst = os.path.join(tmp, "static-files")
            shutil.copytree(src, dst)
            port = free_port()
            conf = os.path.join(dst, "atlas.toml")
            with open(conf) as f:
                text = f.read()
            new, n = re.subn(r"(?m)^port = 8080$", "port = %d" % port, text)
            self.assertEqual(n, 1, "the example no longer has `port = 8080`:\n" + text)
            with open(conf, "w") as f:
                f.write(new)
            with open(os.path.join(src, "public", "index.html"), "rb") as f:
                index = f.read()
            with Atlas(config_dir=dst, port=port) as a:
                r = fetch(a.port, "/")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.media_type(), "text/html", r.headers)
                self.assertEqual(r.body, index)
                r = fetch(a.port, "/index.html")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, index)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- atlasd -t

BAD_HANDLER_KEYS = [
    ("cache = { entries = -1 }", "cache.entries"),
    ('cache = { entries = "many" }', "cache.entries"),
    ('cache = { max_file_size = "12q" }', "cache.max_file_size"),
    ("cache = { total = -5 }", "cache.total"),
    ('cache = { valid = "soon" }', "cache.valid"),
    ("cache = { bogus = 1 }", "cache.bogus"),
    ('cache = "big"', "cache"),
    ("mime = { md = 5 }", "mime.md"),
    ('mime = "text/plain"', "mime"),
    ('etag = "yes"', "etag"),
    ("precompressed = 1", "precompressed"),
    ('index = "index.html"', "index"),
    ('colour = "blue"', "colour"),
]


class ConfigCheck(unittest.TestCase):
    def test_spec_example_config_ok(self):
        rc, out, err = run_check(handler_config(FULL_HANDLER), files={"www/index.html": "x"})
        self.assertEqual(rc, 0, "stdout: %s\nstderr: %s" % (out, err))

    def test_bad_handler_keys(self):
        for extra, key in BAD_HANDLER_KEYS:
            with self.subTest(extra=extra):
                rc, out, err = run_check(handler_config(extra), files={"www/index.html": "x"})
                self.assertEqual(rc, 1, "stdout: %s\nstderr: %s" % (out, err))
                lines = [l for l in err.splitlines() if l.strip()]
                self.assertTrue(lines and all(l.startswith("atlasd: ") for l in lines), err)
                self.assertTrue(any(re.search(r"(?<!\w)%s(?!\w)" % re.escape(key), l)
                                    for l in lines),
                                "no error line names %s:\n%s" % (key, err))


if __name__ == "__main__":
    unittest.main()


class WithCurl(unittest.TestCase):
    """The same behaviours through a real client: curl's own range, conditional and
    compression handling against the server."""

    @classmethod
    def setUpClass(cls):
        www = {k: v for k, v in WWW.items() if k != "pre.js.br"}  # a real gzip only
        www.update({"pre.js": PRE_ORIG, "pre.js.gz": PRE_GZ})
        cls.atlas = Atlas(handler_config("precompressed = true"), www=www)
        cls.atlas.__enter__()
        cls.base = "http://127.0.0.1:%d" % cls.atlas.port
        set_mtimes(cls.atlas.path("www"))

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def curl(self, *args):
        import subprocess
        p = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return p.stdout

    def test_range_download(self):
        body = self.curl("-r", "100-199", self.base + "/range.bin")
        self.assertEqual(body, RANGE[100:200])

    def test_conditional_time(self):
        # -z DATE sends If-Modified-Since; the file is older, so curl gets 304 and no body.
        code = self.curl("-z", httpdate(MTIME + DAY), "-o", "/dev/null", "-w", "%{http_code}",
                         self.base + "/hello.txt")
        self.assertEqual(code, b"304")
        body = self.curl("-z", httpdate(MTIME - DAY), self.base + "/hello.txt")
        self.assertEqual(body, b"hello, static\n")

    def test_compressed_variant_is_decoded_by_curl(self):
        head = self.curl("--compressed", "-D", "-", "-o", "/dev/null", self.base + "/pre.js")
        self.assertIn(b"content-encoding: gzip", head.lower())
        self.assertEqual(self.curl("--compressed", self.base + "/pre.js"), PRE_ORIG)

    def test_large_file_intact(self):
        body = self.curl(self.base + "/large.bin")
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(LARGE).hexdigest())
