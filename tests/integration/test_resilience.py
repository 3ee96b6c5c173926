"""Upstream resilience: active health checks, passive detection, the circuit breaker,
retries and their budget, 503 when nothing is usable. Backends are real processes
(http_peer.js, killed with SIGKILL) or backend.py's http.server; the state is read back
through the admin API (GET /upstreams/api/servers/ADDR) and /metrics."""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from backend import Backend
from harness import HERE, Atlas, connect, request
import prometheus_text

WAIT = 20.0  # seconds any state change may take at most (an ASan build is slow)


class Peer:
    """node http_peer.js NAME PORT in its own process: kill() is a SIGKILL, start() brings
    it back on the same port."""

    def __init__(self, name, port=0, fail_file=None):
        self.name = name
        self.port = port
        self.fail_file = fail_file
        self.proc = None

    def start(self):
        env = dict(os.environ)
        if self.fail_file:
            env["HTTP_PEER_FAIL"] = self.fail_file
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "http_peer.js"), self.name, str(self.port)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline()  # {"port": N} once listening (node exits on EADDRINUSE)
        if not line:
            raise AssertionError("http_peer.js %s did not start on port %s" % (self.name, self.port))
        self.port = json.loads(line)["port"]
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def dead_address():
    """An address nothing listens on (connects are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]


def config(servers, upstream_extra="", workers=1, admin=True):
    servers_toml = ", ".join('"%s"' % s for s in servers)
    text = "[server]\nworkers = %d\n" % workers
    if admin:
        text += '[admin]\nlisten = "127.0.0.1:{port2}"\n'
    text += "[upstream.api]\nservers = [%s]\n%s\n" % (servers_toml, upstream_extra)
    text += ('[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
             '  [[listener.route]]\n  path_prefix = "/"\n'
             '  handler = { module = "proxy", upstream = "api" }\n')
    return text


class Admin:
    def __init__(self, atlas):
        self.port = atlas.port2

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            return r.status, body
        finally:
            c.close()

    def server(self, address):
        status, body = self.get("/upstreams/api/servers/" + address)
        assert status == 200, (status, body)
        return json.loads(body)

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, status
        return prometheus_text.parse(body.decode())

    def wait_state(self, address, states, deadline=WAIT):
        """Polls until the server's state is one of `states`; returns its JSON."""
        states = (states,) if isinstance(states, str) else states
        end = time.monotonic() + deadline
        while True:
            s = self.server(address)
            if s["state"] in states:
                return s
            if time.monotonic() > end:
                raise AssertionError("server %s stayed %s, wanted %s; changes: %s"
                                     % (address, s["state"], states, s.get("changes")))
            time.sleep(0.05)


def metric(families, name, **labels):
    return prometheus_text.value(families, name, **labels)


def reasons(server):
    """Its state changes, oldest first, as (from, to, reason)."""
    return [(c["from"], c["to"], c["reason"]) for c in reversed(server["changes"])]


