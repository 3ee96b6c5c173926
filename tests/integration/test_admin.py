"""The admin API (core/admin/) through a real atlasd with real python3 upstreams
(backend.py): `atlasd -t` on [admin], the bearer token, the read-only views (/status,
/upstreams, /config, /modules), servers added, removed, drained and taken back at run
time (and the Go seed's POST/DELETE /backends), POST /reload, active health checks as the
API shows them, the Prometheus /metrics (checked with prometheus_text's strict parser,
counts matched against the traffic sent, two workers so per-worker shards are summed) and
the admin listener's own HTTP handling (405 + Allow, 404, HEAD, keep-alive, 400/411/413).

The admin listener is on {port2}; every wait is a poll with a deadline."""

import datetime
import json
import re
import socket
import threading
import time
import unittest

import prometheus_text
from backend import Backend
from harness import (Atlas, build_request, connect, fill, free_port, get, read_response, request,
                     run_bin, run_check, site_config, wait_closed, wait_until)

TOKEN = "s3cret-admin-token-0123456789"


# --------------------------------------------------------------------------- helpers


def config(servers, workers=2, routes=(("/", 'module = "proxy", upstream = "api"'),),
           upstream_extra="", more_upstreams="", admin_extra=""):
    """One upstream "api" (plus `more_upstreams` TOML), one listener "web" on {port} with
    `routes` [(path_prefix, handler table body)], the admin API on {port2}."""
    text = "[server]\nworkers = %d\n\n[upstream.api]\nservers = [%s]\n%s\n%s\n" % (
        workers, ", ".join('"%s"' % s for s in servers), upstream_extra, more_upstreams)
    text += '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
    for prefix, handler in routes:
        text += '\n  [[listener.route]]\n  path_prefix = "%s"\n  handler = { %s }\n' % (prefix, handler)
    text += '\n[admin]\nlisten = "127.0.0.1:{port2}"\n' + admin_extra
    return text


def call(port, method, path, body=None, headers=None, token=None):
    """One admin request on a fresh connection -> (status, Response, parsed JSON or None).
    A dict/list body is sent as JSON (with Content-Type: application/json); bytes as is."""
    hs = {}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        hs["Content-Type"] = "application/json"
    if token is not None:
        hs["Authorization"] = "Bearer " + token
    hs.update(headers or {})
    r = request(port, method, path, headers=hs, body=body or b"")
    doc = None
    if r.body and r.media_type() == "application/json":
        doc = json.loads(r.body)
    return r.status, r, doc


def backends_hit(port, path="/len/1", n=20):
    """X-Backend of n proxied requests, each on its own connection (so they spread over the
    workers); None for a response no backend made."""
    return [get(port, path).header("X-Backend") for _ in range(n)]


def metrics(port, token=None):
    status, r, _ = call(port, "GET", "/metrics", token=token)
    assert status == 200, r
    return prometheus_text.parse(r.body)


def total(families, name, **labels):
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(s.value for s in prometheus_text.samples(families, name, **labels))


def wall(stamp):
    """"2026-12-03T15:08:36.123Z" -> POSIX seconds."""
    m = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert m, "not an ISO-8601 UTC time with milliseconds: %r" % stamp
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def without_since(group):
    return dict(group, servers=[{k: v for k, v in s.items() if k != "since"} for s in group["servers"]])


def server_doc(port, address, upstream="api", token=None):
    status, r, doc = call(port, "GET", "/upstreams/%s/servers/%s" % (upstream, address), token=token)
    assert status == 200, r
    return doc


SERVER_KEYS = {"address", "written", "url", "weight", "effective_weight", "state", "health", "alive",
               "draining", "source", "in_flight", "since", "counters"}
COUNTER_KEYS = {"requests", "retries", "failures", "responses", "pool_hits", "pool_misses"}
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]


def close_started(cls, names):
    """Stops, in order, those of the class's `names` (Atlas, Backend) that were started."""
    for name in names:
        obj = cls.__dict__.get(name)
        if obj is not None:
            obj.__exit__(None, None, None)


class WithBackends:
    """Mixin: b1 and b2 for the whole class; self.start(text) runs an atlasd for one test."""

    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1").__enter__()
        try:
            cls.b2 = Backend("b2").__enter__()
        except BaseException:
            cls.b1.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.b2.__exit__(None, None, None)
        cls.b1.__exit__(None, None, None)

    def start(self, text, **kw):
        a = Atlas(text, **kw).__enter__()
        self.addCleanup(a.__exit__, None, None, None)
        return a

    def assert_reaches(self, port, name):
        wait_until(lambda: name in backends_hit(port, n=4), "%s to get proxied requests" % name)

    def assert_no_longer_reaches(self, port, name, backend):
        """Once the workers took the new membership, no request goes to `backend`."""
        wait_until(lambda: name not in backends_hit(port), "%s to get no more requests" % name)
        before = len(backend.seen)
        names = backends_hit(port)
        self.assertNotIn(name, names)
        self.assertEqual(len(backend.seen), before, "%s still got requests" % name)


# --------------------------------------------------------------------------- atlasd -t


