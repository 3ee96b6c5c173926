"""Access logs per listener: nginx's combined format and JSON, field by field, to a file
or stderr; the client as the trusted-proxy rules resolve it; 499 for a client that left;
SIGUSR1 reopening the file after logrotate moved it; requests the codec rejects; off by
default."""

import json
import os
import re
import signal
import socket
import threading
import time
import unittest

from backend import Backend
from harness import Atlas, build_request, connect, read_response, request, run_check
from tcp_peer import TcpServer

LINE_WAIT = 15  # seconds: lines reach the file on the workers' 1 s sweep

COMBINED = re.compile(r'^(?P<client>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" '
                      r'"(?P<agent>[^"]*)"$')


def config(access_log, handler='{ module = "static", root = "www" }', workers=1, extra="", upstream=""):
    return ('[server]\nworkers = %d\n%s\n[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
            'access_log = %s\n%s\n  [[listener.route]]\n  path_prefix = "/"\n  handler = %s\n'
            % (workers, upstream, access_log, extra, handler))


def wait_lines(path, n, timeout=LINE_WAIT):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="latin-1") as f:
                lines = f.read().splitlines()
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    raise AssertionError("%s has %d lines, expected %d: %r" % (path, len(lines), n, lines))


WWW = {"index.html": "hello\n", "a.txt": "0123456789"}


class Combined(unittest.TestCase):
    def test_fields(self):
        with Atlas(config('"logs/access.log"'), www=WWW, files={"logs/.keep": ""}) as a:
            r = request(a.port, path="/a.txt?x=1&y=%22", headers=[("Referer", "http://ref.example/p"),
                                                                  ("User-Agent", 'agent "quoted" \\ x')])
            self.assertEqual(r.status, 200)
            self.assertEqual(request(a.port, "HEAD", "/missing").status, 404)
            lines = wait_lines(os.path.join(a.dir, "logs", "access.log"), 2)
        m = [COMBINED.match(line) for line in lines]
        self.assertTrue(all(m), lines)
        first, second = m
        self.assertEqual(first["client"], "127.0.0.1")
        self.assertEqual(first["request"], "GET /a.txt?x=1&y=%22 HTTP/1.1")
        self.assertEqual((first["status"], first["bytes"]), ("200", "10"))
        self.assertEqual(first["referer"], "http://ref.example/p")
        # Quotes and backslashes escaped as nginx does: a client cannot add fields.
        self.assertEqual(first["agent"], r"agent \x22quoted\x22 \x5c x")
        self.assertEqual((second["request"], second["status"], second["bytes"]), ("HEAD /missing HTTP/1.1", "404", "0"))
        self.assertEqual((second["referer"], second["agent"]), ("-", "-"))
        t = time.strptime(first["time"], "%d/%b/%Y:%H:%M:%S +0000")
        self.assertLess(abs(time.mktime(t) - time.mktime(time.gmtime())), 300)

    def test_control_bytes_cannot_break_the_line(self):
        with Atlas(config('"access.log"'), www=WWW) as a:
            request(a.port, path="/index.html", headers=[("User-Agent", "a\tb\u00ffd")])
            lines = wait_lines(os.path.join(a.dir, "access.log"), 1)
        self.assertEqual(len(lines), 1)
        self.assertEqual(COMBINED.match(lines[0])["agent"], r"a\x09b\xc3\xbfd")

    def test_requests_the_codec_rejects(self):
        with Atlas(config('"access.log"'), www=WWW) as a:
            with connect(a.port) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                r = read_response(s)
            self.assertEqual(r.status, 400)
            lines = wait_lines(os.path.join(a.dir, "access.log"), 1)
        m = COMBINED.match(lines[0])
        self.assertTrue(m, lines)
        self.assertEqual((m["request"], m["status"], m["bytes"]), ("-", "400", str(len(r.body))))

    def test_two_workers_never_interleave_lines(self):
        with Atlas(config('"access.log"', workers=2), www=WWW) as a:
            def load():
                for _ in range(100):
                    request(a.port, path="/index.html", headers=[("User-Agent", "x" * 3000)])
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            lines = wait_lines(os.path.join(a.dir, "access.log"), 400)
        self.assertEqual(len(lines), 400)
        self.assertTrue(all(COMBINED.match(line) for line in lines))

    def test_sigusr1_reopens_after_a_move(self):
        with Atlas(config('"access.log"', workers=2), www=WWW) as a:
            path = os.path.join(a.dir, "access.log")
            request(a.port, path="/index.html")
            wait_lines(path, 1)
            os.rename(path, path + ".1")  # what logrotate does
            a.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + LINE_WAIT
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(os.path.exists(path), "SIGUSR1 did not create a new file")
            request(a.port, path="/a.txt")
            lines = wait_lines(path, 1)
            self.assertIn('"GET /a.txt HTTP/1.1" 200 10', lines[0])
            with open(path + ".1") as f:
                old = f.read().splitlines()
            self.assertEqual(len(old), 1)
            self.assertIn('"GET /index.html HTTP/1.1"', old[0])