class KilledUnderLoad(unittest.TestCase):
    """A backend SIGKILLed in the middle of a wrk run: the first failed request marks it
    down, the requests it had are retried on the other server (wrk sees only 2xx and no
    socket error), and health checks bring it back once it is restarted."""

    def test_no_request_fails_while_another_server_is_up(self):
        extra = ('health = { path = "/health", interval = "300ms", timeout = "1s", rise = 2, fall = 2 }\n'
                 'passive = { fails = 1 }\nretries = 2\nkeepalive = { idle_per_worker = 64 }')
        with Peer("n1") as n1, Peer("n2") as n2, \
                Atlas(config([n1.address, n2.address], extra, workers=2)) as a:
            admin = Admin(a)
            wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d12s", "http://127.0.0.1:%d/" % a.port],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                end = time.monotonic() + WAIT
                while metric(admin.metrics(), "atlas_upstream_requests_total", upstream="api",
                             server=n1.address) < 200:
                    self.assertLess(time.monotonic(), end, "wrk's load never reached n1")
                    time.sleep(0.05)
                n1.kill()
                down = admin.wait_state(n1.address, "down")
                first = reasons(down)[0]
                self.assertEqual(first[:2], ("up", "down"))
                self.assertRegex(first[2], r"^passive: .*\(1 failure in a row, fails 1\)$")
                n1.start()  # the same port
                up = admin.wait_state(n1.address, "up")
                served_when_up = metric(admin.metrics(), "atlas_upstream_requests_total", upstream="api",
                                        server=n1.address)
                self.assertEqual(reasons(up)[-1][:2], ("down", "up"))
                self.assertIn("health check passed 2 times in a row (rise 2)", reasons(up)[-1][2])
                out, _ = wrk.communicate(timeout=60)
            finally:
                if wrk.poll() is None:
                    wrk.kill()
                    wrk.wait()
            text = out.decode()
            self.assertEqual(wrk.returncode, 0, text)
            self.assertRegex(text, r"\d+ requests in", text)
            self.assertNotIn("Non-2xx", text)
            self.assertNotIn("Socket errors", text)
            m = admin.metrics()
            failures = metric(m, "atlas_upstream_failures_total", upstream="api", server=n1.address)
            retries = sum(metric(m, "atlas_upstream_retries_total", upstream="api", server=s)
                          for s in (n1.address, n2.address))
            # About the requests n1 had in flight when it died (one per wrk connection)
            # failed there (its first failure stops every worker picking it), and each
            # went to n2.
            self.assertGreaterEqual(failures, 1)
            self.assertLessEqual(failures, 2 * 16)
            self.assertGreaterEqual(retries, failures)
            self.assertGreater(metric(m, "atlas_upstream_requests_total", upstream="api", server=n1.address),
                               served_when_up, "n1 got traffic again once up")


class PassiveWithoutChecks(unittest.TestCase):
    """Without active checks a server marked down by traffic gets one probe request
    after the cooldown: a failed probe keeps it down, a good one brings it back."""

    def test_cooldown_then_probe(self):
        dead = dead_address()
        port = int(dead.rsplit(":", 1)[1])
        extra = 'passive = { fails = 1, cooldown = "1s" }\nretries = 1'
        with Backend("live") as live, Atlas(config([dead, live.address], extra)) as a:
            admin = Admin(a)
            for _ in range(4):
                r = request(a.port, path="/len/3")
                self.assertEqual((r.status, r.header("X-Backend")), (200, "live"))
            s = admin.wait_state(dead, "down")
            self.assertEqual(reasons(s)[0][2],
                             "passive: connect failed: Connection refused (1 failure in a row, fails 1)")
            admin.wait_state(dead, "half_open")
            # The probe goes to the dead server, fails, and the request is retried.
            while admin.server(dead)["state"] == "half_open":
                self.assertEqual(request(a.port, path="/len/3").status, 200)
            s = admin.wait_state(dead, "down")
            self.assertTrue(any(r[2].startswith("probe request failed: connect failed") for r in reasons(s)))

            with Peer("back", port):
                admin.wait_state(dead, "half_open")
                backends = set()
                end = time.monotonic() + WAIT
                while admin.server(dead)["state"] != "up":
                    self.assertLess(time.monotonic(), end)
                    r = request(a.port, path="/x")
                    self.assertEqual(r.status, 200)
                    backends.add(r.header("X-Backend"))
                self.assertIn("back", backends)
                self.assertEqual(reasons(admin.server(dead))[-1][:2], ("half_open", "up"))
                self.assertTrue(reasons(admin.server(dead))[-1][2].startswith("probe request succeeded: status 200"))