class ConfigCheck(unittest.TestCase):
    """`atlasd -t` on the [admin] table: off loopback a token file is required, and the
    token file must be readable and hold one token of at least 16 visible characters."""

    WWW = {"www/index.html": "x"}

    def check(self, admin, files=None):
        tree = dict(self.WWW)
        tree.update(files or {})
        return run_check(site_config() + "\n[admin]\n" + admin, files=tree)

    def assert_refused(self, admin, needles, files=None):
        rc, out, err = self.check(admin, files)
        self.assertEqual(rc, 1, "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err))
        for n in needles:
            self.assertIn(n, err)

    def test_loopback_without_token_is_accepted(self):
        rc, out, err = self.check('listen = "127.0.0.1:{port2}"\n')
        self.assertEqual(rc, 0, err)

    def test_non_loopback_without_token_is_refused(self):
        self.assert_refused('listen = "0.0.0.0:{port2}"\n', ["admin.listen", "is not a loopback address"])

    def test_non_loopback_with_token_is_accepted(self):
        rc, out, err = self.check('listen = "0.0.0.0:{port2}"\ntoken_file = "admin.token"\n',
                                  {"admin.token": TOKEN + "\n"})
        self.assertEqual(rc, 0, err)

    def test_unreadable_token_file_is_refused(self):
        self.assert_refused('listen = "127.0.0.1:{port2}"\ntoken_file = "no-such.token"\n',
                            ["admin.token_file: cannot read"])

    def test_short_or_spaced_token_is_refused(self):
        for token in ("abc", "fifteen-chars-x", "sixteen chars ok"):
            with self.subTest(token=token):
                self.assert_refused('listen = "127.0.0.1:{port2}"\ntoken_file = "admin.token"\n',
                                    ["admin.token_file", "at least 16 visible characters"],
                                    {"admin.token": token + "\n"})

    def test_token_of_16_characters_is_accepted(self):
        rc, out, err = self.check('listen = "127.0.0.1:{port2}"\ntoken_file = "admin.token"\n',
                                  {"admin.token": "sixteen-chars-ok\n"})
        self.assertEqual(rc, 0, err)


# --------------------------------------------------------------------------- token


class Auth(unittest.TestCase):
    """With admin.token_file every request needs `Authorization: Bearer <token>`: without it
    (or with another one) the answer is 401 with WWW-Authenticate: Bearer, nothing changes."""

    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1").__enter__()
        try:
            cls.atlas = Atlas(config([cls.b1.address], admin_extra='token_file = "admin.token"\n'),
                              files={"admin.token": TOKEN + "\n"}).__enter__()
        except BaseException:
            cls.b1.__exit__(None, None, None)
            raise
        cls.port = cls.atlas.port2

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        cls.b1.__exit__(None, None, None)

    def assert_401(self, status, r, doc):
        self.assertEqual(status, 401, r)
        self.assertTrue((r.header("WWW-Authenticate") or "").startswith("Bearer"), r)
        self.assertIsInstance(doc.get("error"), str)

    def test_every_endpoint_needs_the_token(self):
        for method, path in (("GET", "/status"), ("GET", "/upstreams"), ("GET", "/upstreams/api"),
                             ("GET", "/upstreams/api/servers/" + self.b1.address), ("GET", "/config"),
                             ("GET", "/modules"), ("GET", "/metrics"), ("POST", "/reload"),
                             ("GET", "/no-such-endpoint")):
            with self.subTest(method=method, path=path):
                self.assert_401(*call(self.port, method, path))

    def test_wrong_credentials_are_refused(self):
        for value in ("Bearer wrong-token-0123456789abc", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                      "Bearer", "Bearer ", TOKEN, "Basic YWRtaW46" + TOKEN):
            with self.subTest(authorization=value):
                self.assert_401(*call(self.port, "GET", "/status", headers={"Authorization": value}))

    def test_right_token_is_accepted(self):
        status, r, doc = call(self.port, "GET", "/status", token=TOKEN)
        self.assertEqual(status, 200, r)
        self.assertEqual(doc["total_backends"], 1)
        # the scheme is case-insensitive
        status, r, doc = call(self.port, "GET", "/status", headers={"Authorization": "bearer " + TOKEN})
        self.assertEqual(status, 200, r)

    def test_refused_changes_do_nothing(self):
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers", {"address": "127.0.0.1:9"},
                              token="wrong-token-0123456789abc")
        self.assert_401(status, r, doc)
        self.assert_401(*call(self.port, "POST", "/reload"))
        _, _, doc = call(self.port, "GET", "/upstreams/api", token=TOKEN)
        self.assertEqual([s["address"] for s in doc["servers"]], [self.b1.address])
        self.assertNotIn("hot-reloaded", self.atlas.stderr_text())

    def test_config_view_does_not_show_the_token(self):
        status, r, doc = call(self.port, "GET", "/config", token=TOKEN)
        self.assertEqual(status, 200, r)
        self.assertEqual(doc["config"]["admin"]["token_file"], "admin.token")
        self.assertNotIn(TOKEN.encode(), r.body)


# --------------------------------------------------------------------------- read-only views


class Views(unittest.TestCase):
    """GET /status, /upstreams, /upstreams/{name}[/servers[/{address}]], /config, /modules on
    an atlasd with two configured servers and no traffic."""

    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1").__enter__()
        try:
            cls.b2 = Backend("b2").__enter__()
            cls.started = time.time()
            cls.atlas = Atlas(config([cls.b1.address, cls.b2.address])).__enter__()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.port = cls.atlas.port2

    @classmethod
    def tearDownClass(cls):
        close_started(cls, ("atlas", "b2", "b1"))

    def get(self, path):
        status, r, doc = call(self.port, "GET", path)
        self.assertEqual(status, 200, r)
        self.assertEqual(r.media_type(), "application/json")
        return doc

    def test_status(self):
        doc = self.get("/status")
        self.assertEqual(doc["active_backends"], 2)
        self.assertEqual(doc["total_backends"], 2)
        self.assertEqual(doc["workers"], 2)
        self.assertIsInstance(doc["uptime_s"], int)
        self.assertGreaterEqual(doc["uptime_s"], 0)
        rc, out, err = run_bin(["-v"])
        self.assertRegex(doc["version"], r"^\d+\.\d+")
        self.assertIn("atlasd " + doc["version"], out + err)
        urls = [b["url"] for b in doc["backends"]]
        self.assertEqual(urls, ["http://" + self.b1.address, "http://" + self.b2.address])
        for b in doc["backends"]:
            self.assertEqual((b["alive"], b["current_connections"], b["upstream"], b["state"]),
                             (True, 0, "api", "up"), b)
            self.assertEqual(set(b["counters"]), COUNTER_KEYS)
            self.assertEqual(set(b["counters"]["responses"]), set(CLASSES))
            self.assertEqual(b["counters"]["requests"], 0)

    def test_upstream_list_and_group(self):
        doc = self.get("/upstreams")
        self.assertEqual([g["name"] for g in doc["upstreams"]], ["api"])
        group = self.get("/upstreams/api")
        # the same group both ways ("since" is left out: it is rendered from the clock per call)
        self.assertEqual(without_since(doc["upstreams"][0]), without_since(group))
        self.assertEqual(group["lb"], "round_robin")
        self.assertEqual((group["servers_total"], group["servers_usable"]), (2, 2))
        self.assertEqual([s["address"] for s in group["servers"]], [self.b1.address, self.b2.address])
        self.assertIsInstance(group["retries"], int)
        self.assertEqual(set(group["passive"]), {"fails", "cooldown_ms"})
        self.assertNotIn("health", group)  # none configured
        self.assertNotIn("circuit_breaker", group)

    def test_unknown_upstream_is_404(self):
        for path in ("/upstreams/nope", "/upstreams/nope/servers", "/upstreams/nope/servers/127.0.0.1:1"):
            with self.subTest(path=path):
                status, r, doc = call(self.port, "GET", path)
                self.assertEqual(status, 404, r)
                self.assertIsInstance(doc["error"], str)

    def test_server_list(self):
        doc = self.get("/upstreams/api/servers")
        self.assertEqual(doc["upstream"], "api")
        self.assertEqual([s["address"] for s in doc["servers"]], [self.b1.address, self.b2.address])
        for s in doc["servers"]:
            self.assertEqual(set(s), SERVER_KEYS)  # no checks without health, no changes in lists

    def test_server_detail(self):
        s = self.get("/upstreams/api/servers/" + self.b1.address)
        self.assertEqual(set(s), SERVER_KEYS | {"changes"})
        self.assertEqual(s["address"], self.b1.address)
        self.assertEqual(s["written"], self.b1.address)
        self.assertEqual(s["url"], "http://" + self.b1.address)
        self.assertEqual((s["weight"], s["effective_weight"]), (1, 1))
        self.assertEqual((s["state"], s["health"], s["alive"], s["draining"]), ("up", "up", True, False))
        self.assertEqual((s["source"], s["in_flight"]), ("config", 0))
        self.assertEqual(s["changes"], [])
        self.assertEqual(set(s["counters"]), COUNTER_KEYS)

    def test_unknown_server_is_404(self):
        status, r, doc = call(self.port, "GET", "/upstreams/api/servers/127.0.0.1:1")
        self.assertEqual(status, 404, r)
        self.assertIsInstance(doc["error"], str)

    def test_since_is_not_before_atlasd_started(self):
        # A server that never changed state has been "up" since atlasd took it in: not
        # before atlasd started (5 s of slack for clocks), not in the future.
        for address in (self.b1.address, self.b2.address):
            with self.subTest(address=address):
                s = self.get("/upstreams/api/servers/" + address)
                since = wall(s["since"])
                self.assertGreaterEqual(since, self.started - 5, s["since"])
                self.assertLessEqual(since, time.time() + 5, s["since"])

    def test_config(self):
        doc = self.get("/config")
        self.assertEqual(doc["files"], [self.atlas.path("atlas.toml")])
        c = doc["config"]
        self.assertEqual(c["server"]["workers"], 2)
        self.assertEqual(c["upstream"]["api"]["servers"], [self.b1.address, self.b2.address])
        self.assertEqual(c["listener"][0]["name"], "web")
        self.assertEqual(c["listener"][0]["route"][0]["handler"], {"module": "proxy", "upstream": "api"})
        self.assertEqual(c["admin"]["listen"], "127.0.0.1:%d" % self.atlas.port2)

    def test_modules(self):
        doc = self.get("/modules")
        self.assertEqual(doc["host_abi"], "1.4")
        by_name = {m["name"]: m for m in doc["modules"]}
        self.assertIn("proxy", by_name)
        self.assertIn("lb_round_robin", by_name)
        self.assertEqual(by_name["proxy"]["kinds"], "http_handler")
        self.assertEqual(by_name["lb_round_robin"]["kinds"], "lb_policy")
        for m in doc["modules"]:
            self.assertEqual(set(m), {"name", "version", "description", "abi", "kinds", "path"})
            self.assertEqual(m["abi"], "1.4")
            self.assertTrue(m["path"].endswith("mod_%s.so" % m["name"]), m)


