"""The default site and the basics of mod_static: status, body, Content-Length,
Content-Type by extension, 404, HEAD, Date/Server headers, `atlasd -v`."""

import datetime
import email.utils
import hashlib
import os
import re
import subprocess
import unittest

from harness import (Atlas, REPO, connect, get, port_is_free, read_response,
                     read_until_close, run_bin, site_config, wait_closed)

BINARY = bytes(range(256)) * 8
BIG = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)   # ~3 MiB

WWW = {
    "index.html": "<!doctype html><title>atlas</title><p>home</p>\n",
    "hello.txt": "hello, world\n",
    "data.json": '{"ok": true, "n": 42}\n',
    "style.css": "body { color: #333; }\n",
    "app.js": "console.log('atlas');\n",
    "pixel.png": b"\x89PNG\r\n\x1a\n" + BINARY[:200],
    "blob.bin": BINARY,
    "noext": "no extension here\n",
    "empty.txt": "",
    "hello world.txt": "spaces in the name\n",
    "sub/index.html": "<p>sub index</p>\n",
    "sub/deeper/page.html": "<p>deep page</p>\n",
    "big.bin": BIG,
}

TYPES = [
    ("/index.html", "text/html"),
    ("/hello.txt", "text/plain"),
    ("/data.json", "application/json"),
    ("/style.css", "text/css"),
    ("/app.js", "application/javascript"),
    ("/pixel.png", "image/png"),
    ("/blob.bin", "application/octet-stream"),
    ("/noext", "application/octet-stream"),
    ("/sub/deeper/page.html", "text/html"),
]


def as_bytes(v):
    return v.encode() if isinstance(v, str) else v


class DefaultSite(unittest.TestCase):
    """`atlasd -c <repo>/configs` serves the embedded default site on 127.0.0.1:8080, and
    its admin API on 127.0.0.1:9901."""

    def test_default_config_serves_html_via_curl(self):
        if not port_is_free(8080) or not port_is_free(9901):
            self.skipTest("127.0.0.1:8080 or :9901 is busy; the default config listens there")
        configs = os.path.join(REPO, "configs")
        with Atlas(config_dir=configs, port=8080):
            p = subprocess.run(["curl", "-si", "--max-time", "30",
                                "http://127.0.0.1:8080/"],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            out = p.stdout.decode("latin-1")
            head = out.split("\r\n\r\n", 1)[0]
            first = head.split("\r\n", 1)[0]
            self.assertRegex(first, r"^HTTP/1\.1 200\b", out[:2000])
            ctype = [l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:]
                     if l.lower().startswith("content-type:")]
            self.assertEqual(len(ctype), 1, head)
            self.assertEqual(ctype[0].split(";")[0].strip().lower(), "text/html", head)
            p = subprocess.run(["curl", "-s", "--max-time", "30", "http://127.0.0.1:9901/status"],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0)
            self.assertIn(b'"active_backends"', p.stdout)