class CircuitBreaker(unittest.TestCase):
    """failures = 3: three 5xx in a row open the circuit (503 + Retry-After while it is
    the only server), the cooldown half-opens it and one probe request decides."""

    def test_opens_half_opens_and_closes(self):
        with tempfile.TemporaryDirectory() as tmp:
            fail = os.path.join(tmp, "fail")  # http_peer.js answers 500 while it exists
            with open(fail, "w") as f:
                f.write("500")
            extra = 'circuit_breaker = { failures = 3, cooldown = "2s" }\npassive = { fails = 0 }\nretries = 0'
            with Peer("p", fail_file=fail) as p, Atlas(config([p.address], extra)) as a:
                admin = Admin(a)
                for _ in range(3):
                    self.assertEqual(request(a.port, path="/x").status, 500)  # passed on as it came
                s = admin.wait_state(p.address, "open")
                self.assertEqual(reasons(s)[-1],
                                 ("up", "open", "circuit breaker: 3 failures or 5xx in a row (last: status 500)"))
                r = request(a.port, path="/x")  # the only server is open: nothing to send it to
                self.assertEqual(r.status, 503, r)
                self.assertTrue(1 <= int(r.header("Retry-After")) <= 2, r.header("Retry-After"))

                # Still failing when it half-opens: the probe's 500 opens it again.
                admin.wait_state(p.address, "half_open")
                self.assertEqual(request(a.port, path="/x").status, 500)
                s = admin.wait_state(p.address, "open")
                self.assertEqual(reasons(s)[-1], ("half_open", "open", "probe request failed: status 500"))

                os.unlink(fail)  # healthy again
                admin.wait_state(p.address, "half_open")
                r = request(a.port, path="/x")
                self.assertEqual((r.status, r.body), (200, b"p"))
                s = admin.wait_state(p.address, "up")
                self.assertEqual(reasons(s)[-1], ("half_open", "up", "probe request succeeded: status 200"))
                self.assertEqual(request(a.port, path="/x").status, 200)


class NothingUsable(unittest.TestCase):
    """Every server down: 503 with a Retry-After no later than the passive cooldown."""

    def test_503_with_retry_after(self):
        extra = 'passive = { fails = 1, cooldown = "30s" }\nretries = 1'
        with Atlas(config([dead_address(), dead_address()], extra)) as a:
            self.assertEqual(request(a.port, path="/").status, 502)  # both refused, one retry
            r = request(a.port, path="/")
            self.assertEqual(r.status, 503, r)
            self.assertTrue(1 <= int(r.header("Retry-After")) <= 30, r.header("Retry-After"))
            self.assertEqual(r.body, b"503 Service Unavailable\n")
            m = Admin(a).metrics()
            self.assertEqual(metric(m, "atlas_upstream_unavailable_total", upstream="api"), 1)
            self.assertEqual(metric(m, "atlas_http_requests_total", listener="web", route="listener.web.route[0]",
                                    code="5xx"), 2)


