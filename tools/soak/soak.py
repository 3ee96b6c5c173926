#!/usr/bin/env python3
"""Soak test for atlasd: mixed load while backends die, configs reload and hostile
clients run alongside; fails on a crash, an fd leak, RSS growth or an unexpected error.

    tools/dev soak [minutes] [options]          (builds build/, then runs this)
    tools/soak/soak.py --bin build/core/atlasd [--minutes 10 | --seconds N] [options]

One atlasd (workers = 2, started and stopped by PID through tests/integration/harness.py's
Atlas) serves, from a temporary config dir:
  static  mod_static (1 KiB, 64 KiB, 1 MiB files)
  proxy   mod_proxy to upstream "api": three http_peer.js processes (active health checks,
          passive detection, retries); /ws/ goes to upstream "ws", one ws_peer.js echo server
  tls     mod_tls (a self-signed P-256 certificate made with openssl at start) in front of
          static files and, under /api/, the "api" upstream
  l4      mod_tcp to upstream "echo": two TCP echo servers (tcp_peer.py, each a process)
and an admin listener (state of the servers, /metrics).

Load (all bounded so that the 2-CPU machine keeps room for atlasd): wrk in 5 s slices on
static, proxy and tls (wrk's `delay` paces each connection; a Lua script counts statuses),
python clients for WebSocket echo sessions (frames of random size and kind, checked byte
for byte, then the close handshake), TCP echo sessions through the L4 listener (checked
byte for byte, some ending in a half-close), TLS requests on fresh connections (half of
them resuming), POSTs with bodies through the proxy, and now and then node's `ws` client
(ws_peer.js client: 1 MiB frames and the close handshake).

Faults, on a schedule with jitter:
  kill      every ~20-30 s (--kill-every) an http or TCP echo backend gets SIGKILL, is
            started again on its port 1-4 s later, and the fault window lasts until the
            admin API says it is up again, plus 3 s
  reload    every ~15 s (--reload-every) SIGHUP after rewriting atlas.toml with the other
            of two valid configs (round_robin over three servers with certificate A;
            weighted_round_robin over two with certificate B); every 4th reload is a bad
            config instead (a TOML syntax error, an unknown upstream, a missing certificate,
            a changed worker count, in turn; four by POST /reload, four by SIGHUP, ...), which
            must be refused (POST /reload answers 400; SIGHUP logs "configuration not
            reloaded") while the old config keeps serving; then the good file goes back
  hostile   slowloris (a head trickled byte by byte: must end in 408, or in a reset that
            caught a byte in flight), silent connections
            and a silent TLS connection (must be closed), partial heads that vanish or
            half-close, random bytes and test_malformed.py's malformed requests (must get
            their 4xx or a close), plain HTTP to the TLS port (400), a TLS ClientHello to a
            plain port (400), clients that reset in the middle of a 1 MiB response (plain
            and TLS), of a WebSocket frame or of an L4 session, an L4 client that never
            speaks (closed by the L4 idle_timeout)

Every ~5 s a sample: atlasd's VmRSS, its open fds (/proc/PID/fd), its CPU use, the clients'
operations per second (requests, echo messages, sessions, hostile attempts; wrk's counts
join at the end of each 5 s slice), HTTP requests per second by /metrics
(atlas_http_requests_total, which must parse with prometheus_text.py and never go back:
the listeners and routes keep their names over the reloads), errors so far.

Errors are counted by kind, each either expected or unexpected:
  expected    during an http backend's fault window: 502/503/504 answers from the proxy
              listener or the TLS listener's /api/ (a request in flight on the killed
              server that could not be retried: a POST, or the retry budget spent);
              during a TCP backend's fault window: an L4 session that ends early (reset
              or EOF) or is closed at connect.
  unexpected  everything else: any non-2xx from static files; a 5xx outside a window;
              socket errors of wrk (connect, read, write, timeout) and of the python
              clients (resets, EOF before a full response, timeouts) on HTTP; echo
              mismatches (WebSocket or TCP), which are never expected; TLS errors; a
              WebSocket session that fails in any way (its backend is never killed); a
              hostile client answered with something other than its 4xx/close, or left
              open past its deadline; a bad config that was accepted or a good one that
              was refused; a backend that does not come back up; a /metrics exposition
              that does not parse, or whose request counter goes back.

Verdict: exit 1 (and "FAIL" with the reasons) when
  - atlasd exits at any time before the end (polled continuously), or at the end does not
    exit 0 within 30 s of SIGTERM, or its stderr has a sanitizer report;
  - fd leak: once the load has stopped and every client has closed, atlasd's fd count
    (polled until it holds still for 6 s, at most 60 s) exceeds the idle baseline taken
    the same way right after start-up (one request through every listener first) by
    more than 8 (--fd-margin);
  - RSS growth: the median of the last three samples under load exceeds the median of
    the first three samples after warm-up by more than 10% (warm-up: the first 20% of the
    run; --no-rss-check turns this off, for runs too short for a warm-up or ASan builds);
  - any unexpected error;
  - a stuck listener: at the end a GET to static, proxy and tls (static and /api/), a
    WebSocket echo and a TCP echo must all succeed.
The report (time series, totals, errors by kind with examples, faults, verdict) is printed
and written as JSON to BUILD/soak/soak-YYYYmmdd-HHMMSS.json (or --json PATH).

Internal: `soak.py --tcp-echo PORT` runs one TCP echo backend (the L4 upstream's servers).
"""

import argparse
import base64
import hashlib
import json
import os
import random
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IT = os.path.join(REPO, "tests", "integration")
sys.path.insert(0, IT)

import harness  # noqa: E402
import prometheus_text  # noqa: E402
import tcp_peer  # noqa: E402
from test_malformed import CASES as MALFORMED, CLIENT_HELLO  # noqa: E402

HEADER_TIMEOUT = 3.0   # seconds, every HTTP listener's header_timeout
L4_IDLE = 20.0         # seconds, the L4 listener's idle_timeout
FAULT_GRACE = 3.0      # seconds a fault window stays open after the server is back up
WRK_SLICE = 5          # seconds per wrk run (its counts join the samples at its end)
SAMPLE_EVERY = 5.0
DEADLINE = 30.0        # seconds any single check may take (ASan builds are slow)


# --------------------------------------------------------------------------- bookkeeping


