"""Running atlasd for years: reloads when a config file changes (inotify, debounced), the
pid file and `atlasd -s`, READY/RELOADING/STOPPING to a service manager's NOTIFY_SOCKET,
graceful drain with many requests in flight, long-lived tunnels through reloads, and
reloads under load."""

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from backend import Backend
from harness import Atlas, can_connect, connect, read_response, recv_exactly, request, run_bin, wait_closed, wait_until

RELOADED = "Configuration hot-reloaded"


def proxy_config(servers, extra_server="", extra=""):
    return ('[server]\nworkers = 1\n%s\n[upstream.api]\nservers = [%s]\n\n'
            '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n%s\n'
            '  [[listener.route]]\n  path_prefix = "/"\n  handler = { module = "proxy", upstream = "api" }\n'
            % (extra_server, ", ".join('"%s"' % s for s in servers), extra))


def rewrite(path, text):
    """Replaces a config file the way deploy tools do: a new file renamed over the old."""
    tmp = path + ".tmp-new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def reloads(a, why=None):
    text = a.stderr_text()
    return text.count((why + ": " if why else "") + RELOADED)


class ConfigWatch(unittest.TestCase):
    def test_editing_the_config_reloads_it(self):
        with Backend("one") as one, Backend("two") as two:
            with Atlas(proxy_config([one.address])) as a:
                self.assertEqual(request(a.port, path="/echo").header("x-backend"), "one")
                rewrite(a.path("atlas.toml"), proxy_config([two.address]).replace("{port}", str(a.port)))
                wait_until(lambda: reloads(a, "config file change") == 1, "the reload on the file change")
                self.assertEqual(request(a.port, path="/echo").header("x-backend"), "two")
                # Written in place (an editor without rename) works too.
                with open(a.path("atlas.toml"), "w") as f:
                    f.write(proxy_config([one.address]).replace("{port}", str(a.port)))
                wait_until(lambda: reloads(a, "config file change") == 2, "the second reload")
                self.assertEqual(request(a.port, path="/echo").header("x-backend"), "one")

    def test_reweighted_servers_and_a_removed_listener(self):
        """A reload re-weights the servers; a listener it drops stops accepting, while a
        connection already open on it is still served."""
        def config(w1, w2, second_listener):
            text = ('[server]\nworkers = 1\n[upstream.api]\nlb = "weighted_round_robin"\n'
                    'servers = [{ address = "%s", weight = %d }, { address = "%s", weight = %d }]\n'
                    % (one.address, w1, two.address, w2))
            for name, key in (("web", "port"), ("more", "port2"))[:2 if second_listener else 1]:
                text += ('[[listener]]\nname = "%s"\nlisten = ["127.0.0.1:{%s}"]\n  [[listener.route]]\n'
                         '  path_prefix = "/"\n  handler = { module = "proxy", upstream = "api" }\n' % (name, key))
            return text

        def spread(n=8):
            got = [request(a.port, path="/echo").header("x-backend") for _ in range(n)]
            return got.count("one"), got.count("two")

        with Backend("one") as one, Backend("two") as two:
            with Atlas(config(1, 1, True)) as a:
                self.assertEqual(spread(), (4, 4))
                kept = connect(a.port2)
                kept.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(kept).status, 200)
                rewrite(a.path("atlas.toml"), config(3, 1, False).replace("{port}", str(a.port)))
                wait_until(lambda: reloads(a) == 1, "the reload")
                self.assertEqual(spread(), (6, 2))
                wait_until(lambda: not can_connect(a.port2), "the removed listener to stop accepting")
                kept.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(kept).status, 200)
                kept.close()

    def test_a_new_conf_d_file_is_read(self):
        with Backend("one") as one:
            with Atlas(proxy_config([one.address]), files={"conf.d/.keep": ""}) as a:
                self.assertEqual(request(a.port, path="/echo").status, 200)
                with open(a.path("conf.d", "extra.toml"), "w") as f:
                    f.write('[[listener]]\nname = "more"\nlisten = ["127.0.0.1:%d"]\n'
                            '  [[listener.route]]\n  path_prefix = "/"\n'
                            '  handler = { module = "proxy", upstream = "api" }\n' % a.port2)
                wait_until(lambda: reloads(a, "config file change") == 1, "the reload")
                self.assertEqual(request(a.port2, path="/echo").header("x-backend"), "one")

    def test_an_invalid_edit_is_rejected_and_serving_continues(self):
        with Backend("one") as one:
            with Atlas(proxy_config([one.address])) as a:
                good = open(a.path("atlas.toml")).read()
                rewrite(a.path("atlas.toml"), good.replace("[upstream.api]", "[upstream.api]\nlb = \"nope\""))
                wait_until(lambda: "config file change: configuration not reloaded" in a.stderr_text(),
                           "the rejected reload's log line")
                self.assertIn("upstream.api.lb", a.stderr_text())
                self.assertEqual(request(a.port, path="/echo").header("x-backend"), "one")
                rewrite(a.path("atlas.toml"), good)  # fixed: the next change is taken
                wait_until(lambda: reloads(a, "config file change") == 1, "the reload once fixed")
                self.assertEqual(request(a.port, path="/echo").status, 200)
                a.assert_alive()

    def test_watching_can_be_off(self):
        with Backend("one") as one, Backend("two") as two:
            with Atlas(proxy_config([one.address], extra_server="watch_config = false")) as a:
                rewrite(a.path("atlas.toml"), proxy_config([two.address], extra_server="watch_config = false")
                        .replace("{port}", str(a.port)))
                # Nothing reloads on its own; SIGHUP still does (and tells which it was).
                a.send_signal(signal.SIGHUP)
                wait_until(lambda: reloads(a, "SIGHUP") == 1, "the SIGHUP reload")
                self.assertEqual(reloads(a, "config file change"), 0)
                self.assertEqual(request(a.port, path="/echo").header("x-backend"), "two")