# --------------------------------------------------------------------------- servers at run time


class Membership(WithBackends, unittest.TestCase):
    """POST /upstreams/api/servers adds a server that then gets traffic; DELETE takes it out
    again; bad requests are refused with 400/404/409 and change nothing."""

    def setUp(self):
        self.atlas = self.start(config([self.b1.address]))
        self.port = self.atlas.port2

    def servers(self):
        _, _, doc = call(self.port, "GET", "/upstreams/api/servers")
        return [s["address"] for s in doc["servers"]]

    def test_add_server(self):
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address, "weight": 3})
        self.assertEqual(status, 201, r)
        self.assertEqual(doc["upstream"], "api")
        self.assertEqual(len(doc["added"]), 1)
        added = doc["added"][0]
        self.assertEqual((added["address"], added["weight"], added["source"], added["state"]),
                         (self.b2.address, 3, "admin", "up"))
        self.assertEqual(self.servers(), [self.b1.address, self.b2.address])
        self.assertEqual(server_doc(self.port, self.b2.address)["source"], "admin")
        _, _, group = call(self.port, "GET", "/upstreams/api")
        self.assertEqual((group["servers_total"], group["servers_usable"]), (2, 2))

    def test_added_server_gets_traffic(self):
        before = len(self.b2.seen)
        status, r, _ = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address})
        self.assertEqual(status, 201, r)
        self.assert_reaches(self.atlas.port, "b2")
        self.assertGreater(len(self.b2.seen), before)

    def test_add_by_url(self):
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers", {"url": "http://%s/" % self.b2.address})
        self.assertEqual(status, 201, r)
        self.assertEqual(doc["added"][0]["address"], self.b2.address)
        self.assertEqual(doc["added"][0]["weight"], 1)
        self.assertEqual(self.servers(), [self.b1.address, self.b2.address])

    def test_added_server_since_is_the_time_it_was_added(self):
        t0 = time.time()
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address})
        self.assertEqual(status, 201, r)
        stamp = server_doc(self.port, self.b2.address)["since"]
        self.assertGreaterEqual(wall(stamp), t0 - 5, "since %s: before the server was added" % stamp)
        self.assertLessEqual(wall(stamp), time.time() + 5, stamp)

    def test_same_address_twice_is_409(self):
        status, r, _ = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address})
        self.assertEqual(status, 201, r)
        for address in (self.b2.address, self.b1.address):  # added before / from the config
            with self.subTest(address=address):
                status, r, doc = call(self.port, "POST", "/upstreams/api/servers", {"address": address})
                self.assertEqual(status, 409, r)
                self.assertIsInstance(doc["error"], str)
        self.assertEqual(self.servers(), [self.b1.address, self.b2.address])

    def test_bad_bodies_are_400(self):
        ok = '"address": "%s"' % self.b2.address
        bodies = [b"{", b"", b"[]", b'"127.0.0.1:9"', b"{}", b'{"weight": 2}',
                  b'{"address": "nope"}', b'{"address": "127.0.0.1:0"}', b'{"address": "127.0.0.1"}',
                  b'{"address": "127.0.0.1:70000"}', b'{"address": 5}', b'{"url": "http://127.0.0.1:9/x"}',
                  ("{%s, \"weight\": 0}" % ok).encode(), ("{%s, \"weight\": \"x\"}" % ok).encode(),
                  ("{%s, \"weight\": 4294967296}" % ok).encode(), ("{%s, \"weight\": -1}" % ok).encode(),
                  ("{%s, \"weight\": 1.5}" % ok).encode(), ("{%s, \"colour\": \"red\"}" % ok).encode()]
        for body in bodies:
            with self.subTest(body=body):
                status, r, doc = call(self.port, "POST", "/upstreams/api/servers", body,
                                      headers={"Content-Type": "application/json"})
                self.assertEqual(status, 400, r)
                self.assertIsInstance(doc["error"], str)
        self.assertEqual(self.servers(), [self.b1.address])

    def test_upstream_key_in_the_body_is_400(self):
        # "upstream" belongs to the seed's POST /backends; here the upstream is in the path,
        # so it is an unknown key like any other (not one silently ignored).
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers",
                              {"address": self.b2.address, "upstream": "other"})
        self.assertEqual(status, 400, r)
        self.assertIsInstance(doc["error"], str)
        self.assertEqual(self.servers(), [self.b1.address])

    def test_unknown_upstream_is_404(self):
        status, r, doc = call(self.port, "POST", "/upstreams/nope/servers", {"address": self.b2.address})
        self.assertEqual(status, 404, r)
        self.assertIsInstance(doc["error"], str)

    def test_remove_server(self):
        status, r, _ = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address})
        self.assertEqual(status, 201, r)
        self.assert_reaches(self.atlas.port, "b2")
        status, r, doc = call(self.port, "DELETE", "/upstreams/api/servers/" + self.b2.address)
        self.assertEqual(status, 200, r)
        self.assertEqual(doc, {"upstream": "api", "removed": self.b2.address})
        self.assertEqual(self.servers(), [self.b1.address])
        status, r, _ = call(self.port, "GET", "/upstreams/api/servers/" + self.b2.address)
        self.assertEqual(status, 404, r)
        self.assert_no_longer_reaches(self.atlas.port, "b2", self.b2)

    def test_remove_config_server(self):
        status, r, _ = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address})
        self.assertEqual(status, 201, r)
        status, r, doc = call(self.port, "DELETE", "/upstreams/api/servers/" + self.b1.address)
        self.assertEqual(status, 200, r)
        self.assertEqual(doc["removed"], self.b1.address)
        self.assertEqual(self.servers(), [self.b2.address])
        self.assert_no_longer_reaches(self.atlas.port, "b1", self.b1)

    def test_remove_unknown_is_404(self):
        status, r, doc = call(self.port, "DELETE", "/upstreams/api/servers/127.0.0.1:9")
        self.assertEqual(status, 404, r)
        self.assertIsInstance(doc["error"], str)
        self.assertEqual(self.servers(), [self.b1.address])


