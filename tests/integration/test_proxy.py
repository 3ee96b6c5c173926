"""mod_proxy through a real atlasd to real python3 http.server upstreams (backend.py):
bodies both ways (Content-Length, chunked, close-delimited), keep-alive reuse,
hop-by-hop fields, X-Forwarded-*, strip_prefix, Host, HEAD/204/304, 502/504,
cancel-on-disconnect, 100-continue, the keep-alive race retry, the upstream's
Keep-Alive timeout, load-balancing sequences and the seed's example configs (checked,
and run against real python3 / node backends)."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from backend import Backend, pattern
from harness import too_heavy_for_valgrind
from harness import (REPO, Atlas, build_request, can_connect, connect, free_port, read_response,
                     read_until_close, recv_sha256, request, run_check, tail, assert_peak_rss_below,
                     wait_closed)


def config(servers, extra_upstream="", handler_extra="", routes=None, workers=1):
    servers_toml = ", ".join(s if s.startswith("{") else '"%s"' % s for s in servers)
    text = ("[server]\nworkers = %d\n\n[upstream.api]\nservers = [%s]\n%s\n"
            '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
            % (workers, servers_toml, extra_upstream))
    for prefix, extra in (routes or [("/", handler_extra)]):
        text += ('\n  [[listener.route]]\n  path_prefix = "%s"\n'
                 '  handler = { module = "proxy", upstream = "api"%s }\n' % (prefix, extra))
    return text


def echo(resp):
    return json.loads(resp.body)


def header_names(e):
    return [k.lower() for k, _ in e["headers"]]


def header(e, name):
    for k, v in e["headers"]:
        if k.lower() == name.lower():
            return v
    return None


class Basic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("b1").__enter__()
        cls.atlas = Atlas(config([cls.backend.address], handler_extra="",
                                 routes=[("/", ""), ("/api/", ", strip_prefix = true"),
                                         ("/named/", ', host = "upstream.internal"'),
                                         ("/bare/", ", x_forwarded_for = false, x_forwarded_proto = false, "
                                                    "x_forwarded_host = false, forwarded = true")]))
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        cls.backend.__exit__(None, None, None)

    def test_get(self):
        r = request(self.port, path="/len/1000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, pattern(1000))
        self.assertEqual(r.header("X-Backend"), "b1")
        self.assertEqual(len(r.header_all("Date")), 1)

    def test_request_line_and_query_are_kept(self):
        e = echo(request(self.port, path="/echo/a%20b/?x=1&y=%2F"))
        self.assertEqual(e["path"], "/echo/a%20b/?x=1&y=%2F")
        self.assertEqual(e["method"], "GET")

    def test_keep_alive_to_the_upstream(self):
        before = self.backend.connections
        with connect(self.port) as s:
            conns = set()
            for _ in range(20):
                s.sendall(build_request("GET", "/echo"))
                r = read_response(s)
                self.assertEqual(r.status, 200)
                conns.add(echo(r)["conn"])
        self.assertLessEqual(len(conns), 2, conns)
        self.assertLessEqual(self.backend.connections - before, 2)

    def test_post_content_length(self):
        body = os.urandom(3 * 1024 * 1024 + 7)
        r = request(self.port, "POST", "/echo", body=body)
        e = echo(r)
        self.assertEqual(e["body_len"], len(body))
        self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(header(e, "Content-Length"), str(len(body)))

    def test_post_chunked_is_rechunked(self):
        pieces = [os.urandom(n) for n in (1, 100, 70000, 5)]
        body = b"".join(pieces)
        raw = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        with connect(self.port) as s:
            s.sendall(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + raw)
            e = echo(read_response(s))
        self.assertEqual(e["body_len"], len(body))
        self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(header(e, "Transfer-Encoding"), "chunked")
        self.assertIsNone(header(e, "Content-Length"))

    def test_expect_100_continue(self):
        body = os.urandom(100000)
        with connect(self.port) as s:
            s.sendall(build_request("POST", "/echo", headers=[("Content-Length", str(len(body))),
                                                               ("Expect", "100-continue")]))
            r = read_response(s)  # before a byte of the body is sent
            self.assertEqual(r.status, 100, r)
            self.assertTrue(r.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), r.raw_head)
            s.sendall(body)
            r = read_response(s)
        self.assertEqual(r.status, 200, r)
        e = echo(r)
        self.assertEqual(e["body_len"], len(body))
        self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())
        # atlas answered the expectation itself: it does not travel upstream
        self.assertNotIn("expect", header_names(e))

    def test_chunked_response(self):
        r = request(self.port, path="/chunked/100000/7")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, pattern(100000))

    def test_close_delimited_response(self):
        with connect(self.port) as s:
            s.sendall(build_request("GET", "/close/50000"))
            r = read_response(s)
            self.assertEqual(r.body, pattern(50000))
            s.sendall(build_request("GET", "/len/10"))  # the client connection lives on
            self.assertEqual(read_response(s).body, pattern(10))

    def test_head_keeps_the_length(self):
        with connect(self.port) as s:
            s.sendall(build_request("HEAD", "/len/1234"))
            r = read_response(s, head=True)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "1234")
            s.sendall(build_request("GET", "/len/3"))
            self.assertEqual(read_response(s).body, b"abc")

    def test_no_body_statuses(self):
        for status in (204, 304):
            with self.subTest(status=status), connect(self.port) as s:
                s.sendall(build_request("GET", "/status/%d" % status))
                r = read_response(s)
                self.assertEqual(r.status, status)
                self.assertEqual(r.body, b"")
                s.sendall(build_request("GET", "/len/3"))
                self.assertEqual(read_response(s).body, b"abc")

    def test_interim_response_and_a_head_in_pieces(self):
        for _ in range(3):
            r = request(self.port, path="/pieces")
            self.assertEqual((r.status, r.body), (200, b"hello"))
            self.assertIsNone(r.header("Link"))  # the 103 is not relayed

    def test_upstream_error_status_passes(self):
        self.assertEqual(request(self.port, path="/status/503").status, 503)
        self.assertEqual(request(self.port, path="/nothing-here").status, 404)

    def test_hop_by_hop_request_fields_are_dropped(self):
        e = echo(request(self.port, path="/echo", headers={
            "Connection": "X-Secret, keep-alive", "X-Secret": "1", "Keep-Alive": "timeout=9", "TE": "trailers",
            "Proxy-Authorization": "Basic eDp5", "Proxy-Connection": "keep-alive", "X-Kept": "yes"}))
        names = header_names(e)
        for gone in ("x-secret", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
            self.assertNotIn(gone, names)
        self.assertEqual(header(e, "X-Kept"), "yes")
        self.assertNotIn("close", (header(e, "Connection") or "").lower())

    def test_hop_by_hop_response_fields_are_dropped(self):
        r = request(self.port, path="/hop")
        self.assertEqual(r.body, b"hop")
        self.assertIsNone(r.header("X-Up-Secret"))
        self.assertIsNone(r.header("Keep-Alive"))

    def test_forwarding_headers(self):
        e = echo(request(self.port, path="/echo", host="site.example",
                         headers={"X-Forwarded-For": "203.0.113.9"}))
        # 127.0.0.1 is not a trusted proxy: a client's own X-Forwarded-For is replaced
        self.assertEqual(header(e, "X-Forwarded-For"), "127.0.0.1")
        self.assertEqual(header(e, "X-Forwarded-Proto"), "http")
        self.assertEqual(header(e, "X-Forwarded-Host"), "site.example")
        self.assertEqual(header(e, "Host"), "site.example")
        self.assertIsNone(header(e, "Forwarded"))

    def test_forwarding_switches(self):
        e = echo(request(self.port, path="/bare/echo", host="site.example"))
        for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
            self.assertIsNone(header(e, name))
        self.assertEqual(header(e, "Forwarded"), "for=127.0.0.1;proto=http;host=site.example")

    def test_strip_prefix_and_host_override(self):
        self.assertEqual(echo(request(self.port, path="/api/echo?q=1"))["path"], "/echo?q=1")
        e = echo(request(self.port, path="/named/echo", host="site.example"))
        self.assertEqual(e["path"], "/named/echo")
        self.assertEqual(header(e, "Host"), "upstream.internal")

    def test_client_disconnect_cancels_the_upstream_request(self):
        self.backend.aborted.clear()
        s = connect(self.port)
        s.sendall(build_request("GET", "/stream/400"))
        s.recv(65536)
        s.close()
        deadline = time.monotonic() + 20
        while not self.backend.aborted.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.backend.aborted.is_set(), "the upstream kept streaming to nobody")
        self.assertEqual(request(self.port, path="/len/5").body, pattern(5))


class Failures(unittest.TestCase):
    def test_refused_is_502(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = "127.0.0.1:%d" % s.getsockname()[1]
        with Atlas(config([dead])) as a:
            r = request(a.port, path="/x")
            self.assertEqual(r.status, 502)
            self.assertIn("upstream", a.stderr_text())

    def test_slow_upstream_is_504(self):
        # A timeout counts against the server (passive detection): with passive checks off
        # it stays in use.
        extra = 'timeouts = { read = "1s" }\npassive = { fails = 0 }'
        with Backend() as b, Atlas(config([b.address], extra_upstream=extra)) as a:
            r = request(a.port, path="/sleep/3000", timeout=20)
            self.assertEqual(r.status, 504)
            self.assertEqual(request(a.port, path="/len/4").body, pattern(4))

    def test_slow_upstream_is_marked_down(self):
        extra = 'timeouts = { read = "1s" }\npassive = { fails = 1, cooldown = "30s" }'
        with Backend() as b, Atlas(config([b.address], extra_upstream=extra)) as a:
            self.assertEqual(request(a.port, path="/sleep/3000", timeout=20).status, 504)
            r = request(a.port, path="/len/4")
            self.assertEqual(r.status, 503, r)
            retry_after = int(r.header("Retry-After"))
            self.assertTrue(1 <= retry_after <= 30, retry_after)
            self.assertIn("passive: response timed out", a.stderr_text())

    def test_no_upstream_named_is_a_config_error(self):
        rc, out, err = run_check('[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
                                 '  [[listener.route]]\n  path_prefix = "/"\n'
                                 '  handler = { module = "proxy", upstream = "nope" }\n')
        self.assertEqual(rc, 1, err)
        self.assertIn("listener.web.route[0].handler", err)
        self.assertIn('no upstream named "nope"', err)

    def test_bad_options_are_config_errors(self):
        for extra, needle in ((", strip_prefix = 3", "strip_prefix"), (", x_forwarded_for = 1", "x_forwarded_for"),
                              (", websockets = true", "websockets"), (', host = "a b"', "host")):
            with self.subTest(extra=extra):
                rc, out, err = run_check(config(["127.0.0.1:9"], handler_extra=extra))
                self.assertEqual(rc, 1, err)
                self.assertIn(needle, err)


class KeepAliveRace(unittest.TestCase):
    """An upstream that closes a pooled connection just as atlas reuses it (backend.py's
    /drop-reused: deterministic, the close comes when the request arrives).  A request that
    may be replayed (idempotent or with an Idempotency-Key, its body kept) is sent again,
    once, on a fresh connection; anything else is a 502, since the upstream may have acted
    on it."""

    def setUp(self):
        self.backend = Backend("b1").__enter__()
        self.addCleanup(self.backend.__exit__, None, None, None)
        self.atlas = Atlas(config([self.backend.address])).__enter__()
        self.addCleanup(self.atlas.__exit__, None, None, None)

    def pool_one(self):
        """A GET that leaves one pooled upstream connection (a new one, or the one a replay
        before it left); returns its backend conn id."""
        before = self.backend.connections
        e = echo(request(self.atlas.port, path="/echo"))
        self.assertIn(self.backend.connections, (before, before + 1))
        return e["conn"]

    def test_get_is_retried_on_a_fresh_connection(self):
        pooled = self.pool_one()
        r = request(self.atlas.port, path="/drop-reused/echo")
        self.assertEqual(r.status, 200, r)
        e = echo(r)
        self.assertEqual(self.backend.dropped, [("GET", "/drop-reused/echo")])
        self.assertNotEqual(e["conn"], pooled)
        self.assertEqual(self.backend.connections, pooled + 1, "the retry's fresh connection")
        self.assertEqual(sum(1 for m, p, _ in self.backend.seen if p == "/drop-reused/echo"), 2)

    def test_retry_that_waits_for_its_answer(self):
        # The retried request's answer comes after a sweep of atlas's timeouts (1 s):
        # the read timeout (30 s by default) must count from the retry, not from zero.
        pooled = self.pool_one()
        r = request(self.atlas.port, path="/drop-reused/sleep/2500", timeout=30)
        self.assertEqual(len(self.backend.dropped), 1)
        self.assertEqual(self.backend.connections, pooled + 1)
        self.assertEqual((r.status, r.body), (200, b"slept"), r)

    def test_replayed_only_when_idempotent_or_keyed_and_the_body_is_kept(self):
        # A replay needs an idempotent method (or an Idempotency-Key) and the whole body
        # kept for it: up to replay_body (64 KiB by default).
        small, large = os.urandom(5000), os.urandom(100 * 1024)
        cases = (("POST", small, {}, False), ("POST", b"", {}, False), ("PUT", small, {}, True),
                 ("POST", small, {"Idempotency-Key": "k-1"}, True), ("PUT", large, {}, False))
        for method, payload, headers, replayed in cases:
            with self.subTest(method=method, body=len(payload), headers=headers):
                self.pool_one()
                conns = self.backend.connections
                dropped = len(self.backend.dropped)
                r = request(self.atlas.port, method, "/drop-reused/echo", body=payload, headers=headers)
                self.assertEqual(len(self.backend.dropped), dropped + 1)
                if replayed:
                    self.assertEqual(r.status, 200, r)
                    e = echo(r)
                    self.assertEqual(e["body_len"], len(payload))
                    self.assertEqual(e["body_sha256"], hashlib.sha256(payload).hexdigest())
                    self.assertEqual(self.backend.connections, conns + 1, "the replay's fresh connection")
                else:
                    self.assertEqual(r.status, 502, r)
                    self.assertEqual(self.backend.connections, conns, "sent again on a new connection")
        # The race is not the server's fault: it is still in use.
        self.assertEqual(request(self.atlas.port, path="/len/3").body, b"abc")


class UpstreamKeepAliveTimeout(unittest.TestCase):
    """An upstream's Keep-Alive: timeout=N retires the pooled connection a second (atlas's
    margin) before N: with timeout=1 the next request always goes out on a new one."""

    def test_timeout_1_is_not_reused(self):
        with Backend() as b, Atlas(config([b.address])) as a:
            c1 = echo(request(a.port, path="/keepalive/1/echo"))["conn"]
            c2 = echo(request(a.port, path="/keepalive/1/echo"))["conn"]
            self.assertNotEqual(c2, c1, "a connection past the upstream's Keep-Alive timeout was reused")
            c3 = echo(request(a.port, path="/echo"))["conn"]
            self.assertNotEqual(c3, c2)
            self.assertEqual(b.connections, 3)

    def test_without_keep_alive_or_a_long_one_it_is_reused(self):
        with Backend() as b, Atlas(config([b.address])) as a:
            c1 = echo(request(a.port, path="/echo"))["conn"]
            c2 = echo(request(a.port, path="/echo"))["conn"]
            self.assertEqual(c2, c1)
            c3 = echo(request(a.port, path="/keepalive/60/echo"))["conn"]  # retired 59 s from now
            c4 = echo(request(a.port, path="/echo"))["conn"]
            self.assertEqual((c3, c4), (c1, c1))
            self.assertEqual(b.connections, 1)


GiB = 1 << 30


class TrustedProxies(unittest.TestCase):
    """listener.trusted_proxies: one client identity for the forwarding headers and the hash LB."""

    def atlas(self, backends, listener_extra, lb='lb = "round_robin"'):
        text = config([b.address for b in backends], extra_upstream=lb)
        return Atlas(text.replace('name = "web"\n', 'name = "web"\n' + listener_extra + "\n", 1))

    def test_trusted_peer_keeps_and_extends_the_chain(self):
        with Backend() as b, self.atlas([b], 'trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]') as a:
            e = echo(request(a.port, path="/echo", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3",
                                                            "X-Forwarded-Proto": "https"}))
            self.assertEqual(header(e, "X-Forwarded-For"), "203.0.113.9, 10.1.2.3, 127.0.0.1")
            self.assertEqual(header(e, "X-Forwarded-Proto"), "https")  # kept from a trusted hop

    def test_untrusted_peer_cannot_plant_headers(self):
        with Backend() as b, self.atlas([b], 'trusted_proxies = ["10.0.0.0/8"]') as a:
            e = echo(request(a.port, path="/echo", headers={"X-Forwarded-For": "203.0.113.9",
                                                            "X-Forwarded-Proto": "https"}))
            self.assertEqual(header(e, "X-Forwarded-For"), "127.0.0.1")
            self.assertEqual(header(e, "X-Forwarded-Proto"), "http")

    def test_hash_follows_the_client_behind_a_trusted_proxy(self):
        with Backend("a") as a, Backend("b") as b, Backend("c") as c, \
                self.atlas([a, b, c], 'trusted_proxies = ["127.0.0.1"]', lb='lb = "hash"') as at:
            for client in ("198.51.100.%d" % i for i in range(1, 13)):
                names = {request(at.port, path="/len/1", headers={"X-Forwarded-For": client}).header("X-Backend")
                         for _ in range(3)}
                self.assertEqual(len(names), 1, (client, names))
            spread = {request(at.port, path="/len/1", headers={"X-Forwarded-For": "198.51.100.%d" % i})
                      .header("X-Backend") for i in range(1, 40)}
            self.assertGreater(len(spread), 1, "every client hashed to one server: the peer was used")

    def test_forwarded_as_the_source(self):
        with Backend("a") as a, Backend("b") as b, Backend("c") as c, \
                self.atlas([a, b, c], 'trusted_proxies = ["127.0.0.1"]\nclient_address_from = "forwarded"',
                           lb='lb = "hash"') as at:
            def served(client, header="Forwarded"):
                value = 'for="[%s]:4711";proto=https' % client if header == "Forwarded" else client
                return request(at.port, path="/len/1", headers={header: value}).header("X-Backend")
            clients = ["2001:db8::%x" % i for i in range(1, 40)]
            first = {cl: served(cl) for cl in clients}
            for cl in clients[:8]:
                self.assertEqual(served(cl), first[cl], cl)  # sticky per Forwarded client
            self.assertGreater(len(set(first.values())), 1, "every client hashed to one server: the peer was used")
            # X-Forwarded-For is not the configured source: it does not move anyone
            self.assertEqual(len({served("198.51.100.%d" % i, "X-Forwarded-For") for i in range(1, 20)}), 1)

    def test_bad_cidr_names_the_key(self):
        rc, out, err = run_check(config(["127.0.0.1:9"]).replace(
            'name = "web"\n', 'name = "web"\ntrusted_proxies = ["10.0.0.0/33"]\n', 1))
        self.assertEqual(rc, 1, err)
        self.assertIn("listener.web.trusted_proxies[0]", err)
        rc, out, err = run_check(config(["127.0.0.1:9"]).replace(
            'name = "web"\n', 'name = "web"\nclient_address_from = "x-real-ip"\n', 1))
        self.assertEqual(rc, 1, err)
        self.assertIn("listener.web.client_address_from", err)


@too_heavy_for_valgrind
class BigBodies(unittest.TestCase):
    """1 GiB each way through the proxy, intact, with atlasd's peak RSS under 64 MiB."""

    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("big").__enter__()
        cls.atlas = Atlas(config([cls.backend.address])).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        cls.backend.__exit__(None, None, None)

    def test_download_1gib(self):
        want = hashlib.sha256()
        piece = pattern(1 << 20)
        for _ in range(1024):
            want.update(piece)
        with connect(self.port, timeout=120) as s:
            s.sendall(build_request("GET", "/big/%d" % GiB))
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, rest = buf.split(b"\r\n\r\n", 1)
            self.assertIn(b"Content-Length: %d" % GiB, head)
            got = recv_sha256(s, GiB, rest)
        self.assertEqual(got, want.hexdigest())
        assert_peak_rss_below(self.atlas.pid, 64 << 20)

    def test_upload_1gib(self):
        piece = os.urandom(1 << 20)
        want = hashlib.sha256()
        for _ in range(1024):
            want.update(piece)
        with connect(self.port, timeout=120) as s:
            s.sendall(build_request("POST", "/echo", headers=[("Content-Length", str(GiB))]))
            for _ in range(1024):
                s.sendall(piece)
            e = echo(read_response(s, timeout=120))
        self.assertEqual(e["body_len"], GiB)
        self.assertEqual(e["body_sha256"], want.hexdigest())
        assert_peak_rss_below(self.atlas.pid, 64 << 20)

    @property
    def port(self):
        return self.atlas.port


