"""Every configurable limit, each proven both ways: just under it works, over it the
documented status or behaviour follows. This file is the index of all limits; those
already tested elsewhere are not repeated here.

Listener `limits` (and the listener's `max_connections`):
  max_request_line    414             test_malformed.py  "request line over max_request_line"
  max_header_bytes    431             test_malformed.py  "header over max_header_bytes"
  max_headers         431             here: MaxHeaders (a configured value; test_malformed.py
                                      "101 header fields" covers the default 100)
  max_body            413             test_malformed.py  "CL/chunked body over max_body",
                                      "CL body under max_body"
  header_timeout      408             test_malformed.py  SlowHead
  idle_timeout        close           test_keepalive.py  IdleTimeout
  body_timeout        408, close      here: BodyTimeout
  send_timeout        close           here: SendTimeout
  max_requests        Connection: close on the Nth response, then close
                                      here: MaxRequests
  max_connections     newcomers wait  here: MaxConnections (HTTP listener);
                                      test_tcp.py ConnectionLimit (L4 listener)
Upstream limits:
  max_response_head   502, upstream connection closed; a health check reading a longer
                      head fails                           here: MaxResponseHead
  max_response_body   502 when Content-Length is over; chunked / until-close bodies are
                      cut where they cross it (the client sees an incomplete message)
                                                           here: MaxResponseBody
(mod_tcp's own idle_timeout: test_tcp.py test_idle_timeout_closes_both_sides; the
proxy's timeouts.connect/read/write: test_proxy.py and test_resilience.py.)

Timeouts are short (300 ms) so the tests are quick; no test asserts how fast anything
happens, only that it does before a generous deadline.
"""

import json
import re
import select
import socket
import unittest

from backend import Backend, pattern
from harness import (Atlas, build_request, connect, parse_response_bytes, read_response, request,
                     site_config, wait_closed, wait_until)
from tcp_peer import TcpServer


def proxy_config(upstream_address, upstream_extra="", limits=""):
    """One listener proxying everything to the one server of upstream "api"."""
    return ("[server]\nworkers = 1\n\n"
            "[upstream.api]\nservers = [\"%s\"]\n%s\n\n"
            "[[listener]]\nname = \"web\"\nlisten = [\"127.0.0.1:{port}\"]\n%s\n"
            "  [[listener.route]]\n  path_prefix = \"/\"\n"
            "  handler = { module = \"proxy\", upstream = \"api\" }\n"
            % (upstream_address, upstream_extra, limits))


def web_connections(admin_port):
    """(accepted, open) connections of listener "web", from the admin API's /metrics."""
    r = request(admin_port, path="/metrics")
    assert r.status == 200, r

    def sample(name):
        m = re.search(rb'^%s\{listener="web"\} (\d+)$' % name, r.body, re.M)
        assert m, (name, r.body[:2000])
        return int(m.group(1))
    return sample(b"atlas_connections_accepted_total"), sample(b"atlas_connections_open")


def nothing_arrives(sock, window=0.3):
    """True when no byte (and no close) arrives on sock within `window` seconds: a window
    for a wrong answer to show; a slow machine can only make this pass, never fail."""
    ready, _, _ = select.select([sock], [], [], window)
    return not ready


class MaxHeaders(unittest.TestCase):
    def test_fields_up_to_the_limit_pass_and_one_more_is_431(self):
        with Atlas(site_config(limits={"max_headers": 5}), www={"index.html": "hi"}) as a:
            four = [("X-F%d" % i, "v") for i in range(4)]  # + Host = 5 field lines
            with connect(a.port) as s:
                s.sendall(build_request(headers=four))
                r = read_response(s)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"hi")
                s.sendall(build_request(headers=four + [("X-F4", "v")]))
                r = read_response(s)
                self.assertEqual(r.status, 431, r)
                self.assertTrue(r.closes(), r)
                closed, extra = wait_closed(s)
                self.assertTrue(closed, "connection left open after 431")
                self.assertEqual(extra, b"")


class MaxRequests(unittest.TestCase):
    def test_the_nth_response_closes_the_connection(self):
        with Atlas(site_config(limits={"max_requests": 3}), www={"index.html": "hi"}) as a:
            with connect(a.port) as s:
                for n in (1, 2):  # N-1 requests: the connection stays open for the next one
                    s.sendall(build_request())
                    r = read_response(s)
                    self.assertEqual(r.status, 200, r)
                    self.assertFalse(r.closes(), "response %d says close: %r" % (n, r))
                s.sendall(build_request())
                r = read_response(s)
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.closes(), "response 3 of max_requests = 3 keeps the connection: %r" % r)
                closed, extra = wait_closed(s)
                self.assertTrue(closed, "connection left open after the last allowed request")
                self.assertEqual(extra, b"")


