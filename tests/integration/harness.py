"""Shared helpers for the atlasd integration tests (python3 standard library only).

The runner (run.py) exports ATLAS_BIN (the atlasd binary) and ATLAS_BUILD (the build
directory).  Without them the defaults are <repo>/build/core/atlasd and <repo>/build, so
a single file can also be run by hand:  python3 -m unittest test_basic  (from this folder).

Main pieces:
  Atlas(config)          context manager running one atlasd in a temp config dir
  run_check(config)      atlasd -t -c DIR  ->  (exit_code, stdout, stderr)
  raw(port, data)        send raw bytes, read until close / timeout
  read_response(sock)    parse one HTTP/1.1 response (pipelining-safe, per-socket buffer)
  site_config(...)       the standard one-listener static config used by most tests

Everything is generous with timeouts because the binary may be an ASan build; no test
asserts how fast something happens, only that it happens before a generous deadline.
"""

import contextlib
import hashlib
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("ATLAS_BUILD") or os.path.join(REPO, "build")
BIN = os.environ.get("ATLAS_BIN") or os.path.join(BUILD, "core", "atlasd")
# A command atlasd runs under (run.py --valgrind sets it to memcheck): prepended to every
# atlasd a test starts as a server. Its errors are framed by VALGRIND_ERROR_MARKER.
WRAPPER = shlex.split(os.environ.get("ATLAS_WRAPPER", ""))
VALGRIND_ERROR_MARKER = "VALGRIND-ERROR-BEGIN"
# For tests that move hundreds of MiB: memcheck would take many minutes over them, and the
# ASan run covers the same code.
too_heavy_for_valgrind = unittest.skipIf(WRAPPER, "hundreds of MiB: too slow under valgrind (ASan covers it)")

READY_TIMEOUT = 10.0   # seconds for atlasd to start listening
CHECK_TIMEOUT = 60.0   # seconds for `atlasd -t` / `atlasd -v`

# A valid request used as the "server still fine" probe after each hostile input.
GOOD_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