class StaticSite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(site_config(), www=WWW)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def test_index_for_root(self):
        r = get(self.port, "/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["index.html"]))
        self.assertEqual(r.media_type(), "text/html")
        self.assertEqual(int(r.header("Content-Length")), len(r.body))

    def test_index_for_subdirectory(self):
        r = get(self.port, "/sub/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["sub/index.html"]))
        self.assertEqual(r.media_type(), "text/html")

    def test_content_types_bodies_and_lengths(self):
        for path, ctype in TYPES:
            with self.subTest(path=path):
                r = get(self.port, path)
                self.assertEqual(r.status, 200, r)
                want = as_bytes(WWW[path.lstrip("/")])
                self.assertEqual(r.body, want)
                self.assertEqual(r.header("Content-Length"), str(len(want)))
                self.assertEqual(r.media_type(), ctype, r.header("Content-Type"))
                self.assertIsNone(r.header("Transfer-Encoding"))

    def test_empty_file(self):
        r = get(self.port, "/empty.txt")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), "0")
        self.assertEqual(r.body, b"")

    def test_percent_encoded_name(self):
        r = get(self.port, "/hello%20world.txt")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["hello world.txt"]))

    def test_large_file_intact(self):
        # Larger than any small-file cache: goes the sendfile/splice way.
        r = get(self.port, "/big.bin", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), str(len(BIG)))
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(BIG).hexdigest())

    def test_query_string_ignored_for_file_lookup(self):
        r = get(self.port, "/hello.txt?x=1&y=2")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, as_bytes(WWW["hello.txt"]))

    def test_missing_is_404(self):
        for path in ("/nope.html", "/sub/nope.txt", "/nodir/", "/nodir/x.txt"):
            with self.subTest(path=path):
                r = get(self.port, path)
                self.assertEqual(r.status, 404, r)

    def test_404_keeps_connection_usable(self):
        with connect(self.port) as s:
            s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            r1 = read_response(s)
            r2 = read_response(s)
        self.assertEqual(r1.status, 404, r1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.body, as_bytes(WWW["hello.txt"]))

    def test_head_has_headers_and_no_body(self):
        # HEAD then GET pipelined: if HEAD carried a body the GET response would be garbled.
        with connect(self.port) as s:
            s.sendall(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /data.json HTTP/1.1\r\nHost: x\r\n\r\n")
            h = read_response(s, head=True)
            g = read_response(s)
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.header("Content-Length"), str(len(WWW["hello.txt"])))
        self.assertEqual(h.media_type(), "text/plain")
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.body, as_bytes(WWW["data.json"]))

    def test_head_with_close_sends_nothing_after_head(self):
        with connect(self.port) as s:
            s.sendall(b"HEAD /blob.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_close(s, timeout=10)
        head, sep, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(sep, data[:500])
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertIn(b"content-length: %d" % len(BINARY), head.lower())
        self.assertEqual(rest, b"")

    def test_date_and_server_headers(self):
        for path in ("/", "/hello.txt", "/nope"):
            with self.subTest(path=path):
                r = get(self.port, path)
                self.assertEqual(r.header("Server"), "atlas", r.headers)
                date = r.header("Date")
                self.assertIsNotNone(date, r.headers)
                # IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
                self.assertRegex(date, r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                                       r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                                       r"\d{4} \d\d:\d\d:\d\d GMT$")
                when = email.utils.parsedate_to_datetime(date)
                now = datetime.datetime.now(datetime.timezone.utc)
                # a sanity bound on the clock, not a timing assertion
                self.assertLess(abs((now - when).total_seconds()), 3600, date)
                self.assertEqual(len(r.header_all("Date")), 1)
                self.assertEqual(len(r.header_all("Server")), 1)

    def test_keep_alive_by_default(self):
        with connect(self.port) as s:
            for _ in range(3):
                s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                r = read_response(s)
                self.assertEqual(r.status, 200, r)
                self.assertFalse(r.closes(), r.headers)

    def test_connection_close_response(self):
        with connect(self.port) as s:
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = read_response(s)
            closed, extra = wait_closed(s, timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(closed)
        self.assertEqual(extra, b"")


class Version(unittest.TestCase):
    def test_version_output(self):
        rc, out, err = run_bin(["-v"])
        self.assertEqual(rc, 0, err)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 1, out)
        with open(os.path.join(REPO, "module-api", "include", "atlas", "module.h")) as f:
            header = f.read()
        abi = "%s.%s" % (re.search(r"#define ATLAS_ABI_MAJOR (\d+)u", header).group(1),
                         re.search(r"#define ATLAS_ABI_MINOR (\d+)u", header).group(1))
        m = re.match(r"^atlasd (\S+) \(module ABI %s\)$" % re.escape(abi), lines[0])
        self.assertIsNotNone(m, lines[0])
        with open(os.path.join(REPO, "meson.build")) as f:
            pv = re.search(r"version:\s*'([^']+)'", f.read())
        if pv:
            self.assertEqual(m.group(1), pv.group(1), "atlasd -v vs meson project version")


if __name__ == "__main__":
    unittest.main()