class MaxConnections(unittest.TestCase):
    CONFIG = """
[server]
workers = 2

[[listener]]
name = "web"
listen = ["127.0.0.1:{port}"]
max_connections = 2

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "www" }
"""

    def test_up_to_the_limit_are_served_and_a_newcomer_waits_for_a_slot(self):
        with Atlas(self.CONFIG, www={"index.html": "hi"}) as a:
            first = [connect(a.port), connect(a.port)]
            third = None
            try:
                for s in first:  # the limit itself: both served, both kept open
                    s.sendall(build_request())
                    self.assertEqual(read_response(s).status, 200)
                third = connect(a.port)  # the kernel completes the handshake; atlasd waits
                third.sendall(build_request())
                # The two open connections are still served meanwhile...
                first[1].sendall(build_request())
                self.assertEqual(read_response(first[1]).status, 200)
                # ... while the third gets nothing.
                self.assertTrue(nothing_arrives(third), "a third connection was served over max_connections = 2")
                first[0].close()  # a slot frees: the third is served
                r = read_response(third, timeout=20)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"hi")
            finally:
                for s in first + [third]:
                    if s is not None:
                        s.close()


class BodyTimeout(unittest.TestCase):
    def test_a_body_that_stalls_gets_408_and_a_close(self):
        with Backend() as b, Atlas(proxy_config(b.address, limits='limits = { body_timeout = "300ms" }')) as a:
            body = pattern(100000)
            head = build_request("POST", "/echo", headers=[("Content-Length", str(len(body)))])
            with connect(a.port) as s:  # a body that keeps coming is not cut
                s.sendall(head)
                for i in range(0, len(body), 10000):
                    s.sendall(body[i:i + 10000])
                r = read_response(s, timeout=20)
                self.assertEqual(r.status, 200, r)
                self.assertIn(b'"body_len": 100000', r.body)
            with connect(a.port) as s:  # half the body, then nothing
                s.sendall(head + body[:50000])
                r = read_response(s, timeout=30)
                self.assertEqual(r.status, 408, r)
                self.assertTrue(r.closes(), r)
                closed, _ = wait_closed(s, timeout=30)
                self.assertTrue(closed, "connection left open after a 408 for a stalled body")
            self.assertEqual(request(a.port, path="/len/5").body, pattern(5))  # nothing else broke


class SendTimeout(unittest.TestCase):
    SIZE = 8 << 20

    def client(self, port, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: it sets the window
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        return s

    def test_a_client_that_never_reads_is_closed(self):
        cfg = site_config(limits={"send_timeout": '"300ms"'},
                          extra='\n[admin]\nlisten = "127.0.0.1:{port2}"\n')
        with Atlas(cfg, www={"big.bin": pattern(self.SIZE)}) as a:
            req = build_request("GET", "/big.bin", headers=[("Connection", "close")])
            with self.client(a.port) as s:  # one that keeps reading gets it all
                s.sendall(req)
                got = b""
                while True:
                    d = s.recv(1 << 20)
                    if not d:
                        break
                    got += d
                r, rest = parse_response_bytes(got)
                self.assertIsNotNone(r, "incomplete response: %d bytes" % len(got))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(r.body), self.SIZE)
                self.assertEqual(r.body, pattern(self.SIZE))
            accepted, _ = web_connections(a.port2)
            with self.client(a.port, rcvbuf=4096) as s:  # one that never reads: a few KiB fill it
                s.sendall(req)
                # This one accepted and none open: atlasd closed it.
                wait_until(lambda: web_connections(a.port2) == (accepted + 1, 0),
                           "atlasd to close a connection that read nothing for send_timeout")
                closed, got = wait_closed(s, timeout=30)
                self.assertTrue(closed)
                self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:200])
                self.assertLess(len(got), self.SIZE, "the whole file arrived")


HEAD_START = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Fill: "
HEAD_END = b"\r\n\r\n"