class Drain(WithBackends, unittest.TestCase):
    """POST .../drain: the server takes no new requests, shows "draining" while requests are
    in flight and "drained" after; POST .../ready puts it back in use."""

    def test_drain_and_ready(self):
        a = self.start(config([self.b1.address, self.b2.address]))
        self.assert_reaches(a.port, "b1")
        status, r, doc = call(a.port2, "POST", "/upstreams/api/servers/%s/drain" % self.b1.address)
        self.assertEqual(status, 200, r)
        self.assertEqual((doc["address"], doc["draining"], doc["alive"], doc["state"]),
                         (self.b1.address, True, False, "drained"))
        _, _, group = call(a.port2, "GET", "/upstreams/api")
        self.assertEqual((group["servers_total"], group["servers_usable"]), (2, 1))
        _, _, st = call(a.port2, "GET", "/status")
        self.assertEqual(st["active_backends"], 1)
        self.assertEqual([b["state"] for b in st["backends"]], ["drained", "up"])
        self.assert_no_longer_reaches(a.port, "b1", self.b1)

        status, r, doc = call(a.port2, "POST", "/upstreams/api/servers/%s/ready" % self.b1.address)
        self.assertEqual(status, 200, r)
        self.assertEqual((doc["draining"], doc["alive"], doc["state"]), (False, True, "up"))
        self.assert_reaches(a.port, "b1")

    def test_drain_waits_for_requests_in_flight(self):
        with Backend("h1") as h1, Atlas(config([h1.address])) as a:
            held = []
            t = threading.Thread(target=lambda: held.append(get(a.port, "/hold", timeout=60)))
            t.start()
            try:
                wait_until(lambda: server_doc(a.port2, h1.address)["in_flight"] == 1, "the held request")
                status, r, doc = call(a.port2, "POST", "/upstreams/api/servers/%s/drain" % h1.address)
                self.assertEqual(status, 200, r)
                self.assertEqual((doc["state"], doc["in_flight"], doc["draining"]), ("draining", 1, True))
                self.assertEqual(server_doc(a.port2, h1.address)["state"], "draining")
                m = metrics(a.port2)
                lbl = {"upstream": "api", "server": h1.address}
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_in_flight", **lbl), 1)
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_up", **lbl), 0)
                # no new request goes to a draining server: with no other server, it is a 503
                seen = len(h1.seen)
                r = get(a.port, "/len/3")
                self.assertEqual(r.status, 503, r)
                self.assertEqual(len(h1.seen), seen)
            finally:
                h1.release()
                t.join(timeout=60)
            self.assertEqual([x.status for x in held], [200])
            s = wait_until(lambda: (lambda d: d if d["state"] == "drained" else None)(server_doc(a.port2, h1.address)),
                           "the server to be drained")
            self.assertEqual(s["in_flight"], 0)

    def test_drain_unknown_server_is_404(self):
        a = self.start(config([self.b1.address]))
        for action in ("drain", "ready"):
            with self.subTest(action=action):
                status, r, doc = call(a.port2, "POST", "/upstreams/api/servers/127.0.0.1:9/" + action)
                self.assertEqual(status, 404, r)
                self.assertIsInstance(doc["error"], str)


class SeedBackends(WithBackends, unittest.TestCase):
    """The Go seed's API: POST/DELETE /backends {"url": "http://ip:port"} on the only
    upstream, or on the one named by "upstream" (required when there are several)."""

    def test_add_and_remove_on_the_only_upstream(self):
        a = self.start(config([self.b1.address]))
        url = "http://" + self.b2.address
        status, r, doc = call(a.port2, "POST", "/backends", {"url": url})
        self.assertEqual(status, 201, r)
        self.assertEqual((doc["upstream"], doc["added"][0]["address"]), ("api", self.b2.address))
        _, _, st = call(a.port2, "GET", "/status")
        self.assertEqual([b["url"] for b in st["backends"]], ["http://" + self.b1.address, url])
        self.assert_reaches(a.port, "b2")

        status, r, doc = call(a.port2, "DELETE", "/backends", {"url": url})
        self.assertEqual(status, 200, r)
        self.assertEqual(doc, {"upstream": "api", "removed": self.b2.address})
        _, _, st = call(a.port2, "GET", "/status")
        self.assertEqual(st["total_backends"], 1)
        self.assert_no_longer_reaches(a.port, "b2", self.b2)

    def test_remove_unknown_is_404(self):
        a = self.start(config([self.b1.address]))
        status, r, doc = call(a.port2, "DELETE", "/backends", {"url": "http://127.0.0.1:9"})
        self.assertEqual(status, 404, r)
        self.assertIsInstance(doc["error"], str)

    def test_several_upstreams_need_a_name(self):
        a = self.start(config([self.b1.address], more_upstreams='[upstream.other]\nservers = ["127.0.0.1:9"]\n'))
        url = "http://" + self.b2.address
        for method in ("POST", "DELETE"):
            with self.subTest(method=method):
                status, r, doc = call(a.port2, method, "/backends", {"url": url})
                self.assertEqual(status, 400, r)
                self.assertIsInstance(doc["error"], str)
        status, r, doc = call(a.port2, "POST", "/backends", {"url": url, "upstream": "nope"})
        self.assertEqual(status, 404, r)
        status, r, doc = call(a.port2, "POST", "/backends", {"url": url, "upstream": "other"})
        self.assertEqual(status, 201, r)
        self.assertEqual(doc["upstream"], "other")
        _, _, g = call(a.port2, "GET", "/upstreams/other")
        self.assertEqual([s["address"] for s in g["servers"]], ["127.0.0.1:9", self.b2.address])
        _, _, g = call(a.port2, "GET", "/upstreams/api")
        self.assertEqual([s["address"] for s in g["servers"]], [self.b1.address])


# --------------------------------------------------------------------------- reload


