"""Hostile and malformed requests get a precise status, the connection is closed after
every codec error, and the server keeps serving (DESIGN section 7).

Every case runs on a fresh connection: send the raw bytes, read one response, check the
status is the expected one, check `Connection: close` and that the server then closes
without sending anything else (so no smuggled second request is ever answered), and
finally check that a fresh connection with a valid request still gets 200.
"""

import select
import socket
import time
import unittest

from harness import (Atlas, GOOD_REQUEST, connect, read_response, site_config,
                     wait_closed)

WWW = {"index.html": "<p>index</p>\n", "a.txt": "aaa\n"}

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def req(line, *headers, body=b""):
    """Request bytes from a request line and header lines (CRLF added)."""
    if isinstance(line, str):
        line = line.encode("latin-1")
    out = line + b"\r\n"
    for h in headers:
        if isinstance(h, str):
            h = h.encode("latin-1")
        out += h + b"\r\n"
    return out + b"\r\n" + body


H = "Host: x"
BAD = {400}

# A TLS 1.2 ClientHello record (what a browser sends to https:// on a plain port).
CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "00" + "0020" +
    "c02bc02fc02cc030cca9cca8c013c014009c009d002f0035000a" + "00" * 6 +
    "0100" + "0058" + "0000000e000c0000096c6f63616c686f7374" +
    "000b000403000102000a000a0008001d001700180019" + "000d0018001604030503060308040805080604010501060102030201" +
    "0023000000170000ff01000100")

GARBAGE = bytes((i * 73 + 41) % 256 for i in range(600))