# --------------------------------------------------------------------------- ports


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A free TCP port on 127.0.0.1, checked by binding it and closing again.

    Ports come from below the kernel's ephemeral range when there is room there: a port
    from `bind(0)` is an ephemeral one, which the many client connections of a test
    running in parallel could take as their local port before atlasd binds it.
    Falls back to bind(port 0)."""
    lo, _ = _ephemeral_range()
    if lo > 20000:
        for _ in range(50):
            port = random.randint(15000, lo - 1)
            if port_is_free(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_ports():
    """{'port': P1, 'port2': P2, 'port3': P3}, all distinct."""
    ports = {}
    while len(set(ports.values())) != 3:
        ports = {"port": free_port(), "port2": free_port(), "port3": free_port()}
    return ports


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def can_connect(port, host="127.0.0.1", timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listening(port):
    """True while any socket listens on TCP `port` (read from /proc/net/tcp{,6}).
    Unlike a connect probe this sees every SO_REUSEPORT listener at once: one refused
    connect only proves that the socket it was hashed to has stopped listening."""
    want = ":%04X" % port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":  # 0A: TCP_LISTEN
                        return True
        except FileNotFoundError:
            pass
    return False


def fill(text, ports):
    """Replace {port}, {port2}, {port3}, {dir} placeholders.  Plain replace, not
    str.format, because TOML inline tables use braces too."""
    for name, value in ports.items():
        text = text.replace("{" + name + "}", str(value))
    return text


# --------------------------------------------------------------------------- configs


def site_config(workers=1, limits=None, root="www", extra="", port_key="port"):
    """The standard single-listener static site.  `limits` is a dict of limit keys that
    override the defaults below (values already TOML-formatted strings or ints)."""
    lim = {
        "max_request_line": 8192,
        "max_header_bytes": 16384,
        "max_headers": 100,
        "max_body": '"1m"',
        "header_timeout": '"10s"',
        "idle_timeout": '"60s"',
    }
    for k, v in (limits or {}).items():
        lim[k] = v if isinstance(v, int) or (isinstance(v, str) and v.startswith('"')) \
            else '"%s"' % v
    lim_text = ", ".join("%s = %s" % (k, v) for k, v in lim.items())
    return (
        "[server]\n"
        "workers = %d\n"
        "\n"
        "[[listener]]\n"
        'name = "web"\n'
        'listen = ["127.0.0.1:{%s}"]\n'
        "limits = { %s }\n"
        "\n"
        "  [[listener.route]]\n"
        '  path_prefix = "/"\n'
        '  handler = { module = "static", root = "%s" }\n'
        "%s"
    ) % (workers, port_key, lim_text, root, extra)


# --------------------------------------------------------------------------- files


def write_tree(base, files):
    """Write {relpath: str|bytes} under base (creating folders)."""
    for rel, content in (files or {}).items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        with open(path, "wb") as f:
            f.write(content)


def tail(text, lines=60):
    parts = text.splitlines()
    if len(parts) > lines:
        parts = ["... (%d lines cut)" % (len(parts) - lines)] + parts[-lines:]
    return "\n".join(parts)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "ERROR: UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", VALGRIND_ERROR_MARKER)


# --------------------------------------------------------------------------- Atlas


class AtlasError(AssertionError):
    """Raised (as a test failure) when atlasd does not start, crashes or hangs."""


class Atlas:
    """Run atlasd for the duration of a `with` block.

        with Atlas(site_config(), www={"index.html": "hi"}) as a:
            raw(a.port, b"GET / ...")

    config     TOML text of atlas.toml (with {port}/{port2}/{port3} placeholders and
               {dir} for the config dir's absolute path, {modules} for a module_dir
               with the shipped and the test-only modules), or a dict
               {relpath: text} of files written into the config dir (must contain
               'atlas.toml' unless config_dir/argv say otherwise).
    www        {relpath: str|bytes} written under <dir>/www/ (or under www_dir).
    files      more {relpath: str|bytes} written relative to the config dir.
    config_dir use this existing directory instead of a temp one (nothing is written).
    port       the port to wait on (default: the generated {port}).
    argv       'dir' -> [bin, '-c', dir] (default); 'file' -> [bin, dir/atlas.toml];
               or a callable(dir) -> list of extra args.
    check_exit when the block ends normally, atlasd (if still running) is stopped with
               SIGTERM and must exit 0 with no sanitizer report; a crash during the
               block is a failure too.  Set False for tests that handle it themselves.
    ready      how readiness is seen: "connect" (a connection that is closed at once) or
               "listen" (the port listens, /proc/net/tcp): for L4 listeners, where a
               probe connection would reach the upstream server like a client.
    """

    def __init__(self, config=None, www=None, files=None, config_dir=None, port=None,
                 argv="dir", check_exit=True, env=None, ready_timeout=READY_TIMEOUT, ready="connect"):
        self.config = config
        self.www = www
        self.files = files
        self.config_dir = config_dir
        self.argv = argv
        self.check_exit = check_exit
        self.env = env
        self.ready_timeout = ready_timeout
        self.ready = ready
        self.fixed_port = port
        self._pick_ports()
        self.proc = None
        self.tmp = None
        self.dir = None
        self.returncode = None
        self._stopped_by_test = False

    # -- setup

    def _pick_ports(self):
        self.ports = pick_ports()
        if self.fixed_port is not None:
            self.ports["port"] = self.fixed_port
        self.port = self.ports["port"]
        self.port2 = self.ports["port2"]
        self.port3 = self.ports["port3"]

    def _prepare(self):
        if self.config_dir is not None:
            self.dir = self.config_dir
            return
        self.tmp = tempfile.mkdtemp(prefix="atlas-it-")
        self.dir = os.path.join(self.tmp, "etc")
        os.makedirs(self.dir)
        self.ports["dir"] = self.dir  # {dir}: the config dir, for absolute paths
        self.ports["modules"] = self._module_dir()
        if isinstance(self.config, dict):
            write_tree(self.dir, {k: fill(v, self.ports) if isinstance(v, str) else v
                                  for k, v in self.config.items()})
        elif self.config is not None:
            write_tree(self.dir, {"atlas.toml": fill(self.config, self.ports)})
        write_tree(self.dir, self.files)
        if self.www is not None:
            os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
            write_tree(os.path.join(self.dir, "www"), self.www)

    def _module_dir(self):
        return make_module_dir(self.tmp)

    def _ready_ports(self):
        """self.port, plus {port2}/{port3} when the config uses them (every listener
        must be up before the test starts)."""
        texts = []
        if isinstance(self.config, dict):
            texts = [v for v in self.config.values() if isinstance(v, str)]
        elif isinstance(self.config, str):
            texts = [self.config]
        ports = [self.port]
        for name in ("port2", "port3"):
            if any("{%s}" % name in t for t in texts):
                ports.append(self.ports[name])
        return ports

    def command(self):
        if callable(self.argv):
            return WRAPPER + [BIN] + list(self.argv(self.dir))
        if self.argv == "file":
            return WRAPPER + [BIN, os.path.join(self.dir, "atlas.toml")]
        return WRAPPER + [BIN, "-c", self.dir]

    def start(self):
        """Start atlasd and wait until it accepts connections on self.port.  If it fails
        because a generated port was taken in the meantime, retry with new ports."""
        if not os.path.exists(BIN):
            raise AtlasError("atlasd binary not found at %s (set --bin / ATLAS_BIN)" % BIN)
        for attempt in range(3):
            try:
                return self._start_once()
            except AtlasError:
                clash = (self.returncode is not None and self.fixed_port is None
                         and self.config_dir is None
                         and "in use" in self.stderr_text().lower())
                if not clash or attempt == 2:
                    raise
                self._cleanup()
                self._pick_ports()

    def _start_once(self):
        self.returncode = None
        self._prepare()
        if self.tmp is None:  # running on an existing config dir: logs go to a temp dir
            self.tmp = tempfile.mkdtemp(prefix="atlas-it-log-")
        logdir = self.tmp
        self.stdout_path = os.path.join(logdir, "stdout.txt")
        self.stderr_path = os.path.join(logdir, "stderr.txt")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        if self.env:
            env.update(self.env)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=logdir, env=env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.ready_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AtlasError("atlasd exited with %s before listening on %d\n"
                                 "command: %s\n--- stderr ---\n%s"
                                 % (rc, self.port, " ".join(self.command()),
                                    tail(self.stderr_text())))
            probe = listening if self.ready == "listen" else (lambda p: can_connect(p, timeout=0.5))
            if all(probe(p) for p in self._ready_ports()):
                return self
            if time.monotonic() > deadline:
                self._kill()
                raise AtlasError("atlasd did not listen on 127.0.0.1:%s within %.0fs\n"
                                 "--- stderr ---\n%s"
                                 % (self._ready_ports(), self.ready_timeout,
                                    tail(self.stderr_text())))
            time.sleep(0.05)

    # -- inspection

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            raise AtlasError("atlasd died (exit %s)\n--- stderr ---\n%s"
                             % (self.proc.poll(), tail(self.stderr_text())))

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- stopping

    def send_signal(self, sig):
        """Send a signal to atlasd (by PID)."""
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=15):
        """Wait for exit; return the exit code or None on timeout (process left running)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal atlasd and wait for it; return the exit code.  If it has not exited
        after `timeout` seconds it is SIGKILLed and the test fails."""
        self._stopped_by_test = True
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AtlasError("atlasd did not exit within %ss of %s; killed\n--- stderr ---\n%s"
                             % (timeout, signal.Signals(sig).name, tail(self.stderr_text())))
        return self.returncode

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def sanitizer_report(self):
        text = self.stderr_text()
        return any(m in text for m in SANITIZER_MARKERS)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self._cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        problem = None
        text = ""
        try:
            if exc_type is not None:
                self._dump_stderr()
            elif self.check_exit:
                if self.proc.poll() is not None and not self._stopped_by_test:
                    problem = "atlasd died during the test (exit %s)" % self.proc.poll()
                elif self.proc.poll() is None:
                    try:
                        rc = self.stop(signal.SIGTERM, timeout=30)
                    except AtlasError as e:
                        problem = str(e)
                        rc = None
                    if rc not in (None, 0):
                        problem = "atlasd exited %s on SIGTERM at the end of the test" % rc
                if problem is None and self.sanitizer_report():
                    problem = "sanitizer report in atlasd stderr"
        finally:
            self._kill()
            if problem:
                text = self.stderr_text()
            self._cleanup()
        if problem:
            raise AtlasError("%s\n--- stderr ---\n%s" % (problem, tail(text)))
        return False

    def _dump_stderr(self):
        """Write atlasd's stderr to our stderr; unittest's buffer attaches it to the
        failure, so the runner shows it next to the traceback."""
        state = self.proc.poll() if self.proc else "never started"
        sys.stderr.write("--- atlasd stderr (pid %s, %s) ---\n%s\n"
                         % (getattr(self, "pid", None),
                            "still running at the failure" if state is None
                            else "exit status %s" % state,
                            tail(self.stderr_text())))

    def _cleanup(self):
        if self.tmp and os.environ.get("ATLAS_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


# --------------------------------------------------------------------------- atlasd -t


def make_module_dir(tmp):
    """{modules}: a module_dir holding the shipped modules and the test-only ones
    (tests/modules), as symlinks into the build tree."""
    d = os.path.join(tmp, "modules")
    os.makedirs(d)
    for src in (os.path.join(BUILD, "modules"), os.path.join(BUILD, "tests", "modules")):
        if not os.path.isdir(src):
            continue
        for name in os.listdir(src):
            if name.startswith("mod_") and name.endswith(".so"):
                os.symlink(os.path.join(src, name), os.path.join(d, name))
    return d


def run_check(config, files=None, argv=None, timeout=CHECK_TIMEOUT):
    """Write config (text or {relpath: text} dict) into a temp dir and run
    `atlasd -t -c DIR`.  Returns (exit_code, stdout, stderr) as text."""
    tmp = tempfile.mkdtemp(prefix="atlas-check-")
    try:
        ports = pick_ports()
        d = os.path.join(tmp, "etc")
        os.makedirs(d)
        ports["dir"] = d
        ports["modules"] = make_module_dir(tmp)
        if isinstance(config, dict):
            write_tree(d, {k: fill(v, ports) if isinstance(v, str) else v
                           for k, v in config.items()})
        else:
            write_tree(d, {"atlas.toml": fill(config, ports)})
        write_tree(d, files)
        cmd = [BIN, "-t", "-c", d] if argv is None else [BIN] + list(argv(d))
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=tmp)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_bin(args, timeout=CHECK_TIMEOUT):
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------- raw I/O


def connect(port, timeout=10, nodelay=False, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw(port, data, timeout=5, host="127.0.0.1"):
    """Send raw bytes; read until the server closes or `timeout` seconds pass.
    A reset after the server closed counts as a close (what arrived is returned)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, timeout)