class Reload(WithBackends, unittest.TestCase):
    """POST /reload re-reads the config files: a good one is taken (new routes serve, admin
    changes survive), a broken one is refused with one line per error and the old one
    keeps serving."""

    WWW = {"s/hello.txt": "hello from www\n"}  # the static root is not stripped of /s/

    def setUp(self):
        self.atlas = self.start(self.text(), www=self.WWW)
        self.port = self.atlas.port2

    def text(self, **kw):
        kw.setdefault("routes", [("/api/", 'module = "proxy", upstream = "api"')])
        return config([self.b1.address], **kw)

    def rewrite(self, text):
        with open(self.atlas.path("atlas.toml"), "w") as f:
            f.write(fill(text, self.atlas.ports))

    def reload_ok(self):
        status, r, doc = call(self.port, "POST", "/reload")
        self.assertEqual(status, 200, r)
        self.assertEqual(doc, {"reloaded": True})

    def test_reload_is_logged(self):
        self.reload_ok()
        wait_until(lambda: "Configuration hot-reloaded" in self.atlas.stderr_text(), "the reload's log line")

    def test_reload_adds_a_static_route(self):
        self.assertEqual(get(self.atlas.port, "/s/hello.txt").status, 404)
        routes = [("/api/", 'module = "proxy", upstream = "api"'), ("/s/", 'module = "static", root = "www"')]
        self.rewrite(self.text(routes=routes))
        self.reload_ok()
        r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(get(self.atlas.port, "/s/hello.txt")),
                       "the new route to serve")
        self.assertEqual(r.body, b"hello from www\n")
        self.assertEqual(get(self.atlas.port, "/api/len/3").header("X-Backend"), "b1")

    def test_reload_adds_a_proxy_route_to_a_new_upstream(self):
        routes = [("/api/", 'module = "proxy", upstream = "api"'), ("/two/", 'module = "proxy", upstream = "second"')]
        self.rewrite(self.text(routes=routes, more_upstreams='[upstream.second]\nservers = ["%s"]\n' % self.b2.address))
        self.reload_ok()
        wait_until(lambda: get(self.atlas.port, "/two/len/2").header("X-Backend") == "b2", "the new route")
        _, _, doc = call(self.port, "GET", "/upstreams")
        self.assertEqual([g["name"] for g in doc["upstreams"]], ["api", "second"])

    def test_config_view_follows_the_reload(self):
        routes = [("/api/", 'module = "proxy", upstream = "api"'), ("/s/", 'module = "static", root = "www"')]
        self.rewrite(self.text(routes=routes))
        self.reload_ok()
        _, _, doc = call(self.port, "GET", "/config")
        self.assertEqual([r["path_prefix"] for r in doc["config"]["listener"][0]["route"]], ["/api/", "/s/"])

    def test_broken_config_is_refused_and_the_old_one_serves(self):
        _, _, before = call(self.port, "GET", "/config")
        self.rewrite(self.text(upstream_extra='colour = "red"\n',
                               more_upstreams='[upstream.extra]\nservers = ["nope"]\n'))
        status, r, doc = call(self.port, "POST", "/reload")
        self.assertEqual(status, 400, r)
        self.assertIsInstance(doc["error"], str)
        errors = doc["errors"]
        self.assertEqual(len(errors), 2, errors)
        for key in ("upstream.api.colour", "upstream.extra.servers[0]"):
            lines = [e for e in errors if key in e]
            self.assertEqual(len(lines), 1, (key, errors))
            self.assertIn("atlas.toml", lines[0])
        for line in errors:
            self.assertNotIn("\n", line)
        # the old configuration is still the one in use
        _, _, after = call(self.port, "GET", "/config")
        self.assertEqual(after, before)
        _, _, ups = call(self.port, "GET", "/upstreams")
        self.assertEqual([g["name"] for g in ups["upstreams"]], ["api"])
        self.assertEqual(get(self.atlas.port, "/api/len/3").header("X-Backend"), "b1")
        self.assertNotIn("hot-reloaded", self.atlas.stderr_text())
        # and a fixed file reloads
        self.rewrite(self.text())
        self.reload_ok()

    def test_changing_workers_is_refused(self):
        self.rewrite(self.text(workers=3))
        status, r, doc = call(self.port, "POST", "/reload")
        self.assertEqual(status, 400, r)
        self.assertTrue(any("server.workers" in e for e in doc["errors"]), doc)
        _, _, st = call(self.port, "GET", "/status")
        self.assertEqual(st["workers"], 2)

    def test_admin_added_server_survives_a_reload(self):
        status, r, _ = call(self.port, "POST", "/upstreams/api/servers", {"address": self.b2.address, "weight": 2})
        self.assertEqual(status, 201, r)
        self.reload_ok()
        s = server_doc(self.port, self.b2.address)
        self.assertEqual((s["source"], s["weight"]), ("admin", 2))
        _, _, g = call(self.port, "GET", "/upstreams/api")
        self.assertEqual([x["address"] for x in g["servers"]], [self.b1.address, self.b2.address])
        wait_until(lambda: "b2" in backends_hit(self.atlas.port, "/api/len/1", 4), "b2 to get traffic")


# --------------------------------------------------------------------------- health checks