# (name, request bytes, accepted statuses, codec_error)
# codec_error: the response comes from the HTTP codec, so it must carry
# `Connection: close` and the server must close the connection afterwards.
CASES = [
    # --- request smuggling shapes -----------------------------------------------------
    ("CL + TE", req("POST / HTTP/1.1", H, "Content-Length: 4", "Transfer-Encoding: chunked",
                    body=b"0\r\n\r\n" + SMUGGLED), BAD, True),
    ("TE + CL", req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked", "Content-Length: 4",
                    body=b"0\r\n\r\n" + SMUGGLED), BAD, True),
    ("duplicate differing CL", req("POST / HTTP/1.1", H, "Content-Length: 3",
                                   "Content-Length: 4", body=b"abcd"), BAD, True),
    ("CL list differing", req("POST / HTTP/1.1", H, "Content-Length: 3, 4", body=b"abcd"),
     BAD, True),
    ("chunk size zz", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                          body=b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED), BAD, True),
    ("chunk size overflow", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                body=b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
     BAD, True),
    ("chunk data not followed by CRLF", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                            body=b"5\r\nhelloXX\r\n0\r\n\r\n" + SMUGGLED),
     BAD, True),
    ("bare LF after chunk size", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                     body=b"5\nhello\r\n0\r\n\r\n" + SMUGGLED), BAD, True),
    ("negative chunk size", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                body=b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), BAD, True),
    ("chunk size with 0x prefix", req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                      body=b"0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), BAD, True),
    ("TE in HTTP/1.0", req("POST / HTTP/1.0", H, "Transfer-Encoding: chunked",
                           body=b"0\r\n\r\n"), BAD, True),
    ("TE chunked, gzip (non-chunked final coding)",
     req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
     BAD, True),
    ("TE chunked, chunked", req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked, chunked",
                                body=b"0\r\n\r\n"), BAD, True),
    ("TE chunked in two fields", req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked",
                                     "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     BAD, True),
    ("TE gzip, chunked", req("POST / HTTP/1.1", H, "Transfer-Encoding: gzip, chunked",
                             body=b"0\r\n\r\n"), {501}, True),
    # An unknown coding: RFC 9112 says 501; a strict codec may call it malformed.
    ("TE unknown coding", req("POST / HTTP/1.1", H, "Transfer-Encoding: foo",
                              body=b"0\r\n\r\n"), {400, 501}, True),
    # --- head syntax --------------------------------------------------------------
    ("obs-fold", req("GET / HTTP/1.1", H, "X-A: a", " b"), BAD, True),
    ("obs-fold with tab", req("GET / HTTP/1.1", H, "X-A: a", "\tb"), BAD, True),
    ("whitespace before first header", req("GET / HTTP/1.1", " " + H), BAD, True),
    ("bare CR in field value", req("GET / HTTP/1.1", H, "X-A: a\rb"), BAD, True),
    ("bare LF ending a field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\n\r\n", BAD, True),
    ("bare LF ending request line", b"GET / HTTP/1.1\nHost: x\r\n\r\n", BAD, True),
    ("bare CR ending request line", b"GET / HTTP/1.1\rHost: x\r\n\r\n", BAD, True),
    ("NUL in field value", req("GET / HTTP/1.1", H, "X-A: a\x00b"), BAD, True),
    ("CTL 0x01 in field value", req("GET / HTTP/1.1", H, "X-A: a\x01b"), BAD, True),
    ("DEL in field value", req("GET / HTTP/1.1", H, "X-A: a\x7fb"), BAD, True),
    ("NUL in field name", req("GET / HTTP/1.1", H, "X-\x00A: b"), BAD, True),
    ("space before colon (Host)", req("GET / HTTP/1.1", "Host : x"), BAD, True),
    ("space before colon (other)", req("GET / HTTP/1.1", H, "X-A : b"), BAD, True),
    ("header name with non-token char", req("GET / HTTP/1.1", H, "Bad[Name]: v"), BAD, True),
    ("empty header name", req("GET / HTTP/1.1", H, ": v"), BAD, True),
    ("header line without colon", req("GET / HTTP/1.1", H, "NoColonHere"), BAD, True),
    # --- Host ---------------------------------------------------------------------
    ("missing Host on HTTP/1.1", req("GET / HTTP/1.1", "Accept: */*"), BAD, True),
    ("duplicate Host differing", req("GET / HTTP/1.1", "Host: a", "Host: b"), BAD, True),
    ("duplicate Host identical", req("GET / HTTP/1.1", H, H), BAD, True),
    ("invalid Host with space", req("GET / HTTP/1.1", "Host: a b"), BAD, True),
    ("invalid Host with slash", req("GET / HTTP/1.1", "Host: a/b"), BAD, True),
    ("invalid Host port", req("GET / HTTP/1.1", "Host: x:abc"), BAD, True),
    ("invalid Host with userinfo", req("GET / HTTP/1.1", "Host: user@x"), BAD, True),
    # --- request line ------------------------------------------------------------
    ("lowercase version", req("GET / http/1.1", H), BAD, True),
    ("version HTTP/1.1x", req("GET / HTTP/1.1x", H), BAD, True),
    ("missing SP after method", req("GET/ HTTP/1.1", H), BAD, True),
    # "GET /HTTP/1.1" has no version at all; a codec may read it as malformed (400) or
    # as an HTTP/0.9 simple request it refuses (505). Either refuses it safely.
    ("missing SP before version", req("GET /HTTP/1.1", H), {400, 505}, True),
    ("no version (HTTP/0.9 simple request)", b"GET /\r\n\r\n", {400, 505}, True),
    ("double SP", req("GET  / HTTP/1.1", H), BAD, True),
    ("tab instead of SP", req("GET\t/ HTTP/1.1", H), BAD, True),
    ("leading SP (empty method)", req(" GET / HTTP/1.1", H), BAD, True),
    ("method with non-token char", req("G(T / HTTP/1.1", H), BAD, True),
    ("CTL in target", req("GET /a\x01b HTTP/1.1", H), BAD, True),
    ("DEL in target", req("GET /a\x7fb HTTP/1.1", H), BAD, True),
    ("space in target", req("GET /a b HTTP/1.1", H), BAD, True),
    ("fragment in target", req("GET /index.html#frag HTTP/1.1", H), BAD, True),
    ("target without leading slash", req("GET index.html HTTP/1.1", H), BAD, True),
    ("absolute-form with bad scheme", req("GET ftp://x/ HTTP/1.1", H), BAD, True),
    ("asterisk-form with GET", req("GET * HTTP/1.1", H), BAD, True),
    ("HTTP/2.0", req("GET / HTTP/2.0", H), {505}, True),
    ("HTTP/0.9", req("GET / HTTP/0.9", H), {505}, True),
    ("HTTP/3.0", req("GET / HTTP/3.0", H), {505}, True),
    # --- path decoding / root escape ---------------------------------------------
    ("%00 in path", req("GET /a%00.txt HTTP/1.1", H), BAD, True),
    ("bad escape %zz", req("GET /a%zz.txt HTTP/1.1", H), BAD, True),
    ("truncated escape", req("GET /a.txt%4 HTTP/1.1", H), BAD, True),
    ("dot-dot above root", req("GET /../a.txt HTTP/1.1", H), BAD, True),
    ("encoded dot-dot above root", req("GET /%2e%2e/a.txt HTTP/1.1", H), BAD, True),
    ("encoded dot-dot uppercase", req("GET /%2E%2E/a.txt HTTP/1.1", H), BAD, True),
    ("dot-dot climbing out of a subdir", req("GET /a/../../a.txt HTTP/1.1", H), BAD, True),
    ("mixed dot-dot", req("GET /.%2e/a.txt HTTP/1.1", H), BAD, True),
    # --- Content-Length shapes ---------------------------------------------------
    ("negative CL", req("POST / HTTP/1.1", H, "Content-Length: -5", body=b"hello"), BAD, True),
    ("+5 CL", req("POST / HTTP/1.1", H, "Content-Length: +5", body=b"hello"), BAD, True),
    ("hex CL", req("POST / HTTP/1.1", H, "Content-Length: 0x5", body=b"hello"), BAD, True),
    ("CL with space inside", req("POST / HTTP/1.1", H, "Content-Length: 1 0",
                                 body=b"helloworld"), BAD, True),
    # An overflowing length is not a number the codec can hold: malformed (400). A codec
    # that saturates and compares with max_body answers 413; both refuse it safely.
    ("CL overflow", req("POST / HTTP/1.1", H, "Content-Length: 99999999999999999999999999",
                        body=b"hello"), {400, 413}, True),
    ("empty CL", req("POST / HTTP/1.1", H, "Content-Length: ", body=b"hello"), BAD, True),
    ("non-numeric CL", req("POST / HTTP/1.1", H, "Content-Length: abc", body=b"hello"),
     BAD, True),
    # --- Expect -------------------------------------------------------------------
    ("unknown Expect", req("GET / HTTP/1.1", H, "Expect: something-else"), {417}, True),
    # --- CONNECT ------------------------------------------------------------------
    # Authority-form is only valid with CONNECT, and atlas has no forward-proxy
    # tunnelling on an HTTP listener: the codec may reject the target form (400), the
    # router may refuse the method (405) or the server may say it does not implement
    # CONNECT (501). All three refuse it; only a 2xx (an open tunnel) would be wrong.
    # A 405/501 from above the codec need not close the connection, so not checked.
    ("CONNECT authority-form", req("CONNECT x:443 HTTP/1.1", "Host: x:443"),
     {400, 405, 501}, False),
    # --- not HTTP at all ------------------------------------------------------------
    ("TLS ClientHello", CLIENT_HELLO, BAD, True),
    ("binary garbage", GARBAGE, BAD, True),
]