def respond_with_head_of_size(sock, rec):
    """An upstream whose response head to `GET /head/N` is exactly N bytes (status line to
    the blank line), with the body "ok"; keep-alive. Records the proxy's close in rec.eof."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                rec.eof.set()
                return
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        size = int(head.split(b" ")[1].rsplit(b"/", 1)[1])
        sock.sendall(HEAD_START + b"f" * (size - len(HEAD_START) - len(HEAD_END)) + HEAD_END + b"ok")


class MaxResponseHead(unittest.TestCase):
    def test_a_head_up_to_the_limit_passes_and_a_longer_one_is_502(self):
        with TcpServer(respond_with_head_of_size) as up, \
                Atlas(proxy_config(up.address, 'max_response_head = "4k"')) as a:
            r = request(a.port, path="/head/4096")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"ok")
            self.assertEqual(len(r.header("X-Fill")), 4096 - len(HEAD_START) - len(HEAD_END))
            r = request(a.port, path="/head/4097")
            self.assertEqual(r.status, 502, r)
            # The upstream connection it came on is closed, not pooled.
            wait_until(lambda: [c for c in up.connections if c.eof.is_set()], "the upstream close")
            wait_until(lambda: "over max_response_head" in a.stderr_text(), "the reason in the log")
            self.assertEqual(request(a.port, path="/head/100").status, 200)  # the upstream is still used

    def test_health_checks_read_heads_under_it_too(self):
        cfg = ("[server]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:{port2}\"\n")
        for name, size in (("fits", 4096), ("over", 4097)):
            cfg += ('[upstream.%s]\nservers = ["{%s}"]\nmax_response_head = "4k"\n'
                    'health = { path = "/head/%d", interval = "300ms", fall = 1 }\n' % (name, name, size))
        cfg += ('[[listener]]\nlisten = ["127.0.0.1:{port}"]\n  [[listener.route]]\n'
                '  handler = { module = "proxy", upstream = "fits" }\n')
        with TcpServer(respond_with_head_of_size) as fits, TcpServer(respond_with_head_of_size) as over, \
                Atlas(cfg.replace("{fits}", fits.address).replace("{over}", over.address)) as a:
            def last_check(upstream, address):
                r = request(a.port2, path="/upstreams/%s/servers/%s" % (upstream, address))
                self.assertEqual(r.status, 200, r)
                return json.loads(r.body).get("checks", {}).get("last")
            ok = wait_until(lambda: last_check("fits", fits.address), "a check of the server that fits")
            self.assertTrue(ok["ok"], ok)
            self.assertEqual(ok["detail"], "status 200")
            bad = wait_until(lambda: last_check("over", over.address), "a check of the server over the limit")
            self.assertFalse(bad["ok"], bad)
            self.assertIn("response head too large", bad["detail"])


def chunked_prefix(body):
    """The data of the complete chunks at the start of a chunked body, and whether the
    last chunk (size 0) was among them."""
    data = b""
    while True:
        end = body.find(b"\r\n")
        if end < 0:
            return data, False
        size = int(body[:end].split(b";")[0], 16)
        if size == 0:
            return data, True
        chunk = body[end + 2:end + 2 + size]
        if len(chunk) < size:
            return data, False
        data += chunk
        body = body[end + 2 + size + 2:]


class MaxResponseBody(unittest.TestCase):
    LIMIT = 65536

    def cut_response(self, port, path):
        """Asserts that a client asking for `path` gets a 200 head, then chunks holding
        the first LIMIT bytes of the body, then the close, without the last chunk."""
        with connect(port) as s:
            s.sendall(build_request("GET", path))
            closed, got = wait_closed(s, timeout=30)
        self.assertTrue(closed, "connection left open after a body over max_response_body")
        self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:200])
        r, _ = parse_response_bytes(got)
        self.assertIsNone(r, "a complete response for a body over max_response_body: %r" % r)
        head, body = got.split(b"\r\n\r\n", 1)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        data, ended = chunked_prefix(body)
        self.assertFalse(ended, "the chunked body was ended")
        self.assertEqual(data, pattern(self.LIMIT))  # relayed up to the limit, not a byte more

    def test_bodies_up_to_the_limit_pass_and_longer_ones_are_refused_or_cut(self):
        with Backend() as b, Atlas(proxy_config(b.address, 'max_response_body = "64k"')) as a:
            # Just under (at) the limit, each framing: relayed whole.
            for path in ("/len/%d" % self.LIMIT, "/chunked/%d/7" % self.LIMIT, "/close/%d" % self.LIMIT):
                r = request(a.port, path=path)
                self.assertEqual(r.status, 200, (path, r))
                self.assertEqual(r.body, pattern(self.LIMIT), path)
            # A Content-Length over it: 502 before any byte of the body.
            r = request(a.port, path="/len/%d" % (self.LIMIT + 1))
            self.assertEqual(r.status, 502, r)
            self.assertNotIn(b"abcdef", r.body)
            # Chunked and close-delimited bodies growing past it: cut.
            self.cut_response(a.port, "/chunked/1000000/20")
            self.cut_response(a.port, "/close/1000000")  # relayed to the client as chunked
            wait_until(lambda: "over max_response_body" in a.stderr_text(), "the reason in the log")
            self.assertEqual(request(a.port, path="/len/5").body, pattern(5))  # nothing else broke


if __name__ == "__main__":
    unittest.main()