def read_until_close(sock, timeout=5):
    """Everything still buffered for sock plus what arrives until EOF or timeout."""
    chunks = [_take_buffer(sock)]
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def vm_hwm(pid):
    """Peak resident set size of process `pid` in bytes (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                value, unit = line.split()[1:3]
                assert unit == "kB", line
                return int(value) * 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


def runs_asan(pid):
    """True when `pid` is an ASan build: its quarantine and shadow memory make RSS bounds
    meaningless there (the normal build's run checks them)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def assert_peak_rss_below(pid, limit):
    """Bounded buffering: atlasd's peak RSS stays under `limit` bytes (not checked for an
    ASan build, whose quarantine and shadow memory say nothing about buffering)."""
    if runs_asan(pid):
        return
    hwm = vm_hwm(pid)
    if hwm >= limit:
        raise AssertionError("atlasd peak RSS %d KiB, over %d KiB" % (hwm >> 10, limit >> 10))


def recv_exactly(sock, n, timeout=20):
    """Reads until `n` bytes have come or the peer closed; returns what came."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        d = sock.recv(min(1 << 20, n - len(buf)))
        if not d:
            break
        buf += d
    return buf


def recv_to_eof(sock, timeout=20):
    """Everything until the peer ends its stream (raises socket.timeout if it does not)."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        d = sock.recv(1 << 20)
        if not d:
            return buf
        buf += d


def recv_sha256(sock, size, have=b""):
    """Reads until `size` bytes have come (counting `have`, read before), hashing them as
    they come instead of holding them; returns the SHA-256 hex digest. Raises
    AssertionError when the peer closes first."""
    h = hashlib.sha256(have)
    n = len(have)
    while n < size:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise AssertionError("closed after %d of %d bytes" % (n, size))
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest()


def wait_until(pred, what, timeout=20.0):
    """Poll pred() until it returns something true (returned); AssertionError naming `what`
    at the deadline. The poll that replaces a sleep: generous, for ASan builds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def wait_closed(sock, timeout=10):
    """Wait for the peer to close (EOF or reset).  Returns (closed, extra_bytes):
    closed is False if `timeout` seconds pass first; extra_bytes is whatever arrived
    (including read-ahead left by read_response) before the close."""
    extra = _take_buffer(sock)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, extra
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return False, extra
        except (ConnectionResetError, BrokenPipeError):
            return True, extra
        if not b:
            return True, extra
        extra += b


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def media_type(self):
        ct = self.header("Content-Type")
        return None if ct is None else ct.split(";")[0].strip().lower()

    def closes(self):
        return any("close" in [t.strip().lower() for t in v.split(",")]
                   for v in self.header_all("Connection"))

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.status, self.reason,
                                                      self.headers, len(self.body))


class ProtocolError(AssertionError):
    pass


# Per-socket read-ahead buffer so pipelined responses can be read one at a time.
_buffers = weakref.WeakKeyDictionary()


def _take_buffer(sock):
    b = _buffers.pop(sock, b"")
    return b


def _recv_more(sock, buf, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out waiting for response bytes (have %d: %r)"
                             % (len(buf), bytes(buf[:200])))
    sock.settimeout(left)
    b = sock.recv(262144)
    if not b:
        raise EOFError("connection closed by server (have %d bytes: %r)"
                       % (len(buf), bytes(buf[:200])))
    buf += b


def read_response(sock, head=False, timeout=10):
    """Read and parse one HTTP/1.x response from sock.

    head=True: the request was HEAD (no body whatever the headers say).
    Body by Content-Length, chunked, or until close when neither is present.
    Bytes read past the response are kept for the next call on the same socket.
    Raises EOFError if the server closes before a complete response,
    socket.timeout after `timeout` seconds, ProtocolError on an unparsable response."""
    buf = bytearray(_buffers.pop(sock, b""))
    deadline = time.monotonic() + timeout
    try:
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                _recv_more(sock, buf, deadline)
                end = buf.find(b"\r\n\r\n")
            raw_head = bytes(buf[:end + 4])
            del buf[:end + 4]
            lines = raw_head[:-4].split(b"\r\n")
            status_line = lines[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() \
                    or len(parts[1]) != 3:
                raise ProtocolError("bad status line %r" % status_line)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            for line in lines[1:]:
                if b":" not in line:
                    raise ProtocolError("bad header line %r" % line)
                k, v = line.split(b":", 1)
                headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
            resp = Response(version, status, reason, headers, b"", raw_head)
            if 100 <= status < 200:
                # interim response: return it (callers doing Expect handle it themselves)
                return resp
            if head or status in (204, 304):
                return resp
            te = resp.header("Transfer-Encoding")
            cl = resp.header("Content-Length")
            if te is not None and "chunked" in te.lower():
                resp.body = _read_chunked(sock, buf, deadline)
            elif cl is not None:
                n = int(cl)
                while len(buf) < n:
                    _recv_more(sock, buf, deadline)
                resp.body = bytes(buf[:n])
                del buf[:n]
            else:
                # close-delimited
                try:
                    while True:
                        _recv_more(sock, buf, deadline)
                except EOFError:
                    pass
                except ConnectionResetError:
                    pass
                resp.body = bytes(buf)
                del buf[:]
            return resp
    finally:
        if buf:
            _buffers[sock] = bytes(buf)


def _read_chunked(sock, buf, deadline):
    body = bytearray()
    while True:
        end = buf.find(b"\r\n")
        while end < 0:
            _recv_more(sock, buf, deadline)
            end = buf.find(b"\r\n")
        size_line = bytes(buf[:end]).split(b";")[0].strip()
        del buf[:end + 2]
        try:
            size = int(size_line, 16)
        except ValueError:
            raise ProtocolError("bad chunk size %r" % size_line)
        if size == 0:
            # trailers until empty line
            while True:
                end = buf.find(b"\r\n")
                while end < 0:
                    _recv_more(sock, buf, deadline)
                    end = buf.find(b"\r\n")
                line = bytes(buf[:end])
                del buf[:end + 2]
                if not line:
                    return bytes(body)
        while len(buf) < size + 2:
            _recv_more(sock, buf, deadline)
        body += buf[:size]
        if buf[size:size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        del buf[:size + 2]


class _BytesSock:
    """Just enough of a socket for read_response() over a bytes blob."""

    def __init__(self, data):
        self.data = data

    def settimeout(self, t):
        pass

    def recv(self, n):
        b, self.data = self.data[:n], self.data[n:]
        return b


def parse_response_bytes(data, head=False):
    """Parse the first response out of a bytes blob (e.g. from raw()); returns
    (Response, rest_bytes) or (None, data) when no complete response is present."""
    fake = _BytesSock(bytes(data))
    try:
        r = read_response(fake, head=head, timeout=5)
    except (EOFError, socket.timeout, ProtocolError, ValueError):
        return None, data
    return r, _take_buffer(fake) + fake.data


def request(port, method="GET", path="/", headers=None, body=b"", host="localhost",
            version="HTTP/1.1", timeout=10):
    """One request on a fresh connection (Connection: close); returns a Response."""
    hs = {"Host": host, "Connection": "close"}
    hs.update(headers or {})
    if body and "Content-Length" not in hs and "Transfer-Encoding" not in hs:
        hs["Content-Length"] = str(len(body))
    req = ("%s %s %s\r\n" % (method, path, version)).encode()
    for k, v in hs.items():
        if v is not None:
            req += ("%s: %s\r\n" % (k, v)).encode()
    req += b"\r\n" + body
    with connect(port, timeout=timeout) as s:
        s.sendall(req)
        return read_response(s, head=(method == "HEAD"), timeout=timeout)


def get(port, path="/", host="localhost", headers=None, timeout=10):
    return request(port, "GET", path, headers=headers, host=host, timeout=timeout)


def build_request(method="GET", path="/", host="localhost", headers=(), body=b"",
                  version="HTTP/1.1"):
    """Bytes of a request.  headers: iterable of (name, value); Host first unless None."""
    req = ("%s %s %s\r\n" % (method, path, version)).encode()
    if host is not None:
        req += ("Host: %s\r\n" % host).encode()
    for k, v in headers:
        req += ("%s: %s\r\n" % (k, v)).encode()
    return req + b"\r\n" + body


@contextlib.contextmanager
def raised_nofile(want=8192):
    """Raise RLIMIT_NOFILE for this process (and children started inside) if possible."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = soft
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    try:
        yield new
    finally:
        if new != soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
