"""mod_proxy through a real atlasd to real python3 http.server upstreams (backend.py):
bodies both ways (Content-Length, chunked, close-delimited), keep-alive reuse,
hop-by-hop fields, X-Forwarded-*, strip_prefix, Host, HEAD/204/304, 502/504,
cancel-on-disconnect, load-balancing sequences and the seed's example configs."""

import hashlib
import json
import os
import socket
import time
import unittest

from backend import Backend, pattern
from harness import (REPO, Atlas, build_request, connect, read_response, read_until_close, request,
                     run_check)


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
        with Backend() as b, Atlas(config([b.address], extra_upstream='timeouts = { read = "1s" }')) as a:
            r = request(a.port, path="/sleep/3000", timeout=20)
            self.assertEqual(r.status, 504)
            self.assertEqual(request(a.port, path="/len/4").body, pattern(4))

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


GiB = 1 << 30


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


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

    def check_rss(self):
        with open("/proc/%d/maps" % self.atlas.pid) as f:
            if "libasan" in f.read():
                # ASan keeps freed memory in quarantine and adds shadow memory: the bound
                # is checked by the run of the normal build.
                return
        hwm = vm_hwm_kib(self.atlas.pid)
        self.assertLess(hwm, 64 * 1024, "atlasd peak RSS %d KiB" % hwm)

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
            got = hashlib.sha256(rest)
            n = len(rest)
            while n < GiB:
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, "closed after %d bytes" % n)
                got.update(chunk)
                n += len(chunk)
        self.assertEqual(n, GiB)
        self.assertEqual(got.hexdigest(), want.hexdigest())
        self.check_rss()

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
        self.check_rss()

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
        import threading
        with Backend("a") as a, Backend("b") as b, \
                Atlas(config([a.address, b.address], extra_upstream='lb = "least_connections"')) as at:
            slow = {}
            t = threading.Thread(target=lambda: slow.update(
                r=request(at.port, path="/sleep/2500", timeout=30)))
            t.start()
            deadline = time.monotonic() + 10
            while len(a.seen) + len(b.seen) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            quick = [request(at.port, path="/len/1").header("X-Backend") for _ in range(6)]
            t.join(30)
            busy = slow["r"].header("X-Backend")
            self.assertNotIn(busy, quick, "a request went to the server still busy with the slow one")


class SeedExamples(unittest.TestCase):
    def test_examples_check(self):
        for name in ("reverse-proxy", "load-balancing"):
            with self.subTest(example=name):
                rc, out, err = run_check({"atlas.toml": open(os.path.join(REPO, "configs", "examples", name,
                                                                           "atlas.toml")).read()})
                self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