class Slammer:
    """An upstream that reads a request head and answers with a TCP reset: the request
    reached a server, which may have acted on it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.seen = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        b = c.recv(65536)
                        if not b:
                            break
                        data += b
                except OSError:
                    pass
                self.seen.append(data.split(b"\r\n", 1)[0])
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()
        self.thread.join(timeout=10)


class Retries(unittest.TestCase):
    """Which failures go to another server: a refused connect always (the request never
    left), a reset after the request only for an idempotent method or with an
    Idempotency-Key, and only within the retry budget."""

    def test_refused_connect_retries_a_post_with_its_body(self):
        extra = "passive = { fails = 0 }\nretries = 1"
        dead = dead_address()
        with Backend("live") as live, Atlas(config([dead, live.address], extra)) as a:
            for i in range(6):
                body = os.urandom(20000 + i)
                r = request(a.port, "POST", "/echo", body=body)
                self.assertEqual(r.status, 200, r)
                e = json.loads(r.body)
                self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())
            m = Admin(a).metrics()
            failed = metric(m, "atlas_upstream_failures_total", upstream="api", server=dead)
            self.assertGreaterEqual(failed, 3)  # round robin sends at least every other one there first
            self.assertEqual(metric(m, "atlas_upstream_retries_total", upstream="api", server=live.address), failed)

    def test_without_retries_a_refused_connect_is_502(self):
        extra = "passive = { fails = 0 }\nretries = 0"
        with Backend("live") as live, Atlas(config([dead_address(), live.address], extra)) as a:
            statuses = sorted(request(a.port, path="/len/2").status for _ in range(4))
            self.assertEqual(statuses, [200, 200, 502, 502])

    def test_reset_after_sending_retries_only_what_may_be_replayed(self):
        extra = "passive = { fails = 0 }\nretries = 1"
        with Slammer() as slam, Backend("live") as live, Atlas(config([slam.address, live.address], extra)) as a:
            for _ in range(4):
                self.assertEqual(request(a.port, path="/echo").status, 200)
                self.assertEqual(request(a.port, "PUT", "/echo", body=b"x" * 1000).status, 200)
                self.assertEqual(request(a.port, "POST", "/echo", body=b"k" * 10,
                                         headers={"Idempotency-Key": "abc"}).status, 200)
            before = len(slam.seen)
            posts = [request(a.port, "POST", "/echo", body=b"p").status for _ in range(4)]
            self.assertIn(502, posts)  # those that went to the slammer first: not sent again
            self.assertIn(200, posts)
            self.assertEqual(len(slam.seen) - before, posts.count(502))
            self.assertTrue(all(line.startswith(b"POST") for line in slam.seen[before:]))

    def test_budget_refuses_retries(self):
        extra = ("passive = { fails = 0 }\nretries = 1\n"
                 "retry_budget = { percent = 0, min_per_second = 0 }")
        with Backend("live") as live, Atlas(config([dead_address(), live.address], extra)) as a:
            statuses = sorted(request(a.port, path="/len/2").status for _ in range(4))
            self.assertEqual(statuses, [200, 200, 502, 502])
            m = Admin(a).metrics()
            self.assertEqual(metric(m, "atlas_upstream_retry_budget_exhausted_total", upstream="api"), 2)

    def test_a_client_that_goes_away_is_not_a_server_failure(self):
        extra = "passive = { fails = 1 }"
        with Backend("live") as live, Atlas(config([live.address], extra)) as a:
            for i in range(3):
                s = connect(a.port)
                s.sendall(b"GET /sleep/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
                end = time.monotonic() + WAIT  # close once the request is with the upstream
                while sum(1 for _, p, _ in live.seen if p == "/sleep/1500") <= i:
                    self.assertLess(time.monotonic(), end, "the request never reached the upstream")
                    time.sleep(0.01)
                s.close()
            self.assertEqual(request(a.port, path="/len/3").body, b"abc")
            admin = Admin(a)
            self.assertEqual(admin.server(live.address)["state"], "up")
            m = admin.metrics()
            self.assertEqual(metric(m, "atlas_upstream_failures_total", upstream="api", server=live.address), 0)


class SlowStart(unittest.TestCase):
    """A server back up ramps its weight over slow_start."""

    def test_weight_ramps_after_recovery(self):
        extra = ('health = { path = "/health", interval = "200ms", timeout = "1s", rise = 1, fall = 1 }\n'
                 'slow_start = "60s"')
        with Peer("a") as p:
            servers = ['{ address = "%s", weight = 50 }' % p.address]
            text = config([], extra).replace("servers = []", "servers = [%s]" % servers[0])
            with Atlas(text) as a:
                admin = Admin(a)
                self.assertEqual(admin.server(p.address)["effective_weight"], 50)
                p.kill()
                admin.wait_state(p.address, "down")
                p.start()
                s = admin.wait_state(p.address, "up")
                self.assertEqual(s["weight"], 50)
                self.assertLess(s["effective_weight"], 50)
                self.assertGreaterEqual(s["effective_weight"], 1)


if __name__ == "__main__":
    unittest.main()