class Health(WithBackends, unittest.TestCase):
    """With active health checks configured, a server shows its checks (passed, failed,
    last) and its state changes; a server that refuses connections goes down."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dead = "127.0.0.1:%d" % free_port()
        extra = ('health = { path = "/status/200", interval = "100ms", rise = 1, fall = 1 }\n'
                 'circuit_breaker = { failures = 5, cooldown = "20s" }\n')
        try:
            cls.atlas = Atlas(config([cls.b1.address, cls.dead], upstream_extra=extra)).__enter__()
        except BaseException:
            super().tearDownClass()
            raise
        cls.port = cls.atlas.port2

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        super().tearDownClass()

    def test_group_shows_the_settings(self):
        _, _, g = call(self.port, "GET", "/upstreams/api")
        h = g["health"]
        self.assertEqual(set(h), {"type", "path", "interval_ms", "timeout_ms", "rise", "fall"})
        self.assertEqual((h["type"], h["path"], h["interval_ms"], h["rise"], h["fall"]),
                         ("http", "/status/200", 100, 1, 1))
        self.assertIsInstance(h["timeout_ms"], int)
        self.assertGreater(h["timeout_ms"], 0)
        self.assertEqual(g["circuit_breaker"], {"failures": 5, "cooldown_ms": 20000})

    def test_passing_checks(self):
        s = wait_until(lambda: (lambda d: d if d["checks"]["passed"] >= 2 else None)(server_doc(self.port, self.b1.address)),
                       "two passed checks")
        self.assertEqual(s["checks"]["failed"], 0)
        last = s["checks"]["last"]
        self.assertTrue(last["ok"])
        self.assertIn("200", last["detail"])
        self.assertLessEqual(abs(wall(last["at"]) - time.time()), 60)
        self.assertEqual((s["state"], s["alive"], s["changes"]), ("up", True, []))
        self.assertTrue(any(p == "/status/200" for _, p, _ in self.b1.seen))

    def test_refusing_server_goes_down(self):
        s = wait_until(lambda: (lambda d: d if d["state"] == "down" else None)(server_doc(self.port, self.dead)),
                       "the dead server to be down")
        self.assertEqual((s["health"], s["alive"]), ("down", False))
        self.assertGreaterEqual(s["checks"]["failed"], 1)
        self.assertEqual(s["checks"]["passed"], 0)
        self.assertFalse(s["checks"]["last"]["ok"])
        self.assertTrue(s["checks"]["last"]["detail"])
        change = s["changes"][0]
        self.assertEqual((change["from"], change["to"]), ("up", "down"))
        self.assertTrue(change["reason"])
        # the same instant (rendered by two clock readings: a millisecond apart at most)
        self.assertLessEqual(abs(wall(s["since"]) - wall(change["at"])), 0.5, (s["since"], change["at"]))
        _, _, g = call(self.port, "GET", "/upstreams/api")
        self.assertEqual((g["servers_total"], g["servers_usable"]), (2, 1))
        _, _, st = call(self.port, "GET", "/status")
        self.assertEqual((st["active_backends"], st["total_backends"]), (1, 2))

    def test_check_metrics(self):
        wait_until(lambda: server_doc(self.port, self.dead)["state"] == "down", "the dead server to be down")
        live = {"upstream": "api", "server": self.b1.address}
        dead = {"upstream": "api", "server": self.dead}
        m = wait_until(lambda: (lambda m: m if prometheus_text.value(
            m, "atlas_upstream_health_checks_total", result="pass", **live) >= 1 else None)(metrics(self.port)),
            "a passed check in the metrics")
        self.assertEqual(prometheus_text.value(m, "atlas_upstream_health_checks_total", result="fail", **live), 0)
        self.assertGreaterEqual(prometheus_text.value(m, "atlas_upstream_health_checks_total", result="fail", **dead), 1)
        self.assertEqual(prometheus_text.value(m, "atlas_upstream_health_checks_total", result="pass", **dead), 0)
        self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_up", **live), 1)
        self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_up", **dead), 0)
        for state in ("up", "down", "open", "half_open"):
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_state", state=state, **dead),
                             1 if state == "down" else 0, state)
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_state", state=state, **live),
                             1 if state == "up" else 0, state)

    def test_traffic_goes_to_the_live_server(self):
        wait_until(lambda: server_doc(self.port, self.dead)["state"] == "down", "the dead server to be down")
        self.assertEqual(set(backends_hit(self.atlas.port, n=6)), {"b1"})


# --------------------------------------------------------------------------- metrics


FAMILIES = {
    "atlas_build_info": "gauge",
    "atlas_http_requests_total": "counter",
    "atlas_http_request_duration_seconds": "histogram",
    "atlas_connections_open": "gauge",
    "atlas_connections_accepted_total": "counter",
    "atlas_upstream_requests_total": "counter",
    "atlas_upstream_responses_total": "counter",
    "atlas_upstream_failures_total": "counter",
    "atlas_upstream_retries_total": "counter",
    "atlas_upstream_pool_hits_total": "counter",
    "atlas_upstream_pool_misses_total": "counter",
    "atlas_upstream_in_flight": "gauge",
    "atlas_upstream_server_up": "gauge",
    "atlas_upstream_server_state": "gauge",
    "atlas_upstream_health_checks_total": "counter",
    "atlas_upstream_response_duration_seconds": "histogram",
    "atlas_upstream_unavailable_total": "counter",
    "atlas_upstream_retry_budget_exhausted_total": "counter",
}
ROUTE = "listener.web.route[0]"


class Metrics(unittest.TestCase):
    """GET /metrics on an atlasd with two workers, two servers and one proxy route on /api/
    (anything else is unrouted): the format, the families and their types, and counts that
    match the traffic each test sends (as differences, tests run one after the other)."""

    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1").__enter__()
        try:
            cls.b2 = Backend("b2").__enter__()
            cls.atlas = Atlas(config([cls.b1.address, cls.b2.address],
                                     routes=[("/api/", 'module = "proxy", upstream = "api"')])).__enter__()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.port = cls.atlas.port2
        cls.servers = [cls.b1.address, cls.b2.address]

    @classmethod
    def tearDownClass(cls):
        close_started(cls, ("atlas", "b2", "b1"))

    def settle(self, fn, want, what):
        """Poll the metrics until fn(families) reaches want; then it must be exactly want."""
        m = wait_until(lambda: (lambda m: m if fn(m) >= want else None)(metrics(self.port)), what)
        self.assertEqual(fn(m), want, what)
        return m

    def route(self, m, code, route=ROUTE):
        return prometheus_text.value(m, "atlas_http_requests_total", listener="web", route=route, code=code)

    def test_content_type(self):
        status, r, _ = call(self.port, "GET", "/metrics")
        self.assertEqual(status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        prometheus_text.parse(r.body)  # raises on any format error

    def test_families_and_types(self):
        m = metrics(self.port)
        for name, kind in FAMILIES.items():
            with self.subTest(family=name):
                self.assertIn(name, m)
                self.assertEqual(m[name].type, kind)
                self.assertTrue(m[name].samples, "no samples")

    def test_labels(self):
        m = metrics(self.port)
        for name in ("atlas_upstream_requests_total", "atlas_upstream_failures_total", "atlas_upstream_in_flight",
                     "atlas_upstream_server_up", "atlas_upstream_pool_hits_total"):
            with self.subTest(family=name):
                self.assertEqual(sorted(s.labels["server"] for s in m[name].samples), sorted(self.servers))
                for s in m[name].samples:
                    self.assertEqual(set(s.labels), {"upstream", "server"})
                    self.assertEqual(s.labels["upstream"], "api")
        codes = {s.labels["code"] for s in m["atlas_http_requests_total"].samples}
        self.assertEqual(codes, set(CLASSES))
        routes = {s.labels["route"] for s in m["atlas_http_requests_total"].samples}
        self.assertEqual(routes, {ROUTE, "none"})
        states = {s.labels["state"] for s in m["atlas_upstream_server_state"].samples}
        self.assertEqual(states, {"up", "down", "open", "half_open"})
        results = {s.labels["result"] for s in m["atlas_upstream_health_checks_total"].samples}
        self.assertEqual(results, {"pass", "fail"})

    def test_build_info(self):
        m = metrics(self.port)
        (sample,) = m["atlas_build_info"].samples
        self.assertEqual(sample.value, 1)
        self.assertEqual(sample.labels["abi"], "1.4")
        _, _, st = call(self.port, "GET", "/status")
        self.assertEqual(sample.labels["version"], st["version"])

    def test_proxied_requests_are_counted(self):
        n = 20
        before = metrics(self.port)
        names = backends_hit(self.atlas.port, "/api/len/5", n)
        self.assertEqual(sorted(set(names)), ["b1", "b2"])
        m = self.settle(lambda m: self.route(m, "2xx") - self.route(before, "2xx"), n, "route 2xx")
        for name in ("atlas_upstream_requests_total", "atlas_upstream_responses_total"):
            delta = total(m, name) - total(before, name)
            self.assertEqual(delta, n, name)
        self.assertEqual(total(m, "atlas_upstream_responses_total", code="2xx")
                         - total(before, "atlas_upstream_responses_total", code="2xx"), n)
        for code in ("1xx", "3xx", "4xx", "5xx"):
            self.assertEqual(self.route(m, code), self.route(before, code), code)
        for name in ("atlas_upstream_failures_total", "atlas_upstream_retries_total"):
            self.assertEqual(total(m, name), total(before, name), name)
        # every attempt either reused a pooled connection or opened one
        used = (total(m, "atlas_upstream_pool_hits_total") + total(m, "atlas_upstream_pool_misses_total")
                - total(before, "atlas_upstream_pool_hits_total") - total(before, "atlas_upstream_pool_misses_total"))
        self.assertEqual(used, n)

    def test_per_server_counts_match_status(self):
        n = 10
        before = metrics(self.port)
        backends_hit(self.atlas.port, "/api/len/5", n)
        self.settle(lambda m: self.route(m, "2xx") - self.route(before, "2xx"), n, "route 2xx")
        _, _, st = call(self.port, "GET", "/status")
        m = metrics(self.port)
        by_url = {b["url"]: b["counters"] for b in st["backends"]}
        for address in self.servers:
            with self.subTest(server=address):
                c = by_url["http://" + address]
                lbl = {"upstream": "api", "server": address}
                self.assertGreater(c["requests"], 0)
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_requests_total", **lbl), c["requests"])
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_failures_total", **lbl), c["failures"])
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_retries_total", **lbl), c["retries"])
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_pool_hits_total", **lbl), c["pool_hits"])
                self.assertEqual(prometheus_text.value(m, "atlas_upstream_pool_misses_total", **lbl), c["pool_misses"])
                for code in CLASSES:
                    self.assertEqual(prometheus_text.value(m, "atlas_upstream_responses_total", code=code, **lbl),
                                     c["responses"][code], code)

    def test_pooled_connections_are_hits(self):
        n = 10
        before = metrics(self.port)
        with connect(self.atlas.port) as s:
            for _ in range(n):
                s.sendall(build_request("GET", "/api/len/2"))
                self.assertEqual(read_response(s).status, 200)
        m = self.settle(lambda m: (total(m, "atlas_upstream_pool_hits_total") + total(m, "atlas_upstream_pool_misses_total")
                                   - total(before, "atlas_upstream_pool_hits_total")
                                   - total(before, "atlas_upstream_pool_misses_total")), n, "pool hits + misses")
        hits = total(m, "atlas_upstream_pool_hits_total") - total(before, "atlas_upstream_pool_hits_total")
        self.assertGreaterEqual(hits, n - 2, "one client connection, one worker: at most one new "
                                             "upstream connection per server")

    def test_upstream_error_status_is_counted(self):
        before = metrics(self.port)
        self.assertEqual(get(self.atlas.port, "/api/status/404").status, 404)
        m = self.settle(lambda m: self.route(m, "4xx") - self.route(before, "4xx"), 1, "route 4xx")
        self.assertEqual(total(m, "atlas_upstream_responses_total", code="4xx")
                         - total(before, "atlas_upstream_responses_total", code="4xx"), 1)
        self.assertEqual(self.route(m, "4xx", "none"), self.route(before, "4xx", "none"))

    def test_unrouted_requests_count_under_none(self):
        before = metrics(self.port)
        for _ in range(3):
            self.assertEqual(get(self.atlas.port, "/elsewhere").status, 404)
        m = self.settle(lambda m: self.route(m, "4xx", "none") - self.route(before, "4xx", "none"), 3, "route none 4xx")
        self.assertEqual(self.route(m, "4xx"), self.route(before, "4xx"))
        self.assertEqual(total(m, "atlas_upstream_requests_total"), total(before, "atlas_upstream_requests_total"))
        count = lambda fam: prometheus_text.value(fam, "atlas_http_request_duration_seconds_count",
                                                  listener="web", route="none")
        self.assertEqual(count(m) - count(before), 3)

    def test_histograms(self):
        n = 7
        before = metrics(self.port)
        backends_hit(self.atlas.port, "/api/len/5", n)
        self.settle(lambda m: self.route(m, "2xx") - self.route(before, "2xx"), n, "route 2xx")

        def count(fam, name, **lbl):
            return prometheus_text.value(fam, name + "_count", **lbl)

        m = self.settle(lambda m: count(m, "atlas_http_request_duration_seconds", listener="web", route=ROUTE)
                        - count(before, "atlas_http_request_duration_seconds", listener="web", route=ROUTE),
                        n, "route duration count")
        up = total(m, "atlas_upstream_response_duration_seconds_count") \
            - total(before, "atlas_upstream_response_duration_seconds_count")
        self.assertEqual(up, n)
        for name, lbl in (("atlas_http_request_duration_seconds", {"listener": "web", "route": ROUTE}),
                          ("atlas_upstream_response_duration_seconds", {"upstream": "api", "server": self.b1.address})):
            with self.subTest(histogram=name):
                buckets = prometheus_text.samples(m, name + "_bucket", **lbl)
                self.assertGreater(len(buckets), 1)
                values = [b.value for b in buckets]
                self.assertEqual(values, sorted(values))
                self.assertEqual(buckets[-1].labels["le"], "+Inf")
                self.assertEqual(values[-1], prometheus_text.value(m, name + "_count", **lbl))
                self.assertGreaterEqual(prometheus_text.value(m, name + "_sum", **lbl), 0)

    def test_connections(self):
        k = 5
        acc = lambda m: prometheus_text.value(m, "atlas_connections_accepted_total", listener="web")
        before = metrics(self.port)
        for _ in range(k):
            get(self.atlas.port, "/elsewhere")
        self.settle(lambda m: acc(m) - acc(before), k, "accepted connections")
        wait_until(lambda: prometheus_text.value(metrics(self.port), "atlas_connections_open", listener="web") == 0,
                   "no open connection")
        with connect(self.atlas.port) as s:
            s.sendall(build_request("GET", "/elsewhere"))
            read_response(s)
            wait_until(lambda: prometheus_text.value(metrics(self.port), "atlas_connections_open", listener="web") == 1,
                       "one open connection")


class MetricsFailures(unittest.TestCase):
    """A server that refuses connections: its failed attempts, then the 503s once it is
    down, in /metrics and /status."""

    def test_failures_and_unavailable(self):
        dead = "127.0.0.1:%d" % free_port()
        with Atlas(config([dead])) as a:
            statuses = []

            def next_is_503():
                statuses.append(get(a.port, "/x").status)
                return statuses[-1] == 503

            wait_until(next_is_503, "a 503 once the server is down")
            self.assertEqual(statuses[0], 502)
            self.assertEqual(set(statuses), {502, 503})
            lbl = {"upstream": "api", "server": dead}
            wait_until(lambda: prometheus_text.value(metrics(a.port2), "atlas_http_requests_total", listener="web",
                                                     route=ROUTE, code="5xx") >= len(statuses), "the 5xx counted")
            m = metrics(a.port2)
            attempts = prometheus_text.value(m, "atlas_upstream_requests_total", **lbl)
            self.assertGreaterEqual(attempts, 1)
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_failures_total", **lbl), attempts)
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_unavailable_total", upstream="api"),
                             statuses.count(503))
            self.assertEqual(prometheus_text.value(m, "atlas_http_requests_total", listener="web", route=ROUTE,
                                                   code="5xx"), len(statuses))
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_up", **lbl), 0)
            self.assertEqual(prometheus_text.value(m, "atlas_upstream_server_state", state="down", **lbl), 1)
            self.assertGreaterEqual(prometheus_text.value(m, "atlas_upstream_state_changes_total", **lbl), 1)
            _, _, st = call(a.port2, "GET", "/status")
            self.assertEqual(st["backends"][0]["counters"]["failures"], attempts)
            self.assertEqual(st["backends"][0]["state"], "down")


class MetricsAcrossReloads(unittest.TestCase):
    """A reload does not start the listener and route counters again from zero, and a
    keep-alive connection opened before it goes on counting (in requests and as open)."""

    def test_counters_survive_a_reload(self):
        with Backend("b1") as b1, Atlas(config([b1.address], routes=[("/api/", 'module = "proxy", upstream = "api"')])) as a:
            def counts():
                m = metrics(a.port2)
                return (prometheus_text.value(m, "atlas_http_requests_total", listener="web", route=ROUTE, code="2xx"),
                        prometheus_text.value(m, "atlas_connections_open", listener="web"),
                        prometheus_text.value(m, "atlas_connections_accepted_total", listener="web"))

            with connect(a.port) as s:
                for _ in range(3):
                    s.sendall(build_request("GET", "/api/len/1"))
                    self.assertEqual(read_response(s).status, 200)
                before = wait_until(lambda: (lambda c: c if c[0] == 3 else None)(counts()), "3 requests counted")
                self.assertEqual(before[1], 1)
                status, r, _ = call(a.port2, "POST", "/reload")
                self.assertEqual(status, 200, r)
                for _ in range(2):  # the old connection, on the config it started with
                    s.sendall(build_request("GET", "/api/len/1"))
                    self.assertEqual(read_response(s).status, 200)
                self.assertEqual(get(a.port, "/api/len/1").status, 200)  # a new one
                # The new connection's close reaches the worker after its response has
                # reached us, so wait for the gauge to come back down as well.
                after = wait_until(lambda: (lambda c: c if c[0] == 6 and c[1] == 1 else None)(counts()),
                                   "6 requests counted across the reload, 1 connection (the old one) open")
                self.assertEqual(after[2], before[2] + 1)


# --------------------------------------------------------------------------- the admin listener


class AdminHttp(unittest.TestCase):
    """The admin listener's HTTP: 405 with Allow, 404, HEAD, keep-alive in order, and the
    connection closed after a malformed request (400), a chunked body (411) or one over
    1 MiB (413)."""

    @classmethod
    def setUpClass(cls):
        cls.b1 = Backend("b1").__enter__()
        try:
            cls.atlas = Atlas(config([cls.b1.address])).__enter__()
        except BaseException:
            cls.b1.__exit__(None, None, None)
            raise
        cls.port = cls.atlas.port2
        cls.server_path = "/upstreams/api/servers/" + cls.b1.address

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        cls.b1.__exit__(None, None, None)

    def test_wrong_method_is_405_with_allow(self):
        for method, path, allow in (("PUT", "/status", "GET, HEAD"), ("POST", "/metrics", "GET, HEAD"),
                                    ("DELETE", "/config", "GET, HEAD"), ("POST", "/modules", "GET, HEAD"),
                                    ("GET", "/reload", "POST"), ("PUT", "/upstreams", "GET, HEAD"),
                                    ("DELETE", "/upstreams/api", "GET, HEAD"),
                                    ("PUT", "/upstreams/api/servers", "GET, HEAD, POST"),
                                    ("POST", self.server_path, "GET, HEAD, DELETE"),
                                    ("GET", self.server_path + "/drain", "POST"),
                                    ("DELETE", self.server_path + "/ready", "POST"),
                                    ("PUT", "/backends", "GET, HEAD, POST, DELETE")):
            with self.subTest(method=method, path=path):
                status, r, doc = call(self.port, method, path)
                self.assertEqual(status, 405, r)
                self.assertEqual(r.header("Allow"), allow)
                self.assertIsInstance(doc["error"], str)
        _, _, doc = call(self.port, "GET", self.server_path)
        self.assertFalse(doc["draining"])  # the GET on /drain drained nothing

    def test_unknown_path_is_404(self):
        for path in ("/nothing", "/status/more", "/upstreams/api/bogus", self.server_path + "/bogus"):
            with self.subTest(path=path):
                status, r, doc = call(self.port, "GET", path)
                self.assertEqual(status, 404, r)
                self.assertIsInstance(doc["error"], str)

    def test_head_has_no_body(self):
        with connect(self.port) as s:
            s.sendall(build_request("HEAD", "/modules"))
            r = read_response(s, head=True)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.media_type(), "application/json")
            # nothing but the head came: the next response on the connection parses
            s.sendall(build_request("GET", "/modules", headers=[("Connection", "close")]))
            r2 = read_response(s)
            self.assertEqual(r2.status, 200)
            self.assertEqual(json.loads(r2.body)["host_abi"], "1.4")
            closed, extra = wait_closed(s)
            self.assertTrue(closed)
            self.assertEqual(extra, b"")
        status, r, doc = call(self.port, "HEAD", "/nothing")
        self.assertEqual((status, r.body), (404, b""))

    def test_head_content_length_is_the_get_length(self):
        # RFC 9110 9.3.2/8.6: a Content-Length in a HEAD response is the GET's length.
        for path in ("/modules", "/config"):
            with self.subTest(path=path):
                status, g, _ = call(self.port, "GET", path)
                status, h, _ = call(self.port, "HEAD", path)
                self.assertEqual(h.status, 200)
                if h.header("Content-Length") is not None:
                    self.assertEqual(int(h.header("Content-Length")), len(g.body), h)

    def test_keep_alive_answers_in_order(self):
        with connect(self.port) as s:
            for path, status in (("/modules", 200), ("/nothing", 404), ("/upstreams/api", 200)):
                s.sendall(build_request("GET", path))
                r = read_response(s)
                self.assertEqual(r.status, status, path)
                self.assertFalse(r.closes(), r)
            # pipelined: three at once, answered one after the other
            s.sendall(build_request("GET", "/upstreams/api") + build_request("GET", "/nothing")
                      + build_request("GET", "/modules"))
            r1, r2, r3 = read_response(s), read_response(s), read_response(s)
        self.assertEqual([r1.status, r2.status, r3.status], [200, 404, 200])
        self.assertEqual(json.loads(r1.body)["name"], "api")
        self.assertIn("host_abi", json.loads(r3.body))

    def test_body_in_pieces(self):
        body = b'{"address": "not-an-address"}'
        with connect(self.port, nodelay=True) as s:
            s.sendall(build_request("POST", "/upstreams/api/servers",
                                    headers=[("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))]))
            # pauses only make separate reads likely; the answer must be right either way
            time.sleep(0.1)
            s.sendall(body[:10])
            time.sleep(0.1)
            s.sendall(body[10:])
            r = read_response(s)
        self.assertEqual(r.status, 400, r)
        self.assertIn("not-an-address", json.loads(r.body)["error"])

    def assert_refused_and_closed(self, data, status):
        with connect(self.port) as s:
            s.sendall(data)
            r = read_response(s)
            self.assertEqual(r.status, status, r)
            self.assertIsInstance(json.loads(r.body)["error"], str)
            closed, extra = wait_closed(s)
            self.assertTrue(closed, "the connection stayed open")
            self.assertEqual(extra, b"")
        self.assertEqual(call(self.port, "GET", "/upstreams/api")[0], 200)  # the listener lives on

    def test_malformed_request_is_400_and_closes(self):
        self.assert_refused_and_closed(b"GARBAGE\r\n\r\n", 400)

    def test_chunked_body_is_411_and_closes(self):
        self.assert_refused_and_closed(build_request("POST", "/reload", headers=[("Transfer-Encoding", "chunked")])
                                       + b"0\r\n\r\n", 411)
        self.assertNotIn("hot-reloaded", self.atlas.stderr_text())

    def test_body_over_1_mib_is_413_and_closes(self):
        self.assert_refused_and_closed(build_request("POST", "/reload",
                                                     headers=[("Content-Length", str((1 << 20) + 1))]), 413)
        self.assertNotIn("hot-reloaded", self.atlas.stderr_text())

    def test_body_of_1_mib_is_taken(self):
        head = b'{"address": "not-an-address"'
        body = head + b" " * ((1 << 20) - len(head) - 1) + b"}"
        self.assertEqual(len(body), 1 << 20)
        status, r, doc = call(self.port, "POST", "/upstreams/api/servers", body,
                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400, r)
        self.assertIn("not-an-address", doc["error"])


if __name__ == "__main__":
    unittest.main()