class Json(unittest.TestCase):
    def test_fields_of_a_proxied_request_behind_a_trusted_proxy(self):
        with Backend("b1") as b, Atlas(config('{ path = "access.json", format = "json" }',
                                              handler='{ module = "proxy", upstream = "api" }',
                                              extra='trusted_proxies = ["127.0.0.0/8"]',
                                              upstream='[upstream.api]\nservers = ["%s"]\n' % b.address)) as a:
            r = request(a.port, "POST", "/echo?k=v", body=b"12345", host="shop.example",
                        headers=[("X-Forwarded-For", "203.0.113.7"), ("User-Agent", "ua\u00e9")])
            self.assertEqual(r.status, 200)
            lines = wait_lines(os.path.join(a.dir, "access.json"), 1)
        e = json.loads(lines[0])
        self.assertEqual(set(e), {"time", "client", "method", "target", "protocol", "host", "status", "bytes",
                                  "duration_ms", "referer", "user_agent", "upstream"})
        self.assertEqual(e["client"], "203.0.113.7")  # the one client identity, not the peer
        self.assertEqual((e["method"], e["target"], e["protocol"]), ("POST", "/echo?k=v", "HTTP/1.1"))
        self.assertEqual((e["host"], e["status"], e["bytes"]), ("shop.example", 200, len(r.body)))
        self.assertEqual(e["upstream"], b.address)
        self.assertEqual((e["referer"], e["user_agent"]), ("", "ua\u00c3\u00a9"))  # UTF-8 bytes, each as \u00HH
        self.assertIsInstance(e["duration_ms"], int)
        self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_client_that_leaves_is_499(self):
        with Backend("b1") as b, Atlas(config('{ path = "access.json", format = "json" }',
                                              handler='{ module = "proxy", upstream = "api" }',
                                              upstream='[upstream.api]\nservers = ["%s"]\n' % b.address)) as a:
            s = connect(a.port)
            s.sendall(build_request("GET", "/sleep/3000"))
            deadline = time.monotonic() + 10
            while not b.seen and time.monotonic() < deadline:
                time.sleep(0.01)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # a reset: gone for good (a FIN alone may be a half-close)
            lines = wait_lines(os.path.join(a.dir, "access.json"), 1)
        e = json.loads(lines[0])
        self.assertEqual((e["target"], e["status"], e["bytes"]), ("/sleep/3000", 499, 0))

    def test_client_that_resets_during_a_held_back_upload_is_499_at_once(self):
        """The upstream reads none of the body, so atlasd stops reading the client's; the
        client then resets. That is noticed while reading is paused: the line comes now,
        not when the upstream answers (it would only after the test, or 60 s)."""
        with Backend("b1") as b, Atlas(config('{ path = "access.json", format = "json" }',
                                              handler='{ module = "proxy", upstream = "api" }',
                                              upstream='[upstream.api]\nservers = ["%s"]\n' % b.address)) as a:
            try:
                s = connect(a.port)
                s.sendall(build_request("POST", "/hold", headers=[("Content-Length", str(1 << 30))]))
                s.settimeout(0.5)
                sent = 0
                try:
                    while sent < (256 << 20):  # until atlasd stops taking more
                        sent += s.send(b"u" * (1 << 20))
                except socket.timeout:
                    pass
                self.assertLess(sent, 256 << 20, "atlasd never stopped reading the body")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()  # a reset
                lines = wait_lines(os.path.join(a.dir, "access.json"), 1)
            finally:
                b.release()
        e = json.loads(lines[0])
        self.assertEqual((e["method"], e["target"], e["status"]), ("POST", "/hold", 499))

    def test_upstream_that_resets_during_a_held_back_download_is_logged_at_once(self):
        """The client reads none of a big response, so atlasd stops reading the upstream's;
        the upstream then resets. That is noticed while reading is paused: the exchange
        ends and its line comes now, not when the client reads again (it never does)."""
        stalled = threading.Event()

        def upstream(sock, rec):
            while b"\r\n\r\n" not in rec.received:
                d = sock.recv(65536)
                if not d:
                    return
                rec.received += d
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
            sock.settimeout(0.5)
            try:
                while True:  # until atlasd stops taking more
                    sock.send(b"d" * (1 << 20))
            except socket.timeout:
                pass
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            stalled.set()  # the handler's return closes it: a reset

        with TcpServer(upstream) as u, Atlas(config('{ path = "access.json", format = "json" }',
                                                    handler='{ module = "proxy", upstream = "api" }',
                                                    upstream='[upstream.api]\nservers = ["%s"]\n' % u.address)) as a:
            s = connect(a.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            try:
                s.sendall(build_request("GET", "/big"))
                self.assertTrue(stalled.wait(60), "atlasd never stopped reading the response")
                lines = wait_lines(os.path.join(a.dir, "access.json"), 1)
                got = 0  # what was queued, then the end (a FIN, or a reset: the response is cut)
                s.settimeout(30)
                try:
                    while d := s.recv(1 << 20):
                        got += len(d)
                except ConnectionResetError:
                    pass
            finally:
                s.close()
        e = json.loads(lines[0])
        self.assertEqual((e["target"], e["status"]), ("/big", 200))
        self.assertLess(got, 1 << 40)

    def test_rejected_request_has_empty_request_fields(self):
        with Atlas(config('{ path = "access.json", format = "json" }'), www=WWW) as a:
            with connect(a.port) as s:
                s.sendall(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
                status = read_response(s).status
            lines = wait_lines(os.path.join(a.dir, "access.json"), 1)
        e = json.loads(lines[0])
        self.assertEqual((e["method"], e["target"], e["protocol"], e["status"]), ("", "", "", status))
        self.assertEqual(e["client"], "127.0.0.1")

    def test_stderr(self):
        with Atlas(config('{ path = "stderr", format = "json" }'), www=WWW) as a:
            request(a.port, path="/index.html")
            deadline = time.monotonic() + LINE_WAIT
            while '"target":"/index.html"' not in a.stderr_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            lines = [l for l in a.stderr_text().splitlines() if l.startswith("{")]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(json.loads(lines[0])["status"], 200)


class Settings(unittest.TestCase):
    def test_off_by_default_and_when_said(self):
        for setting in ("", 'access_log = "off"'):
            with self.subTest(setting=setting):
                text = config('"x"').replace('access_log = "x"', setting)
                with Atlas(text, www=WWW) as a:
                    self.assertEqual(request(a.port, path="/index.html").status, 200)
                    listed = sorted(os.listdir(a.dir))
                self.assertEqual(listed, ["atlas.toml", "www"])

    def test_errors_name_the_key(self):
        for value, needle in (('"/nonexistent-dir/a.log"', "listener.web.access_log: cannot open"),
                              ('{ path = "a.log", format = "xml" }', "listener.web.access_log.format"),
                              ('{ format = "json" }', "listener.web.access_log.path"),
                              ('{ path = "a.log", level = 1 }', "listener.web.access_log.level"),
                              ("3", "listener.web.access_log")):
            with self.subTest(value=value):
                rc, out, err = run_check({"atlas.toml": config(value)})
                self.assertEqual(rc, 1, err)
                self.assertIn(needle, err)


if __name__ == "__main__":
    unittest.main()