class PidFileAndSignals(unittest.TestCase):
    def test_pid_file_and_dash_s(self):
        with Backend("one") as one:
            # check_exit off: `-s stop` ends it, not the harness.
            with Atlas(proxy_config([one.address], extra_server='pid_file = "run/atlasd.pid"'),
                       files={"run/.keep": ""}, check_exit=False) as a:
                pid_path = a.path("run", "atlasd.pid")
                # Created when atlasd starts, the pid written just after: wait for both.
                wait_until(lambda: os.path.exists(pid_path) and open(pid_path).read(), "the pid in the pid file")
                self.assertEqual(open(pid_path).read(), "%d\n" % a.pid)
                code, out, err = run_bin(["-s", "reload", "-c", a.dir])
                self.assertEqual((code, err), (0, ""))
                wait_until(lambda: reloads(a, "SIGHUP") == 1, "the reload -s asked for")
                code, out, err = run_bin(["-s", "stop", "-c", a.dir])
                self.assertEqual((code, err), (0, ""))
                self.assertEqual(a.wait(), 0)
                self.assertFalse(a.sanitizer_report(), a.stderr_text())
                self.assertFalse(os.path.exists(pid_path), "the pid file outlived atlasd")
                code, out, err = run_bin(["-s", "stop", "-c", a.dir])
                self.assertEqual(code, 1)
                self.assertIn("cannot read the pid file %s" % pid_path, err)

    def test_dash_s_errors(self):
        tmp = tempfile.mkdtemp(prefix="atlas-it-")
        with_pid_file = '[server]\npid_file = "%s/p.pid"\n' % tmp
        cases = (  # config, the pid file's text, argument, exit status, message
            (with_pid_file, None, "restart", 2, "-s restart: unknown signal; use reload, stop, quit, reopen or upgrade"),
            (with_pid_file, "banana\n", "reload", 1, "does not hold a process id"),
            # Above any pid the kernel hands out (pid_max is at most 2^22).
            (with_pid_file, "%d\n" % ((1 << 22) + 1), "reload", 1, "no such process (a stale pid file?)"),
            ("[server]\nworkers = 1\n", None, "stop", 1, "sets no server.pid_file"))
        try:
            for config, pid_text, arg, status, needle in cases:
                with self.subTest(arg=arg, pid_text=pid_text):
                    with open(os.path.join(tmp, "atlas.toml"), "w") as f:
                        f.write(config)
                    if pid_text is not None:
                        with open(os.path.join(tmp, "p.pid"), "w") as f:
                            f.write(pid_text)
                    code, _, err = run_bin(["-s", arg, "-c", tmp])
                    self.assertEqual(code, status, err)
                    self.assertIn(needle, err)
        finally:
            shutil.rmtree(tmp)