class Balancing(unittest.TestCase):
    def test_round_robin_sequence(self):
        with Backend("a") as a, Backend("b") as b, Backend("c") as c, \
                Atlas(config([a.address, b.address, c.address], extra_upstream='lb = "round_robin"')) as at:
            names = [request(at.port, path="/len/1").header("X-Backend") for _ in range(9)]
            self.assertEqual(names[:3] * 3, names)
            self.assertEqual(sorted(names[:3]), ["a", "b", "c"])

    def test_weighted_shares(self):
        with Backend("a") as a, Backend("b") as b, Backend("c") as c:
            servers = ['{ address = "%s", weight = %d }' % (x.address, w) for x, w in ((a, 3), (b, 2), (c, 1))]
            with Atlas(config(servers, extra_upstream='lb = "weighted_round_robin"')) as at:
                names = [request(at.port, path="/len/1").header("X-Backend") for _ in range(12)]
        for i in range(0, 12, 6):
            cycle = names[i:i + 6]
            self.assertEqual((cycle.count("a"), cycle.count("b"), cycle.count("c")), (3, 2, 1), names)


    def test_least_connections_avoids_the_busy_server(self):
        self.busy_server_avoided("least_connections", workers=1)

    def closed_request(self, port, path):
        """A request on a new connection (Connection: close) that returns once atlas has
        closed it: atlas ends the exchange, and with it the request's in-flight count,
        before it closes, so the next request cannot see a stale count for this one."""
        with connect(port) as s:
            s.sendall(build_request("GET", path, headers=[("Connection", "close")]))
            r = read_response(s)
            closed, extra = wait_closed(s)
            self.assertTrue(closed and not extra, "atlas did not close after Connection: close (%r)" % extra)
            return r

    def busy_server_avoided(self, lb, workers=2):
        """Two servers: one request held in flight (until the test releases it) on one,
        then 12 quick requests, each on a new client connection (with two workers,
        SO_REUSEPORT spreads them over both).  The load-aware policy of every worker must
        see the held request."""
        with Backend("a") as a, Backend("b") as b, \
                Atlas(config([a.address, b.address], extra_upstream='lb = "%s"' % lb, workers=workers)) as at:
            held = {}
            t = threading.Thread(target=lambda: held.update(r=request(at.port, path="/hold", timeout=90)))
            t.start()
            try:
                deadline = time.monotonic() + 20
                while len(a.seen) + len(b.seen) < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertEqual(len(a.seen) + len(b.seen), 1, "the held request never reached a backend")
                busy = "a" if a.seen else "b"
                quick = [self.closed_request(at.port, "/len/1").header("X-Backend") for _ in range(12)]
            finally:
                a.release()
                b.release()
                t.join(90)
            self.assertIn("r", held, "the held request got no answer")
            self.assertEqual(held["r"].body, b"held")
            self.assertEqual(held["r"].header("X-Backend"), busy)
            self.assertNotIn(busy, quick, "a request went to the server still busy with the held one")

    def test_least_connections_across_workers(self):
        self.busy_server_avoided("least_connections")

    def test_p2c_across_workers(self):
        # p2c with two servers always compares both: as deterministic as least_connections.
        self.busy_server_avoided("p2c")