class Stats:
    """Operations done and errors by kind, expected or not; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}          # client kind -> operations completed (requests, sessions...)
        self.errors = {True: {}, False: {}}  # expected? -> kind -> count
        self.examples = {}     # kind -> first few details

    def ok(self, kind, n=1):
        with self.lock:
            self.ops[kind] = self.ops.get(kind, 0) + n

    def error(self, kind, detail, expected=False, n=1):
        with self.lock:
            d = self.errors[expected]
            d[kind] = d.get(kind, 0) + n
            ex = self.examples.setdefault(kind, [])
            if len(ex) < 5:
                ex.append("%s%s" % ("" if not expected else "(expected) ", detail))
                if not expected:  # as it happens, next to the samples around it
                    print("soak: unexpected %s: %s" % (kind, detail), flush=True)

    def totals(self):
        with self.lock:
            return (sum(self.ops.values()), sum(self.errors[False].values()),
                    sum(self.errors[True].values()))

    def snapshot(self):
        with self.lock:
            return {"ops": dict(sorted(self.ops.items())),
                    "unexpected": dict(sorted(self.errors[False].items())),
                    "expected": dict(sorted(self.errors[True].items())),
                    "examples": {k: list(v) for k, v in sorted(self.examples.items())}}


class Faults:
    """Fault windows per backend group ("http", "tcp"): [kill, back up + grace]."""

    def __init__(self):
        self.lock = threading.Lock()
        self.windows = []  # [group, start, end or None]
        self.log = []      # (t, what)

    def open(self, group):
        w = [group, time.monotonic(), None]
        with self.lock:
            self.windows.append(w)
        return w

    def close(self, w):
        with self.lock:
            w[2] = time.monotonic() + FAULT_GRACE

    def overlaps(self, group, t0, t1=None):
        t1 = time.monotonic() if t1 is None else t1
        with self.lock:
            return any(g == group and s <= t1 and (e is None or e >= t0) for g, s, e in self.windows)

    def note(self, t, what):
        with self.lock:
            self.log.append((round(t, 1), what))


# --------------------------------------------------------------------------- backends


class Peer:
    """A backend in a process of its own that prints {"port": N} once listening; after
    the first start it keeps its port, so kill() (SIGKILL, by PID) and start() bring it
    back where the upstream expects it."""

    def __init__(self, name, argv, port=0):
        self.name = name
        self.argv = argv  # callable(port) -> argv
        self.port = port
        self.proc = None

    def start(self, attempts=20):
        for _ in range(attempts):
            self.proc = subprocess.Popen(self.argv(self.port), stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            line = self.proc.stdout.readline()
            if line:
                self.port = json.loads(line)["port"]
                # Keep reading: a peer that logs (ws_peer.js) would block on a full pipe.
                threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
                return self
            self.proc.wait()  # the port was not free yet (a listener that just died)
            self.proc.stdout.close()
            time.sleep(0.2)
        raise RuntimeError("backend %s did not start on port %s" % (self.name, self.port))

    @staticmethod
    def _drain(stream):
        try:
            for _ in stream:
                pass
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def tcp_echo_main(port):
    """Child mode: one TCP echo server (tcp_peer.echo) until SIGTERM."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with tcp_peer.TcpServer(tcp_peer.echo, port=port) as srv:
        sys.stdout.write(json.dumps({"port": srv.port}) + "\n")
        sys.stdout.flush()
        done.wait()
    return 0


# --------------------------------------------------------------------------- config


def openssl_cert(d, name, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "3", "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn,
                    "-keyout", name + ".key", "-out", name + ".pem"],
                   cwd=d, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    with open(os.path.join(d, name + ".pem"), "rb") as c, open(os.path.join(d, name + ".key"), "rb") as k:
        return c.read(), k.read()


def config_text(ports, http, ws, tcp, variant, workers=2, bad=None):
    """atlas.toml. variant 0: round_robin over the three http peers, certificate A;
    variant 1: weighted_round_robin over two of them, certificate B. bad: one of
    BAD_CONFIGS, applied to the text of `variant`."""
    if variant == 0:
        lb = '"round_robin"'
        servers = ", ".join('"%s"' % p.address for p in http)
        cert = "a"
    else:
        lb = '"weighted_round_robin"'
        servers = '{ address = "%s", weight = 3 }, { address = "%s" }' % (http[0].address, http[1].address)
        cert = "b"
    limits = 'limits = { header_timeout = "%ds", idle_timeout = "15s" }' % HEADER_TIMEOUT
    # The static listener takes no bodies: test_malformed.py's limit, for its oversize cases.
    static_limits = limits.replace(" }", ', max_body = "1k" }')
    text = """[server]
workers = %(workers)d
watch_config = false

[admin]
listen = "127.0.0.1:%(admin)d"

[upstream.api]
lb = %(lb)s
servers = [%(servers)s]
health = { path = "/health", interval = "1s", timeout = "1s", rise = 2, fall = 2 }
passive = { fails = 1 }
retries = 2
keepalive = { idle_per_worker = 16, idle_timeout = "5s" }
timeouts = { connect = "2s", read = "10s", write = "10s" }

[upstream.ws]
servers = ["%(ws)s"]
keepalive = { idle_per_worker = 4, idle_timeout = "5s" }

[upstream.echo]
servers = [%(tcp)s]
health = { type = "tcp", interval = "1s", timeout = "1s", rise = 2, fall = 2 }
passive = { fails = 1 }
timeouts = { connect = "2s" }

[[listener]]
name = "static"
listen = ["127.0.0.1:%(static)d"]
%(static_limits)s

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "www" }

[[listener]]
name = "proxy"
listen = ["127.0.0.1:%(proxy)d"]
%(limits)s

  [[listener.route]]
  path_prefix = "/ws/"
  handler = { module = "proxy", upstream = "ws" }

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "proxy", upstream = "api" }

[[listener]]
name = "tls"
listen = ["127.0.0.1:%(tls)d"]
chain = [{ module = "tls", cert = "%(cert)s.pem", key = "%(cert)s.key" }, { module = "http" }]
%(limits)s

  [[listener.route]]
  path_prefix = "/api/"
  handler = { module = "proxy", upstream = "api", strip_prefix = true }

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "www" }

[[listener]]
name = "l4"
listen = ["127.0.0.1:%(l4)d"]
chain = [{ module = "tcp", upstream = "echo", idle_timeout = "%(l4_idle)ds" }]
""" % dict(workers=workers, admin=ports["admin"], lb=lb, servers=servers, ws=ws.address,
           tcp=", ".join('"%s"' % p.address for p in tcp), static=ports["static"], proxy=ports["proxy"],
           tls=ports["tls"], l4=ports["l4"], limits=limits, static_limits=static_limits, cert=cert,
           l4_idle=L4_IDLE)
    if bad is not None:
        text = BAD_CONFIGS[bad][1](text)
    return text


# (name, edit of a good config's text, the reason the reload must give)
BAD_CONFIGS = [
    ("toml syntax error", lambda t: t.replace('[[listener]]\nname = "l4"', '[[listener]\nname = "l4"'), "atlas.toml"),
    ("unknown upstream", lambda t: t.replace('upstream = "echo"', 'upstream = "nowhere"'), "nowhere"),
    ("missing certificate", lambda t: t.replace('cert = "a.pem"', 'cert = "missing.pem"')
     .replace('cert = "b.pem"', 'cert = "missing.pem"'), "missing.pem"),
    ("changed worker count", lambda t: t.replace("workers = 2\n", "workers = 3\n")
     .replace("workers = 1\n", "workers = 3\n"), "server.workers"),
]


# --------------------------------------------------------------------------- small clients