# Oversize cases against the limits in the config below.
MANY_HEADERS = req("GET / HTTP/1.1", H, *["X-H%d: v" % i for i in range(100)])  # 101 fields
LONG_LINE = req("GET /" + "a" * 9000 + " HTTP/1.1", H)
HUGE_HEADER = req("GET / HTTP/1.1", H, "X-Big: " + "b" * 20000)
BIG_BODY = req("POST / HTTP/1.1", H, "Content-Length: 2000", body=b"x" * 2000)
BIG_CHUNKED = req("GET / HTTP/1.1", H, "Transfer-Encoding: chunked",
                  body=b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n")
CASES += [
    ("101 header fields", MANY_HEADERS, {431}, True),
    ("request line over max_request_line", LONG_LINE, {414}, True),
    ("header over max_header_bytes", HUGE_HEADER, {431}, True),
    ("CL body over max_body", BIG_BODY, {413}, True),
    ("chunked body over max_body", BIG_CHUNKED, {413}, True),
]

# Valid but unusual requests that a too-strict codec would wrongly reject.
ACCEPTED = [
    ("OWS around value", req("GET /a.txt HTTP/1.1", H, "X-A: \t v \t")),
    ("empty header value", req("GET /a.txt HTTP/1.1", H, "X-Empty:")),
    ("lowercase header names", req("GET /a.txt HTTP/1.1", "host: x", "accept: */*")),
    ("Host with port", req("GET /a.txt HTTP/1.1", "Host: x:8080")),
    ("Host IPv4 literal", req("GET /a.txt HTTP/1.1", "Host: 127.0.0.1")),
    ("Host IPv6 literal", req("GET /a.txt HTTP/1.1", "Host: [::1]:80")),
    ("absolute-form http", req("GET http://x/a.txt HTTP/1.1", H)),
    ("HTTP/1.0 without Host", req("GET /a.txt HTTP/1.0")),
    ("chunked GET body with extension", req("GET /a.txt HTTP/1.1", H,
                                            "Transfer-Encoding: chunked",
                                            body=b"5;ext=1\r\nhello\r\n0\r\n\r\n")),
    ("chunked GET body with trailer", req("GET /a.txt HTTP/1.1", H,
                                          "Transfer-Encoding: chunked",
                                          body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")),
    ("uppercase hex chunk size", req("GET /a.txt HTTP/1.1", H, "Transfer-Encoding: chunked",
                                     body=b"A\r\n0123456789\r\n0\r\n\r\n")),
    ("CL body under max_body", req("GET /a.txt HTTP/1.1", H, "Content-Length: 1000",
                                   body=b"y" * 1000)),
    ("Content-Length: 0", req("GET /a.txt HTTP/1.1", H, "Content-Length: 0")),
    ("percent-encoded path", req("GET /%61.txt HTTP/1.1", H)),
    ("query string", req("GET /a.txt?q=%00&x=../.. HTTP/1.1", H)),
    ("many headers under the limit", req("GET /a.txt HTTP/1.1", H,
                                         *["X-H%d: v" % i for i in range(90)])),
]


def config(**limits):
    lim = {"max_body": '"1k"'}
    lim.update(limits)
    return site_config(limits=lim)


class MalformedBase(unittest.TestCase):
    limits = {}

    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(config(**cls.limits), www=WWW)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def assert_server_fine(self, after):
        self.atlas.assert_alive()
        with connect(self.port, timeout=15) as s:
            s.sendall(GOOD_REQUEST)
            r = read_response(s, timeout=15)
        self.assertEqual(r.status, 200, "valid request after %s got %r" % (after, r))
        self.assertEqual(r.body, WWW["index.html"].encode())

    def send(self, data):
        s = connect(self.port, timeout=15)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        return s

    def check_rejected(self, name, data, accepted, codec_error):
        with self.send(data) as s:
            try:
                r = read_response(s, timeout=15)
            except EOFError as e:
                self.fail("%s: connection closed without a response (%s)" % (name, e))
            except ConnectionResetError:
                self.fail("%s: connection reset without a (readable) response" % name)
            except socket.timeout:
                self.fail("%s: no response within 15s" % name)
            self.assertIn(r.status, accepted, "%s: got %r" % (name, r))
            if codec_error:
                self.assertTrue(r.closes(), "%s: no `Connection: close` in %r" % (name, r))
                closed, extra = wait_closed(s, timeout=15)
                self.assertTrue(closed, "%s: connection left open after %d" % (name, r.status))
                self.assertEqual(extra, b"", "%s: bytes after the error response" % name)


class Malformed(MalformedBase):
    def test_table_size(self):
        self.assertGreaterEqual(len(CASES), 45)

    def test_rejected_requests(self):
        for name, data, accepted, codec_error in CASES:
            with self.subTest(case=name):
                self.check_rejected(name, data, accepted, codec_error)
                self.assert_server_fine(name)

    def test_accepted_requests(self):
        for name, data in ACCEPTED:
            with self.subTest(case=name):
                with self.send(data) as s:
                    r = read_response(s, timeout=15)
                    self.assertEqual(r.status, 200, "%s: got %r" % (name, r))
                    self.assertEqual(r.body, WWW["a.txt"].encode(), name)
                    # the body (if any) was consumed: the connection still works
                    # (HTTP/1.0 closes, so only for 1.1)
                    if data.split(b"\r\n", 1)[0].endswith(b"HTTP/1.1"):
                        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
                        r2 = read_response(s, timeout=15)
                        self.assertEqual(r2.status, 200, "%s: second request %r" % (name, r2))
                        self.assertEqual(r2.body, WWW["index.html"].encode())
                self.assert_server_fine(name)

    def test_expect_100_continue(self):
        # Body sent without waiting: an optional 100 Continue, then exactly one 200.
        with self.send(req("GET /a.txt HTTP/1.1", H, "Expect: 100-continue",
                           "Content-Length: 5", body=b"hello")) as s:
            r = read_response(s, timeout=15)
            if r.status == 100:
                r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, WWW["a.txt"].encode())
            s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
            r2 = read_response(s, timeout=15)
            self.assertEqual(r2.status, 200, r2)

    def test_smuggled_request_never_answered(self):
        # CL+TE with a smuggled request in the body: exactly one response (400), then EOF.
        data = req("POST / HTTP/1.1", H, "Content-Length: 40", "Transfer-Encoding: chunked",
                   body=b"0\r\n\r\n" + SMUGGLED)
        with self.send(data) as s:
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 400, r)
            closed, extra = wait_closed(s, timeout=15)
            self.assertTrue(closed)
            self.assertNotIn(b"HTTP/1.1", extra)


class SlowHead(MalformedBase):
    limits = {"header_timeout": '"1s"'}

    def test_incomplete_head_gets_408(self):
        with self.send(b"GET / HTTP/1.1\r\nHost: x\r\n") as s:
            r = read_response(s, timeout=60)
            self.assertEqual(r.status, 408, r)
            closed, extra = wait_closed(s, timeout=30)
            self.assertTrue(closed, "connection left open after 408")
            self.assertEqual(extra, b"")
        self.assert_server_fine("408")

    def test_trickled_head_gets_408(self):
        # Slowloris: a byte every 0.2 s keeps the connection busy but the head never
        # completes; header_timeout covers the whole head, not each read.
        s = self.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        with s:
            deadline = time.monotonic() + 60
            got = False
            while time.monotonic() < deadline:
                ready, _, _ = select.select([s], [], [], 0.2)
                if ready:
                    got = True
                    break
                try:
                    s.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    got = True
                    break
            self.assertTrue(got, "no response while trickling the head for 60s")
            r = read_response(s, timeout=30)
            self.assertEqual(r.status, 408, r)
            closed, _ = wait_closed(s, timeout=30)
            self.assertTrue(closed)
        self.assert_server_fine("trickled head")

    def test_silent_connection_is_closed(self):
        # No byte at all: the server must not keep the connection forever. Whether it
        # says 408 first or closes silently is its choice.
        with connect(self.port, timeout=15) as s:
            closed, extra = wait_closed(s, timeout=60)
            self.assertTrue(closed, "silent connection still open after 60s")
            if extra:
                self.assertTrue(extra.startswith(b"HTTP/1.1 408"), extra[:200])
        self.assert_server_fine("silent connection")

    def test_complete_head_in_time_is_served(self):
        with self.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n") as s:
            time.sleep(0.1)
            s.sendall(b"\r\n")
            r = read_response(s, timeout=15)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, WWW["a.txt"].encode())


if __name__ == "__main__":
    unittest.main()