def example(name):
    with open(os.path.join(REPO, "configs", "examples", name, "atlas.toml")) as f:
        return f.read()


PORT_LINE = re.compile(r"^(port\s*=\s*)(\d+)", re.M)


def with_ports(text, ports):
    """The example with each `port = N` line's N replaced by ports[N]; nothing else."""
    out = PORT_LINE.sub(lambda m: m.group(1) + str(ports[int(m.group(2))]), text)
    old_lines, new_lines = text.splitlines(), out.splitlines()
    assert len(old_lines) == len(new_lines)
    for o, n in zip(old_lines, new_lines):
        assert o == n or (PORT_LINE.match(o) and PORT_LINE.sub("", o) == PORT_LINE.sub("", n)), (o, n)
    return out


@contextlib.contextmanager
def server_process(argv_for_port, cwd=None, what="backend"):
    """Runs argv_for_port(port) on a free port until the block ends; yields the port once
    it accepts connections.  A start that fails (the port was taken meanwhile) is retried
    on another port.  The process is stopped by its PID: SIGTERM, then SIGKILL."""
    for attempt in range(3):
        port = free_port()
        err = tempfile.TemporaryFile()
        proc = subprocess.Popen(argv_for_port(port), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 20
            while proc.poll() is None and not can_connect(port, timeout=0.5):
                if time.monotonic() > deadline:
                    raise AssertionError("%s did not listen on %d within 20 s" % (what, port))
                time.sleep(0.05)
            if proc.poll() is None:
                yield port
                return
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            if attempt == 2:
                raise AssertionError("%s exited %s before listening:\n%s" % (what, proc.returncode, tail(text)))
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            err.close()


def node_server(text):
    """argv for the load-balancing example's node backend answering `text`."""
    return lambda port: ["node", "-e", "require('http').createServer((q,s)=>s.end(%s)).listen(%d,'127.0.0.1')"
                         % (json.dumps(text), port)]


class SeedExamples(unittest.TestCase):
    def test_examples_check(self):
        for name in ("reverse-proxy", "load-balancing"):
            with self.subTest(example=name):
                rc, out, err = run_check({"atlas.toml": example(name)})
                self.assertEqual(rc, 0, err)

    def test_reverse_proxy_example_runs(self):
        text = example("reverse-proxy")
        self.assertEqual(sorted(int(m.group(2)) for m in PORT_LINE.finditer(text)), [3000, 8080])
        docroot = tempfile.mkdtemp(prefix="atlas-it-httpserver-")
        self.addCleanup(shutil.rmtree, docroot, True)
        with open(os.path.join(docroot, "hello.txt"), "wb") as f:
            f.write(b"hello from python3 -m http.server\n")
        with server_process(lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            cwd=docroot, what="python3 -m http.server") as up:
            listen = free_port()
            cfg = with_ports(text, {8080: listen, 3000: up})
            # as its comment says: atlasd configs/examples/reverse-proxy/atlas.toml
            with Atlas({"atlas.toml": cfg}, port=listen, argv="file") as a:
                for _ in range(8):  # workers = 4: fresh connections reach several of them
                    r = request(a.port, path="/hello.txt")
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body, b"hello from python3 -m http.server\n")
                r = request(a.port, path="/")
                self.assertEqual(r.status, 200, r)
                self.assertIn(b"hello.txt", r.body)  # http.server's directory listing
                self.assertEqual(request(a.port, path="/missing").status, 404)

    @unittest.skipUnless(shutil.which("node"), "node is not installed")
    def test_load_balancing_example_runs(self):
        text = example("load-balancing")
        self.assertEqual(sorted(int(m.group(2)) for m in PORT_LINE.finditer(text)), [3001, 3002, 3003, 8080])
        # No `workers` in the example: one per CPU.  The weighted round robin state is a
        # worker's own, so the requests go down one client connection (one worker), where
        # the sequence is exact.
        with server_process(node_server("Server 1"), what="node 1") as p1, \
                server_process(node_server("Server 2"), what="node 2") as p2, \
                server_process(node_server("Server 3"), what="node 3") as p3:
            listen = free_port()
            cfg = with_ports(text, {8080: listen, 3001: p1, 3002: p2, 3003: p3})
            with Atlas({"atlas.toml": cfg}, port=listen, argv="file") as a, connect(a.port) as s:
                names = []
                for _ in range(12):
                    s.sendall(build_request("GET", "/"))
                    r = read_response(s)
                    self.assertEqual(r.status, 200, r)
                    names.append(r.body.decode())
        for i in range(0, 12, 6):
            cycle = names[i:i + 6]
            self.assertEqual([cycle.count("Server %d" % n) for n in (1, 2, 3)], [3, 2, 1], names)
        self.assertEqual(names[:6], names[6:], "the weighted cycle does not repeat")


if __name__ == "__main__":
    unittest.main()