def http_get(port, path, tls_ctx=None, session=None, timeout=DEADLINE, method="GET", body=b""):
    """One request on a fresh connection; returns (Response, ssl session or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost", session=session)
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
        if body:
            head += "Content-Length: %d\r\n" % len(body)
        s.sendall(head.encode() + b"\r\n" + body)
        r = harness.read_response(s, head=(method == "HEAD"), timeout=timeout)
        return r, (s.session if tls_ctx is not None else None)
    finally:
        s.close()


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the certificate changes with every other reload
    return ctx


def linger_reset(sock):
    """Makes close() send a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsClient:
    """Just enough of an RFC 6455 client for echo sessions: masked frames out, unmasked
    frames in, no fragmentation (ws_peer.js sends none)."""

    def __init__(self, port, path, timeout=DEADLINE):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = harness.read_response(self.sock, timeout=timeout)
        want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if r.status != 101 or r.header("Sec-WebSocket-Accept") != want:
            self.sock.close()
            raise WsError("handshake: status %d, accept %r" % (r.status, r.header("Sec-WebSocket-Accept")))
        self.buf = bytearray(harness._take_buffer(self.sock))

    def send(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") \
            if n else b""
        self.sock.sendall(head + mask + masked)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed after %d of %d bytes of a frame" % (len(self.buf), n))
            self.buf += d

    def recv(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise WsError("masked frame from the server")
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, at = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(at + n)
        payload = bytes(self.buf[at:at + n])
        del self.buf[:at + n]
        if not b0 & 0x80:
            raise WsError("fragmented frame from the server")
        return b0 & 0x0F, payload

    def close_handshake(self):
        self.send(8, struct.pack("!H", 1000) + b"bye")
        op, payload = self.recv()
        while op != 8:
            op, payload = self.recv()
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        if code != 1000:
            raise WsError("close code %r" % code)
        closed, _ = harness.wait_closed(self.sock, timeout=DEADLINE)
        if not closed:
            raise WsError("connection open after the close handshake")

    def close(self):
        self.sock.close()


class WsError(Exception):
    pass


# --------------------------------------------------------------------------- the soak


class Soak:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.faults = Faults()
        self.stop = threading.Event()      # load and faults stop
        self.crashed = threading.Event()
        self.threads = []
        self.samples = []
        self.reasons = []
        self.t0 = None
        self.variant = 0
        self.reload_lock = threading.Lock()  # config file edits and reloads
        self.reload_counts = {"good": 0, "good_failed": 0, "bad_rejected": 0, "bad_accepted": 0}
        self.kills = {"http": 0, "tcp": 0}
        self.wrk_slices = {}
        self.atlas = None
        self.tmp = tempfile.mkdtemp(prefix="atlas-soak-")

    # ---- helpers

    def now(self):
        return time.monotonic() - self.t0

    def sleep(self, seconds):
        """Sleeps unless the soak stops first; True if it should go on."""
        return not self.stop.wait(seconds)

    def spawn(self, name, fn, *a):
        t = threading.Thread(target=self._guard, args=(name, fn) + a, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def _guard(self, name, fn, *a):
        try:
            fn(*a)
        except Exception as e:  # a bug in the soak itself must not pass as a clean run
            self.stats.error("soak_internal", "%s: %s: %s" % (name, type(e).__name__, e))

    def atlas_pid(self):
        return self.atlas.pid

    def rss_kb(self):
        with open("/proc/%d/status" % self.atlas_pid()) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.atlas_pid()))

    def fd_kinds(self):
        """atlasd's open fds by what they are (socket, pipe, anon_inode:[io_uring], a path)."""
        kinds = {}
        d = "/proc/%d/fd" % self.atlas_pid()
        for name in os.listdir(d):
            try:
                target = os.readlink(os.path.join(d, name))
            except OSError:
                continue
            kind = target.split(":[", 1)[0] if target.startswith(("socket:", "pipe:")) else target
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    def cpu_seconds(self):
        """atlasd's user + system CPU time so far."""
        with open("/proc/%d/stat" % self.atlas_pid()) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def admin_get(self, path):
        r, _ = http_get(self.ports["admin"], path, timeout=10)
        return r

    def metrics(self):
        r = self.admin_get("/metrics")
        if r.status != 200:
            raise RuntimeError("/metrics answered %d" % r.status)
        return prometheus_text.parse(r.body)

    # ---- setup

    def setup(self):
        a = self.args
        d = os.path.join(self.tmp, "pki")
        os.makedirs(d)
        cert_a, key_a = openssl_cert(d, "a", "localhost")
        cert_b, key_b = openssl_cert(d, "b", "localhost")
        node = shutil.which("node")
        self.http = [Peer("h%d" % i, lambda port, i=i: [node, os.path.join(IT, "http_peer.js"), "h%d" % i, str(port)])
                     for i in (1, 2, 3)]
        self.ws = Peer("ws", lambda port: [node, os.path.join(IT, "ws_peer.js"), "server"])
        self.tcp = [Peer("t%d" % i, lambda port: [sys.executable, os.path.abspath(__file__), "--tcp-echo", str(port)])
                    for i in (1, 2)]
        for p in self.http + [self.ws] + self.tcp:
            p.start()
        ports = set()
        while len(ports) < 5:
            ports.add(harness.free_port())
        self.ports = dict(zip(("static", "proxy", "tls", "l4", "admin"), sorted(ports)))
        self.www = {"index.html": os.urandom(512).hex(), "64k.bin": os.urandom(64 << 10),
                    "1m.bin": os.urandom(1 << 20)}
        files = {"a.pem": cert_a, "a.key": key_a, "b.pem": cert_b, "b.key": key_b}
        env = {}
        if a.asan_options:
            env["ASAN_OPTIONS"] = a.asan_options
        self.atlas = harness.Atlas(self.config(0), www=self.www, files=files, port=self.ports["static"],
                                   check_exit=False, env=env, ready_timeout=30)
        self.atlas.start()
        harness.wait_until(lambda: all(harness.listening(self.ports[k]) for k in self.ports),
                           "every listener of atlasd", timeout=DEADLINE)
        self.config_path = self.atlas.path("atlas.toml")
        self.t0 = time.monotonic()
        # Wait for the health checks to see every server up, so the run starts clean.
        harness.wait_until(lambda: all(self.server_state(g, p) == "up" for g, ps in
                                       (("api", self.http), ("echo", self.tcp)) for p in ps),
                           "every upstream server up", timeout=DEADLINE)

    def config(self, variant, bad=None):
        return config_text(self.ports, self.http, self.ws, self.tcp, variant, workers=self.args.workers, bad=bad)

    def server_state(self, group, peer):
        r = self.admin_get("/upstreams/%s/servers/%s" % (group, peer.address))
        if r.status == 404:
            return "absent"  # not in the current config (variant 1 has two api servers)
        return json.loads(r.body)["state"]

    # ---- load: wrk

    def wrk_script(self, name, paths, delay_ms):
        path = os.path.join(self.tmp, "wrk-%s.lua" % name)
        with open(path, "w") as f:
            f.write("""
local paths = {%s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; n = 0 end
function request()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
function delay() return %d end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do agg[k] = (agg[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%%d": %%d', k, v)) end
  io.write(string.format('SOAK {"requests": %%d, "statuses": {%%s}, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "timeout": %%d}\\n', summary.requests, table.concat(parts, ", "), summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
""" % (", ".join('"%s"' % p for p in paths), delay_ms))
        return path

    def wrk_loop(self, name, url, paths, conns, delay_ms, group):
        """wrk in slices of WRK_SLICE seconds until the soak stops. group: the backend
        group whose fault windows make 502/503/504 expected (None: never)."""
        script = self.wrk_script(name, paths, delay_ms)
        self.wrk_slices[name] = 0
        while not self.stop.is_set():
            left = self.end_at - time.monotonic()
            secs = int(min(WRK_SLICE, left))
            if secs < 1:
                break
            t0 = time.monotonic()
            p = subprocess.run(["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s", "-s", script, url],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=secs + 60)
            t1 = time.monotonic()
            line = [l for l in p.stdout.splitlines() if l.startswith("SOAK ")]
            if p.returncode != 0 or not line:
                self.stats.error("wrk_failed", "%s: exit %d: %s" % (name, p.returncode, (p.stdout + p.stderr)[-300:]))
                if not self.sleep(1):
                    break
                continue
            self.wrk_slices[name] += 1
            r = json.loads(line[0][5:])
            window = group is not None and self.faults.overlaps(group, t0, t1)
            good = 0
            for status, count in r["statuses"].items():
                status = int(status)
                if 200 <= status < 300:
                    good += count
                elif window and status in (502, 503, 504):
                    self.stats.error("%s %d" % (name, status), "wrk slice at %.0fs" % (t0 - self.t0), True, count)
                else:
                    self.stats.error("%s %d" % (name, status), "wrk slice at %.0fs" % (t0 - self.t0), False, count)
            self.stats.ok(name, good)
            for kind in ("connect", "read", "write", "timeout"):
                if r[kind]:
                    self.stats.error("%s socket %s" % (name, kind), "wrk slice at %.0fs: %d" % (t0 - self.t0, r[kind]),
                                     False, r[kind])

    # ---- load: python clients

    def ws_sessions(self, idx):
        rnd = random.Random(idx)
        while not self.stop.is_set():
            try:
                ws = WsClient(self.ports["proxy"], "/ws/session-%d" % idx)
            except (OSError, EOFError, WsError, harness.ProtocolError) as e:
                self.stats.error("ws_connect", "%s: %s" % (type(e).__name__, e))
                self.sleep(1)
                continue
            try:
                mismatch = False
                for _ in range(rnd.randint(5, 60)):
                    if self.stop.is_set():
                        break
                    if rnd.random() < 0.5:
                        op, data = 1, "".join(rnd.choice("abcdefghij") for _ in range(rnd.randint(0, 2000))).encode()
                    else:
                        op, data = 2, os.urandom(rnd.choice((1, 100, 4096, 32768, 65536, 70000)))
                    ws.send(op, data)
                    got_op, got = ws.recv()
                    if got_op != op or got != data:
                        self.stats.error("ws_echo_mismatch", "sent op %d %d bytes, got op %d %d bytes"
                                         % (op, len(data), got_op, len(got)))
                        mismatch = True
                        break
                    self.stats.ok("ws_messages")
                    self.sleep(rnd.uniform(0.02, 0.2))
                if not mismatch:
                    ws.close_handshake()
                    self.stats.ok("ws_sessions")
            except (OSError, EOFError, WsError) as e:
                self.stats.error("ws_session", "%s: %s" % (type(e).__name__, e))
            finally:
                ws.close()

    def ws_node_client(self):
        """node's `ws` client now and then: 1 MiB frames and the close handshake."""
        while self.sleep(random.uniform(20, 40)):
            p = subprocess.run(["node", os.path.join(IT, "ws_peer.js"), "client",
                                "ws://127.0.0.1:%d/ws/node" % self.ports["proxy"]],
                               capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                self.stats.ok("ws_node_sessions")
            else:
                self.stats.error("ws_node_session", "exit %d: %s" % (p.returncode, (p.stdout + p.stderr)[-300:]))

    def tcp_sessions(self, idx):
        rnd = random.Random(1000 + idx)
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.ports["l4"]), timeout=DEADLINE) as s:
                    if self.tcp_session(s, rnd):
                        self.stats.ok("tcp_sessions")
            except socket.timeout as e:
                self.stats.error("tcp_timeout", "session: %s" % e)
            except (OSError, EOFError) as e:
                self.stats.error("tcp_session_cut", "%s: %s" % (type(e).__name__, e), self.faults.overlaps("tcp", start))

    def tcp_session(self, s, rnd):
        """Echo rounds checked byte for byte, some ending in a half-close; False after a
        mismatch (counted here). A short read raises EOFError."""
        for _ in range(rnd.randint(3, 40)):
            if self.stop.is_set():
                return True
            data = os.urandom(rnd.choice((1, 10, 1000, 16384, 100000)))
            s.sendall(data)
            back = harness.recv_exactly(s, len(data), timeout=DEADLINE)
            if len(back) < len(data) and data.startswith(back):
                raise EOFError("EOF after %d of %d bytes" % (len(back), len(data)))
            if back != data:
                self.stats.error("tcp_echo_mismatch", "%d bytes sent, %d different bytes back" % (len(data), len(back)))
                return False
            self.stats.ok("tcp_messages")
            self.sleep(rnd.uniform(0.02, 0.3))
        if rnd.random() < 0.3:  # half-close: the echo must still come back, then EOF
            tail = os.urandom(5000)
            s.sendall(tail)
            s.shutdown(socket.SHUT_WR)
            back = harness.recv_to_eof(s, timeout=DEADLINE)
            if len(back) < len(tail) and tail.startswith(back):
                raise EOFError("EOF after %d of %d bytes after a half-close" % (len(back), len(tail)))
            if back != tail:
                self.stats.error("tcp_echo_mismatch", "after a half-close: %d bytes back" % len(back))
                return False
        return True

    def tls_requests(self):
        """Fresh TLS connections, half of them resuming the last session."""
        ctx = client_tls_context()
        session = None
        rnd = random.Random(7)
        while self.sleep(rnd.uniform(0.05, 0.15)):
            path = rnd.choice(("/index.html", "/64k.bin", "/api/x"))
            start = time.monotonic()
            try:
                r, new = http_get(self.ports["tls"], path, ctx, session if rnd.random() < 0.5 else None)
                session = new
            except ssl.SSLError as e:
                self.stats.error("tls_error", str(e))
                continue
            except (OSError, EOFError, harness.ProtocolError) as e:
                self.stats.error("tls_socket", "%s %s: %s" % (path, type(e).__name__, e))
                continue
            self.check_status("tls_fresh", path, r, start, proxied=path.startswith("/api/"))

    def post_requests(self):
        rnd = random.Random(9)
        while self.sleep(rnd.uniform(0.05, 0.2)):
            body = os.urandom(rnd.choice((10, 5000, 70000)))
            start = time.monotonic()
            try:
                r, _ = http_get(self.ports["proxy"], "/post", method="POST", body=body)
            except (OSError, EOFError, harness.ProtocolError) as e:
                self.stats.error("proxy_post_socket", "%s: %s" % (type(e).__name__, e))
                continue
            self.check_status("proxy_post", "/post", r, start, proxied=True)

    def check_status(self, kind, path, r, start, proxied):
        if 200 <= r.status < 300:
            if not proxied and r.body != self.www_bytes(path):
                self.stats.error("%s body mismatch" % kind, path)
            else:
                self.stats.ok(kind)
            return
        expected = proxied and r.status in (502, 503, 504) and self.faults.overlaps("http", start)
        self.stats.error("%s %d" % (kind, r.status), path, expected)

    def www_bytes(self, path):
        v = self.www[path.lstrip("/")]
        return v.encode() if isinstance(v, str) else v

    # ---- hostile clients

    def slow_clients(self, idx):
        """Slowloris and silent connections, one at a time per slot."""
        rnd = random.Random(2000 + idx)
        while not self.stop.is_set():
            kinds = ["slowloris", "slowloris_tls", "silent", "silent_tls"]
            if self.end_at - time.monotonic() > L4_IDLE + 10:  # the soak does not wait for it at the end
                kinds.append("silent_l4")
            kind = rnd.choice(kinds)
            try:
                getattr(self, "hostile_" + kind)()
                self.stats.ok("hostile_" + kind)
            except HostileFailure as e:
                self.stats.error("hostile_" + kind, str(e))
            except (OSError, EOFError, ssl.SSLError, WsError, harness.ProtocolError) as e:
                self.stats.error("hostile_" + kind, "%s: %s" % (type(e).__name__, e))

    def quick_hostiles(self):
        rnd = random.Random(3000)
        kinds = ("garbage", "malformed", "partial_vanish", "partial_shutdown", "http_to_tls", "hello_to_plain",
                 "tls_garbage", "reset_mid_response", "reset_mid_response_tls", "reset_mid_ws", "reset_l4")
        while self.sleep(rnd.uniform(0.1, 0.4)):
            kind = rnd.choice(kinds)
            try:
                getattr(self, "hostile_" + kind)(rnd)
                self.stats.ok("hostile_" + kind)
            except HostileFailure as e:
                self.stats.error("hostile_" + kind, str(e))
            except (OSError, EOFError, ssl.SSLError, WsError, harness.ProtocolError) as e:
                self.stats.error("hostile_" + kind, "%s: %s" % (type(e).__name__, e))

    def _expect_close(self, s, what, allow=(), deadline=HEADER_TIMEOUT + DEADLINE):
        """Waits for the server to close s; a response before the close must be one of
        `allow` (statuses). A reset counts as a close."""
        closed, extra = harness.wait_closed(s, timeout=deadline)
        if not closed:
            raise HostileFailure("%s: still open after %.0fs" % (what, deadline))
        if extra:
            r, _ = harness.parse_response_bytes(extra)
            status = r.status if r is not None else None
            if status not in allow:
                raise HostileFailure("%s: answered %r" % (what, extra[:80]))

    def hostile_slowloris(self, tls=False):
        port = self.ports["tls" if tls else "static"]
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        if tls:
            s = client_tls_context().wrap_socket(s, server_hostname="localhost")
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            deadline = time.monotonic() + HEADER_TIMEOUT + DEADLINE
            while time.monotonic() < deadline:
                if tls and s.pending():
                    break
                ready, _, _ = select.select([s], [], [], 0.3)
                if ready:
                    break
                try:
                    s.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    return  # closed between two bytes: the 408 may be lost to the reset
            else:
                raise HostileFailure("slowloris%s: no answer %.0fs into the trickle"
                                     % (" over TLS" if tls else "", HEADER_TIMEOUT + DEADLINE))
            try:
                r = harness.read_response(s, timeout=DEADLINE)
            except (ConnectionResetError, EOFError):
                return
            if r.status != 408:
                raise HostileFailure("slowloris: status %d, not 408" % r.status)
            self._expect_close(s, "slowloris after its 408")

    def hostile_slowloris_tls(self):
        self.hostile_slowloris(tls=True)

    def hostile_silent(self):
        with socket.create_connection(("127.0.0.1", self.ports["static"]), timeout=DEADLINE) as s:
            self._expect_close(s, "silent connection", allow=(408,))

    def hostile_silent_tls(self):
        with socket.create_connection(("127.0.0.1", self.ports["tls"]), timeout=DEADLINE) as s:
            closed, _ = harness.wait_closed(s, timeout=HEADER_TIMEOUT + DEADLINE)
            if not closed:
                raise HostileFailure("silent TLS connection still open")

    def hostile_silent_l4(self):
        with socket.create_connection(("127.0.0.1", self.ports["l4"]), timeout=DEADLINE) as s:
            closed, extra = harness.wait_closed(s, timeout=L4_IDLE + DEADLINE)
            if not closed or extra:
                raise HostileFailure("silent L4 connection: closed %s, %d bytes" % (closed, len(extra)))

    def hostile_garbage(self, rnd):
        port = self.ports[rnd.choice(("static", "proxy"))]
        data = os.urandom(rnd.randint(1, 4096))
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return
            self._expect_close(s, "random bytes", allow=(400, 408, 414, 431, 501, 505))

    def hostile_malformed(self, rnd):
        name, data, accepted, codec_error = rnd.choice(MALFORMED)
        # The oversize cases need test_malformed.py's max_body = "1k": the static listener's.
        port = self.ports["static" if "over max_" in name else rnd.choice(("static", "proxy"))]
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(data)
            try:
                r = harness.read_response(s, timeout=DEADLINE)
            except (EOFError, ConnectionResetError) as e:
                raise HostileFailure("malformed %r: no response (%s)" % (name, e))
            if r.status not in accepted:
                raise HostileFailure("malformed %r: status %d, wanted %s" % (name, r.status, sorted(accepted)))
            if codec_error:
                self._expect_close(s, "malformed %r after its %d" % (name, r.status))

    def hostile_partial_vanish(self, rnd):
        port = self.ports[rnd.choice(("static", "proxy", "tls", "l4"))]
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(b"GET /index.html HTTP/1.1\r\nHo")
            if rnd.random() < 0.5:
                linger_reset(s)

    def hostile_partial_shutdown(self, rnd):
        port = self.ports[rnd.choice(("static", "proxy"))]
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: b")
            s.shutdown(socket.SHUT_WR)
            self._expect_close(s, "partial head then half-close", allow=(400, 408))

    def hostile_http_to_tls(self, rnd):
        with socket.create_connection(("127.0.0.1", self.ports["tls"]), timeout=DEADLINE) as s:
            s.sendall(harness.GOOD_REQUEST)
            self._expect_close(s, "plain HTTP on the TLS port", allow=(400,))

    def hostile_hello_to_plain(self, rnd):
        with socket.create_connection(("127.0.0.1", self.ports[rnd.choice(("static", "proxy"))]), timeout=DEADLINE) as s:
            s.sendall(CLIENT_HELLO)
            self._expect_close(s, "a ClientHello on a plain port", allow=(400,))

    def hostile_tls_garbage(self, rnd):
        with socket.create_connection(("127.0.0.1", self.ports["tls"]), timeout=DEADLINE) as s:
            try:
                s.sendall(b"\x16\x03\x01" + os.urandom(rnd.randint(1, 2000)))
            except (BrokenPipeError, ConnectionResetError):
                return
            closed, _ = harness.wait_closed(s, timeout=HEADER_TIMEOUT + DEADLINE)
            if not closed:
                raise HostileFailure("TLS garbage: connection still open")

    def hostile_reset_mid_response(self, rnd, tls=False):
        s = socket.create_connection(("127.0.0.1", self.ports["tls" if tls else "static"]), timeout=DEADLINE)
        if tls:
            s = client_tls_context().wrap_socket(s, server_hostname="localhost")
        with s:
            s.sendall(b"GET /1m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            want = rnd.randint(1, 200000)
            while got < want:
                d = s.recv(65536)
                if not d:
                    raise HostileFailure("1 MiB response ended after %d bytes" % got)
                got += len(d)
            linger_reset(s)

    def hostile_reset_mid_response_tls(self, rnd):
        self.hostile_reset_mid_response(rnd, tls=True)

    def hostile_reset_mid_ws(self, rnd):
        ws = WsClient(self.ports["proxy"], "/ws/reset")
        with ws.sock:
            ws.send(2, os.urandom(200000))
            if rnd.random() < 0.5:
                ws.sock.recv(1000)
            linger_reset(ws.sock)

    def hostile_reset_l4(self, rnd):
        with socket.create_connection(("127.0.0.1", self.ports["l4"]), timeout=DEADLINE) as s:
            s.sendall(os.urandom(rnd.randint(1, 300000)))
            linger_reset(s)

    # ---- faults

    def killer(self):
        rnd = random.Random(11)
        lo, hi = self.args.kill_every
        while self.sleep(rnd.uniform(lo, hi)):
            group = "http" if rnd.random() < 0.6 else "tcp"
            peer = rnd.choice(self.http if group == "http" else self.tcp)
            w = self.faults.open(group)
            self.faults.note(self.now(), "kill -9 %s (%s)" % (peer.name, peer.address))
            peer.kill()
            self.kills[group] += 1
            self.stop.wait(rnd.uniform(1, 4))  # down for a while, even when stopping
            peer.start()
            upstream = "api" if group == "http" else "echo"
            try:
                harness.wait_until(lambda: self.server_state(upstream, peer) in ("up", "absent"),
                                   "%s up again" % peer.name, timeout=DEADLINE)
                self.faults.note(self.now(), "%s up again" % peer.name)
            except AssertionError as e:
                self.stats.error("backend_not_back", str(e))
            finally:
                self.faults.close(w)

    def reloader(self):
        rnd = random.Random(13)
        n = 0
        bad = 0
        while self.sleep(rnd.uniform(self.args.reload_every * 0.7, self.args.reload_every * 1.3)):
            n += 1
            with self.reload_lock:
                if n % 4 == 0:
                    self.bad_reload(bad % len(BAD_CONFIGS), via_admin=(bad // len(BAD_CONFIGS)) % 2 == 0)
                    bad += 1
                else:
                    self.good_reload()

    def reload_log_count(self, what):
        return self.atlas.stderr_text().count(what)

    def good_reload(self):
        variant = 1 - self.variant
        before = self.reload_log_count("SIGHUP: Configuration hot-reloaded")
        failed_before = self.reload_log_count("configuration not reloaded")
        write_file(self.config_path, self.config(variant))
        os.kill(self.atlas_pid(), signal.SIGHUP)
        try:
            harness.wait_until(lambda: self.reload_log_count("SIGHUP: Configuration hot-reloaded") > before
                               or self.reload_log_count("configuration not reloaded") > failed_before,
                               "the reload", timeout=DEADLINE)
        except AssertionError as e:
            self.stats.error("reload_no_outcome", str(e))
            return
        if self.reload_log_count("SIGHUP: Configuration hot-reloaded") > before:
            self.variant = variant
            self.reload_counts["good"] += 1
            self.faults.note(self.now(), "reload to variant %d" % variant)
        else:
            self.reload_counts["good_failed"] += 1
            self.stats.error("reload_good_refused", self.atlas.stderr_text()[-500:])

    def bad_reload(self, which, via_admin):
        name, _, reason = BAD_CONFIGS[which]
        write_file(self.config_path, self.config(self.variant, bad=which))
        try:
            if via_admin:
                r = http_request(self.ports["admin"], "POST", "/reload")
                rejected = r.status == 400 and reason in r.body.decode("utf-8", "replace")
                outcome = "%d %s" % (r.status, r.body[:200])
            else:
                before = self.reload_log_count("configuration not reloaded")
                ok_before = self.reload_log_count("Configuration hot-reloaded")
                os.kill(self.atlas_pid(), signal.SIGHUP)
                harness.wait_until(lambda: self.reload_log_count("configuration not reloaded") > before
                                   or self.reload_log_count("Configuration hot-reloaded") > ok_before,
                                   "the bad reload's outcome", timeout=DEADLINE)
                rejected = self.reload_log_count("configuration not reloaded") > before and \
                    reason in self.atlas.stderr_text()[-2000:]
                outcome = self.atlas.stderr_text()[-300:]
        except (AssertionError, OSError, EOFError) as e:
            rejected, outcome = False, str(e)
        finally:
            write_file(self.config_path, self.config(self.variant))
        self.faults.note(self.now(), "bad config (%s, %s): %s" % (name, "POST /reload" if via_admin else "SIGHUP",
                                                                 "refused" if rejected else "NOT refused"))
        if rejected:
            self.reload_counts["bad_rejected"] += 1
        else:
            self.reload_counts["bad_accepted"] += 1
            self.stats.error("reload_bad_accepted", "%s: %s" % (name, outcome))
        # The old config still serves.
        for port, path in ((self.ports["static"], "/index.html"), (self.ports["proxy"], "/after-bad-config")):
            try:
                r, _ = http_get(port, path)
                if r.status != 200:
                    self.stats.error("after_bad_config", "%s: %d" % (path, r.status),
                                     port == self.ports["proxy"] and self.faults.overlaps("http", time.monotonic() - 1))
            except (OSError, EOFError, harness.ProtocolError) as e:
                self.stats.error("after_bad_config", "%s: %s" % (path, e))

    # ---- sampling

    def sample(self):
        if not self.atlas.alive():
            return
        t = self.now()
        reqs = None
        try:
            m = self.metrics()
            reqs = sum(x.value for x in prometheus_text.samples(m, "atlas_http_requests_total"))
        except prometheus_text.FormatError as e:
            self.stats.error("metrics_format", str(e))
        except (OSError, EOFError, harness.ProtocolError, RuntimeError) as e:
            self.stats.error("metrics_unreachable", str(e))
        last = next((x for x in reversed(self.samples) if x["srv_requests"] is not None), None)
        if reqs is not None and last is not None and reqs < last["srv_requests"]:
            # Every listener and route keeps its name over the reloads here.
            self.stats.error("metrics_counter_went_back", "atlas_http_requests_total %d -> %d"
                             % (last["srv_requests"], reqs))
        ops, unexpected, expected = self.stats.totals()
        try:
            rss, fds, cpu = self.rss_kb(), self.fds(), self.cpu_seconds()
        except OSError:  # it has just exited: the main loop reports that
            return
        prev = self.samples[-1] if self.samples else None
        rate = cpu_pct = srv_rate = None
        if prev:
            rate = (ops - prev["client_ops"]) / (t - prev["t"])
            cpu_pct = 100.0 * (cpu - prev["cpu_s"]) / (t - prev["t"])
            if reqs is not None and prev["srv_requests"] is not None:
                srv_rate = (reqs - prev["srv_requests"]) / (t - prev["t"])
        s = {"t": round(t, 1), "rss_kb": rss, "fds": fds, "cpu_s": cpu,
             "cpu_pct": None if cpu_pct is None else round(cpu_pct), "client_ops": ops,
             "ops_per_s": None if rate is None else round(rate), "srv_requests": reqs,
             "srv_req_per_s": None if srv_rate is None else round(srv_rate),
             "unexpected": unexpected, "expected": expected}
        self.samples.append(s)
        print(format_row(s), flush=True)

    def sampler(self):
        while not self.stop.is_set() and not self.crashed.is_set():
            self.sample()
            self.stop.wait(SAMPLE_EVERY)

    # ---- settle and final checks

    def settle_fds(self, what):
        """atlasd's fd count once idle: polled until unchanged for 6 s, after at least
        7 s (the upstream keep-alive idle_timeout is 5 s); at most 60 s."""
        start = time.monotonic()
        last, since = self.fds(), time.monotonic()
        while True:
            time.sleep(0.5)
            n = self.fds()
            if n != last:
                last, since = n, time.monotonic()
            now = time.monotonic()
            if now - since >= 6 and now - start >= 7:
                return last, True
            if now - start > 60:
                self.reasons.append("%s: the fd count did not settle within 60 s (last %d)" % (what, last))
                return last, False

    def prime(self):
        """One exchange through every listener (lazy per-worker set-up is not a leak);
        returns the failures of the last round."""
        for _ in range(4):  # both workers, most likely
            failures = self.final_checks(record=False)
        return failures

    def final_checks(self, record=True):
        ctx = client_tls_context()
        checks = [("static GET", lambda: http_get(self.ports["static"], "/index.html")[0]),
                  ("proxy GET", lambda: http_get(self.ports["proxy"], "/final")[0]),
                  ("tls GET static", lambda: http_get(self.ports["tls"], "/index.html", ctx)[0]),
                  ("tls GET /api/", lambda: http_get(self.ports["tls"], "/api/final", ctx)[0])]
        failures = []
        for name, fn in checks:
            try:
                r = fn()
                if r.status != 200:
                    failures.append("%s: status %d" % (name, r.status))
            except Exception as e:
                failures.append("%s: %s: %s" % (name, type(e).__name__, e))
        try:
            ws = WsClient(self.ports["proxy"], "/ws/final")
            with ws.sock:
                ws.send(1, b"final")
                if ws.recv() != (1, b"final"):
                    failures.append("ws echo: wrong echo")
                ws.close_handshake()
        except Exception as e:
            failures.append("ws echo: %s: %s" % (type(e).__name__, e))
        try:
            with socket.create_connection(("127.0.0.1", self.ports["l4"]), timeout=DEADLINE) as s:
                s.sendall(b"final")
                s.shutdown(socket.SHUT_WR)
                if harness.recv_to_eof(s, timeout=DEADLINE) != b"final":
                    failures.append("tcp echo: wrong echo")
        except Exception as e:
            failures.append("tcp echo: %s: %s" % (type(e).__name__, e))
        if record:
            for f in failures:
                self.reasons.append("stuck check: " + f)
        return failures

    # ---- run

    def run(self):
        a = self.args
        print("soak: %s, %d s (warm-up %d s), atlasd %s, workers %d" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), a.duration, a.warmup, harness.BIN, a.workers), flush=True)
        self.setup()
        print("soak: ports %s; backends api %s, ws %s, echo %s; config dir %s" % (
            self.ports, [p.address for p in self.http], self.ws.address, [p.address for p in self.tcp],
            self.atlas.dir), flush=True)
        failures = self.prime()
        if failures:
            raise RuntimeError("atlasd does not serve at the start: %s" % failures)
        self.fd_baseline, _ = self.settle_fds("baseline")
        self.fd_baseline_kinds = self.fd_kinds()
        self.rss_start = self.rss_kb()
        print("soak: idle baseline: %d fds, RSS %d kB" % (self.fd_baseline, self.rss_start), flush=True)
        print(HEADER, flush=True)

        self.t0 = time.monotonic()
        self.end_at = self.t0 + a.duration
        P = self.ports
        self.spawn("wrk static", self.wrk_loop, "static", "http://127.0.0.1:%d" % P["static"],
                   ["/index.html"] * 8 + ["/64k.bin"] * 3 + ["/1m.bin"], 8, 15, None)
        self.spawn("wrk proxy", self.wrk_loop, "proxy", "http://127.0.0.1:%d" % P["proxy"],
                   ["/", "/a/b?c=d", "/status/204", "/health"], 8, 15, "http")
        self.spawn("wrk tls", self.wrk_loop, "tls", "https://127.0.0.1:%d" % P["tls"],
                   ["/index.html", "/64k.bin"], 4, 20, None)
        for i in range(4):
            self.spawn("ws %d" % i, self.ws_sessions, i)
            self.spawn("tcp %d" % i, self.tcp_sessions, i)
        self.spawn("ws node", self.ws_node_client)
        self.spawn("tls", self.tls_requests)
        self.spawn("post", self.post_requests)
        for i in range(3):
            self.spawn("slow %d" % i, self.slow_clients, i)
        self.spawn("hostile", self.quick_hostiles)
        self.spawn("killer", self.killer)
        self.spawn("reloader", self.reloader)
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()

        while time.monotonic() < self.end_at:
            if not self.atlas.alive():
                self.crashed.set()
                break
            time.sleep(0.25)
        self.load_end = self.now()
        self.stop.set()
        sampler.join(timeout=30)
        if not self.crashed.is_set():
            self.sample()  # the last one under (ending) load
        for t in self.threads:
            t.join(timeout=HEADER_TIMEOUT + L4_IDLE + 2 * DEADLINE)
            if t.is_alive():
                self.reasons.append("soak thread %r did not finish (a client is stuck)" % t.name)
            if not self.atlas.alive():
                self.crashed.set()
        return self.finish()

    def finish(self):
        a = self.args
        report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - self.now())),
                  "duration_s": a.duration, "warmup_s": a.warmup, "binary": harness.BIN,
                  "asan": False, "workers": a.workers, "ports": self.ports}
        if self.crashed.is_set() or not self.atlas.alive():
            rc = self.atlas.proc.poll()
            self.reasons.insert(0, "atlasd exited during the run (%s)" % describe_exit(rc))
            report["stderr_tail"] = harness.tail(self.atlas.stderr_text(), 80)
        else:
            report["asan"] = harness.runs_asan(self.atlas_pid())
            self.final_checks()
            end_fds, settled = self.settle_fds("end")
            kinds = self.fd_kinds()
            more = {k: kinds.get(k, 0) - self.fd_baseline_kinds.get(k, 0) for k in set(kinds) | set(self.fd_baseline_kinds)}
            report["fds"] = {"baseline_idle": self.fd_baseline, "end_idle": end_fds, "settled": settled,
                             "margin": a.fd_margin, "end_minus_baseline": {k: v for k, v in sorted(more.items()) if v}}
            if end_fds > self.fd_baseline + a.fd_margin:
                self.reasons.append("fd leak: %d fds once idle at the end, %d at the start (margin %d)"
                                    % (end_fds, self.fd_baseline, a.fd_margin))
            self.rss_verdict(report)
            rc = None
            try:
                rc = self.atlas.stop(signal.SIGTERM, timeout=30)
            except harness.AtlasError as e:
                self.reasons.append(str(e).splitlines()[0])
            if rc not in (None, 0):
                self.reasons.append("atlasd exited %s on SIGTERM" % describe_exit(rc))
            if self.atlas.sanitizer_report():
                self.reasons.append("sanitizer report in atlasd's stderr")
            if rc != 0 or self.atlas.sanitizer_report():
                report["stderr_tail"] = harness.tail(self.atlas.stderr_text(), 80)
        snap = self.stats.snapshot()
        for kind, n in snap["unexpected"].items():
            self.reasons.append("unexpected error %r x%d (e.g. %s)" % (kind, n, snap["examples"][kind][0]))
        report.update({"samples": self.samples, "ops": snap["ops"], "errors_unexpected": snap["unexpected"],
                       "errors_expected": snap["expected"], "error_examples": snap["examples"],
                       "kills": self.kills, "reloads": self.reload_counts, "wrk_slices": self.wrk_slices,
                       "fault_log": self.faults.log})
        report["verdict"] = "fail" if self.reasons else "pass"
        report["reasons"] = self.reasons
        print_report(report)
        path = a.json or os.path.join(a.build, "soak", "soak-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        print("soak: report written to %s" % path)
        print("soak: %s" % ("PASS" if not self.reasons else "FAIL"), flush=True)
        return 0 if not self.reasons else 1

    def rss_verdict(self, report):
        a = self.args
        after = [s["rss_kb"] for s in self.samples if s["t"] >= a.warmup]
        info = {"start_idle_kb": self.rss_start, "checked": not a.no_rss_check}
        if len(after) >= 6:
            base, end = statistics.median(after[:3]), statistics.median(after[-3:])
            info.update(after_warmup_kb=base, end_kb=end, growth_pct=round(100.0 * (end - base) / base, 2))
            if not a.no_rss_check and end > base * 1.10:
                self.reasons.append("RSS grew %.1f%% after warm-up (%d kB -> %d kB)"
                                    % (100.0 * (end - base) / base, base, end))
        elif not a.no_rss_check:
            self.reasons.append("too few samples after warm-up to judge RSS (%d): run longer or pass --no-rss-check"
                                % len(after))
        report["rss"] = info

    def cleanup(self):
        self.stop.set()
        if self.atlas is not None:
            self.atlas._kill()
            self.atlas._cleanup()
        for p in getattr(self, "http", []) + ([self.ws] if hasattr(self, "ws") else []) + getattr(self, "tcp", []):
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class HostileFailure(Exception):
    pass


def http_request(port, method, path, timeout=DEADLINE):
    r, _ = http_get(port, path, method=method, timeout=timeout)
    return r


def write_file(path, text):
    tmp = path + ".soak-new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def describe_exit(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        return "killed by %s" % signal.Signals(-rc).name
    return "exit %d" % rc


HEADER = "%7s %8s %5s %6s %7s %10s %8s %10s %8s" % ("t", "rss_kB", "fds", "cpu%", "ops/s", "ops", "srv_rq/s",
                                                      "unexpected", "expected")


def format_row(s):
    def v(x):
        return "-" if x is None else "%d" % x
    return "%7.1f %8d %5d %6s %7s %10d %8s %10d %8d" % (s["t"], s["rss_kb"], s["fds"], v(s["cpu_pct"]),
                                                        v(s["ops_per_s"]), s["client_ops"], v(s["srv_req_per_s"]),
                                                        s["unexpected"], s["expected"])


def print_report(r):
    print()
    print("=" * 78)
    print("soak report: %s, %d s, %s%s" % (r["started"], r["duration_s"], r["binary"], " (ASan)" if r["asan"] else ""))
    print(HEADER)
    for s in r["samples"]:
        print(format_row(s))
    print("operations:   " + ", ".join("%s %d" % kv for kv in r["ops"].items()))
    print("wrk slices:   " + ", ".join("%s %d" % kv for kv in r["wrk_slices"].items()))
    print("faults:       kills %s, reloads %s" % (r["kills"], r["reloads"]))
    print("unexpected:   %s" % (r["errors_unexpected"] or "none"))
    print("expected:     %s" % (r["errors_expected"] or "none"))
    for kind, ex in r["error_examples"].items():
        print("  %s: %s" % (kind, " | ".join(ex[:2])))
    if "fds" in r:
        print("fds:          %s" % r["fds"])
    if "rss" in r:
        print("rss:          %s" % r["rss"])
    if "stderr_tail" in r:
        print("--- atlasd stderr (tail) ---\n%s" % r["stderr_tail"])
    print("verdict:      %s" % r["verdict"].upper())
    for reason in r["reasons"]:
        print("  - " + reason)
    print("=" * 78)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tcp-echo":
        return tcp_echo_main(int(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "core", "atlasd"), help="atlasd binary")
    ap.add_argument("--build", help="build directory (default: the binary's ../..); the report goes to BUILD/soak/")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, help="run length in seconds (overrides --minutes)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up before the RSS baseline (default 20%% of the run)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-every", type=float, nargs=2, default=(20.0, 30.0), metavar=("MIN", "MAX"),
                    help="seconds between backend kills (default 20 30)")
    ap.add_argument("--reload-every", type=float, default=15.0, help="mean seconds between reloads (default 15)")
    ap.add_argument("--fd-margin", type=int, default=8)
    ap.add_argument("--no-rss-check", action="store_true", help="report RSS but do not judge its growth")
    ap.add_argument("--asan-options", help="ASAN_OPTIONS for atlasd (default: the harness's)")
    ap.add_argument("--json", help="report path (default BUILD/soak/soak-YYYYmmdd-HHMMSS.json)")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.build = os.path.abspath(a.build or os.path.dirname(os.path.dirname(a.bin)))
    a.duration = a.seconds if a.seconds is not None else a.minutes * 60.0
    a.warmup = a.warmup if a.warmup is not None else 0.2 * a.duration
    harness.BIN, harness.BUILD = a.bin, a.build
    for tool in ("wrk", "node", "openssl"):
        if not shutil.which(tool):
            print("soak: %s is not installed (tools/dev soak installs it)" % tool, file=sys.stderr)
            return 2
    if not os.path.isdir(os.path.join(IT, "node_modules", "ws")):
        print("soak: tests/integration/node_modules/ws is missing (tools/dev soak installs it)", file=sys.stderr)
        return 2
    soak = Soak(a)
    try:
        with harness.raised_nofile(8192):
            return soak.run()
    finally:
        soak.cleanup()


if __name__ == "__main__":
    sys.exit(main())