class ServiceNotify(unittest.TestCase):
    def test_ready_reloading_stopping(self):
        tmp = tempfile.mkdtemp(prefix="atlas-it-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            path = os.path.join(tmp, "notify")
            sock.bind(path)
            sock.settimeout(20)
            with Backend("one") as one:
                with Atlas(proxy_config([one.address]), env={"NOTIFY_SOCKET": path}) as a:
                    self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=serving\n")
                    a.send_signal(signal.SIGHUP)
                    self.assertRegex(sock.recv(4096).decode(), r"^RELOADING=1\nMONOTONIC_USEC=\d+\n$")
                    self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=reloaded\n")
                    self.assertEqual(a.stop(), 0)
                    self.assertEqual(sock.recv(4096), b"STOPPING=1\n")
        finally:
            sock.close()
            shutil.rmtree(tmp)


class Drain(unittest.TestCase):
    def test_sigterm_with_100_slow_requests_in_flight(self):
        """Every one of them completes, then atlasd exits 0."""
        with Backend("one") as b, Atlas(proxy_config([b.address])) as a:
            results = [None] * 100

            def one_request(i):
                try:
                    with connect(a.port, timeout=60) as s:
                        s.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
                        r = read_response(s, timeout=60)
                        results[i] = (r.status, r.body)
                except Exception as e:  # reported below, with the others
                    results[i] = repr(e)

            threads = [threading.Thread(target=one_request, args=(i,)) for i in range(100)]
            for t in threads:
                t.start()
            try:
                wait_until(lambda: b.holding == 100, "100 requests at the upstream", timeout=60)
                a.send_signal(signal.SIGTERM)
                wait_until(lambda: "SIGTERM: stopping accepting" in a.stderr_text(), "the drain")
                # No new connections while draining (a served one would keep the port
                # answering, and this times out).
                wait_until(lambda: not can_connect(a.port), "the listener to stop accepting")
            finally:
                b.release()
                for t in threads:
                    t.join(60)
            self.assertEqual(a.stop(timeout=30), 0)
        self.assertEqual(results, [(200, b"held")] * 100)


def ws_frame(payload, opcode=1):
    """A client frame (masked, as RFC 6455 5.3 requires)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock):
    def exactly(n):
        buf = recv_exactly(sock, n)
        if len(buf) < n:
            raise AssertionError("connection closed inside a frame")
        return buf
    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    return b0 & 0x0F, exactly(n)


class LongLived(unittest.TestCase):
    @unittest.skipUnless(shutil.which("node") and os.path.isdir(os.path.join(os.path.dirname(__file__), "node_modules",
                                                                             "ws")), "needs node and npm ws")
    def test_websocket_opened_before_10_reloads_still_echoes(self):
        from test_websocket import NodeServer
        with NodeServer() as ws, Backend("other") as other:
            up = "127.0.0.1:%d" % ws.port
            text = proxy_config([up]).replace("upstream = \"api\" }", "upstream = \"api\", websocket = true }")
            with Atlas(text) as a:
                s = connect(a.port, timeout=20)
                try:
                    key = base64.b64encode(os.urandom(16)).decode()
                    s.sendall(("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
                    self.assertEqual(read_response(s, head=True).status, 101)
                    s.sendall(ws_frame(b"before"))
                    self.assertEqual(ws_read_frame(s), (1, b"before"))
                    for i in range(10):  # the upstream moves away and back
                        n = reloads(a)
                        servers = [other.address] if i % 2 == 0 else [up]
                        rewrite(a.path("atlas.toml"), text.replace('"%s"' % up, ", ".join('"%s"' % x for x in servers))
                                .replace("{port}", str(a.port)))
                        wait_until(lambda: reloads(a) > n, "reload %d" % (i + 1))
                    s.sendall(ws_frame(b"after ten reloads"))
                    self.assertEqual(ws_read_frame(s), (1, b"after ten reloads"))
                finally:
                    s.close()


def take_over(a):
    """A second atlasd on `a`'s config dir, taking its sockets over (stopped by the test
    through its Atlas, by PID)."""
    return Atlas(config_dir=a.dir, port=a.port, argv=lambda d: ["--takeover", "-c", d])


class Takeover(unittest.TestCase):
    def test_the_new_atlasd_takes_the_sockets_and_the_old_one_drains(self):
        with Backend("one") as b:
            config = proxy_config([b.address], extra_server='pid_file = "run/atlasd.pid"',
                                  ) + '\n[admin]\nlisten = "127.0.0.1:{port3}"\n'
            # check_exit off: the old one exits on its own once the new one serves.
            old = Atlas(config, files={"run/.keep": ""}, check_exit=False)
            with old:
                idle = connect(old.port)
                idle.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(idle).status, 200)
                held = []
                t = threading.Thread(target=lambda: held.append(request(old.port, path="/hold", timeout=60)))
                t.start()
                try:
                    wait_until(lambda: b.holding == 1, "the request in flight")
                    with take_over(old) as new:
                        wait_until(lambda: "takeover: took over from pid %d" % old.pid in new.stderr_text(),
                                   "the new atlasd's takeover")
                        self.assertIn("takeover: pid %d serves now" % new.pid, old.stderr_text())
                        # New connections: the new atlasd, on the same sockets; the admin API too.
                        self.assertEqual(request(old.port, path="/echo").status, 200)
                        self.assertEqual(request(old.port3, path="/status").status, 200)
                        # The old one's idle keep-alive connection is closed after a moment.
                        self.assertTrue(wait_closed(idle)[0], "the old idle connection stayed open")
                        b.release()
                        t.join(60)
                        self.assertEqual([(r.status, r.body) for r in held], [(200, b"held")])
                        self.assertEqual(old.wait(timeout=30), 0)
                        self.assertFalse(old.sanitizer_report(), old.stderr_text())
                        with open(old.path("run", "atlasd.pid")) as f:
                            self.assertEqual(f.read(), "%d\n" % new.pid)
                        self.assertEqual(request(old.port, path="/echo").status, 200)
                        self.assertEqual(request(old.port3, path="/status").status, 200)
                        # The next upgrade finds it the same way.
                        self.assertEqual(run_bin(["-s", "reload", "-c", old.dir])[0], 0)
                        wait_until(lambda: reloads(new, "SIGHUP") == 1, "the new atlasd's reload")
                finally:
                    b.release()
                    t.join(60)
                    idle.close()

    def test_an_admin_listener_moved_by_the_new_config_is_not_kept(self):
        """The new atlasd's config moves the admin API: the old address is handed over but
        not used, so once the old atlasd is gone nothing listens there any more."""
        with Backend("one") as b:
            extra = 'pid_file = "run/atlasd.pid"\nwatch_config = false'
            old = Atlas(proxy_config([b.address], extra_server=extra) + '\n[admin]\nlisten = "127.0.0.1:{port3}"\n',
                        files={"run/.keep": ""}, check_exit=False)
            with old:
                rewrite(old.path("atlas.toml"), (proxy_config([b.address], extra_server=extra) +
                                                 '\n[admin]\nlisten = "127.0.0.1:%d"\n' % old.port2)
                        .replace("{port}", str(old.port)))
                with take_over(old) as new:
                    wait_until(lambda: "takeover: took over" in new.stderr_text(), "the takeover")
                    self.assertEqual(old.wait(timeout=30), 0)
                    self.assertEqual(request(old.port2, path="/status").status, 200)
                    self.assertFalse(can_connect(old.port3), "the old admin address still takes connections")
                    self.assertEqual(request(old.port, path="/echo").status, 200)

    def test_usr2_starts_the_installed_binary_which_takes_over(self):
        """`atlasd -s upgrade` (USR2): the running atlasd starts the binary at its own path
        with --takeover; as its child the new one stays in a service manager's group and
        names itself the main process (MAINPID=) when it serves."""
        tmp = tempfile.mkdtemp(prefix="atlas-it-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        new_pid = None
        try:
            sock.bind(os.path.join(tmp, "notify"))
            sock.settimeout(30)
            with Backend("one") as b:
                old = Atlas(proxy_config([b.address], extra_server='pid_file = "run/atlasd.pid"'),
                            files={"run/.keep": ""}, check_exit=False,
                            env={"NOTIFY_SOCKET": os.path.join(tmp, "notify")})
                with old:
                    self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=serving\n")
                    self.assertEqual(run_bin(["-s", "upgrade", "-c", old.dir])[0], 0)
                    m = re.match(rb"^MAINPID=(\d+)\nREADY=1\nSTATUS=serving, took over\n$", sock.recv(4096))
                    self.assertIsNotNone(m)
                    new_pid = int(m.group(1))
                    self.assertNotEqual(new_pid, old.pid)
                    self.assertEqual(old.wait(timeout=30), 0)
                    self.assertFalse(old.sanitizer_report(), old.stderr_text())
                    with open(old.path("run", "atlasd.pid")) as f:
                        self.assertEqual(f.read(), "%d\n" % new_pid)
                    self.assertEqual(request(old.port, path="/echo").status, 200)
                    # Its log goes where the old one's went (inherited): one "stopped" so far.
                    self.assertEqual(old.stderr_text().count("info: stopped"), 1)
                    self.assertEqual(run_bin(["-s", "stop", "-c", old.dir])[0], 0)
                    wait_until(lambda: not os.path.exists("/proc/%d" % new_pid), "the new atlasd to exit")
                    new_pid = None
                    self.assertEqual(old.stderr_text().count("info: stopped"), 2)
                    self.assertNotIn("ERROR: AddressSanitizer", old.stderr_text())
        finally:
            if new_pid is not None and os.path.exists("/proc/%d" % new_pid):
                os.kill(new_pid, signal.SIGKILL)
            sock.close()
            shutil.rmtree(tmp)

    def test_takeover_errors(self):
        with Backend("one") as b:
            with Atlas(proxy_config([b.address])) as a:  # no pid file: nothing to find it by
                code, _, err = run_bin(["--takeover", "-c", a.dir], timeout=30)
                self.assertEqual(code, 1)
                self.assertIn("--takeover: %s sets no server.pid_file" % a.dir, err)
            with Atlas(proxy_config([b.address], extra_server='pid_file = "run/atlasd.pid"'),
                       files={"run/.keep": ""}) as a:
                # Without --takeover, a second atlasd on the same pid file is refused.
                code, _, err = run_bin(["-c", a.dir], timeout=30)
                self.assertEqual(code, 1)
                self.assertIn("server.pid_file: an atlasd already runs with %s" % a.path("run", "atlasd.pid.takeover"),
                              err)
                a.assert_alive()
                self.assertEqual(request(a.port, path="/echo").status, 200)
                with open(a.path("run", "atlasd.pid")) as f:  # still the running one's
                    self.assertEqual(f.read(), "%d\n" % a.pid)
        tmp = tempfile.mkdtemp(prefix="atlas-it-")
        try:  # nobody to take over from
            with open(os.path.join(tmp, "atlas.toml"), "w") as f:
                f.write(proxy_config(["127.0.0.1:1"], extra_server='pid_file = "a.pid"').replace("{port}", "0"))
            code, _, err = run_bin(["--takeover", "-c", tmp], timeout=30)
            self.assertEqual(code, 1)
            self.assertIn("takeover: cannot reach the running atlasd at %s/a.pid.takeover: No such file or directory "
                          "(is one running with this configuration?)" % tmp, err)
            self.assertFalse(os.path.exists(os.path.join(tmp, "a.pid")), "a failed start left its pid file")
        finally:
            shutil.rmtree(tmp)


class UnderLoad(unittest.TestCase):
    @unittest.skipUnless(shutil.which("wrk"), "needs wrk (tools/dev test installs it)")
    def test_50_reloads_and_a_takeover_during_a_wrk_run_lose_nothing(self):
        """Reloads alternating between two server sets, and halfway a binary upgrade by
        takeover, while wrk keeps 20 connections busy for 60 s: no socket error and no
        non-2xx response."""
        with Backend("one") as one, Backend("two") as two, Backend("three") as three:
            sets = ([one.address, two.address], [three.address])
            extra = 'pid_file = "run/atlasd.pid"'
            # check_exit off: the takeover ends it; checked below.
            old = Atlas(proxy_config(sets[0], extra_server=extra), files={"run/.keep": ""}, check_exit=False)
            with old, contextlib.ExitStack() as later:
                cur = old
                wrk = subprocess.Popen(["wrk", "-t1", "-c20", "-d60s", "http://127.0.0.1:%d/len/100" % old.port],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    for i in range(50):
                        if i == 25:
                            cur = later.enter_context(take_over(old))
                            wait_until(lambda: "takeover: took over" in cur.stderr_text(), "the takeover")
                            self.assertEqual(old.wait(timeout=40), 0)
                            self.assertFalse(old.sanitizer_report(), old.stderr_text())
                        n = reloads(cur)
                        rewrite(old.path("atlas.toml"), proxy_config(sets[(i + 1) % 2], extra_server=extra)
                                .replace("{port}", str(old.port)))
                        wait_until(lambda: reloads(cur) > n, "reload %d" % (i + 1))
                        deadline = time.monotonic() + 0.8  # spread over the run
                        while time.monotonic() < deadline and wrk.poll() is None:
                            time.sleep(0.05)
                    out, _ = wrk.communicate(timeout=120)
                finally:
                    if wrk.poll() is None:
                        wrk.kill()
                        wrk.wait()
                cur.assert_alive()
        self.assertEqual(wrk.returncode, 0, out)
        self.assertNotIn("Socket errors", out)
        self.assertNotIn("Non-2xx", out)
        self.assertGreater(int(re.search(r"(\d+) requests in", out).group(1)), 0, out)
        self.assertGreater(len(one.seen), 0)  # both server sets took requests
        self.assertGreater(len(three.seen), 0)


if __name__ == "__main__":
    unittest.main()
