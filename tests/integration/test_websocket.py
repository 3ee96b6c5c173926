"""WebSocket and other Upgrade tunnels through mod_proxy: node's `ws` client and server
(ws_peer.js) through a real atlasd, and raw-socket upstreams for what `ws` cannot show
(a protocol other than WebSocket, half-closes, a 101 the client did not ask for, bulk
bytes with backpressure, idle timeout)."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

from harness import too_heavy_for_valgrind
from harness import (HERE, Atlas, _buffers, _take_buffer, build_request, connect, read_response, read_until_close,
                     recv_sha256, run_check, runs_asan, vm_hwm)

NODE = shutil.which("node")
HAVE_WS = os.path.isdir(os.path.join(HERE, "node_modules", "ws"))


def config(server, handler_extra="", upstream_extra="", workers=1):
    return ("[server]\nworkers = %d\n\n[upstream.ws]\nservers = [\"%s\"]\n%s\n"
            '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
            '\n  [[listener.route]]\n  path_prefix = "/"\n'
            '  handler = { module = "proxy", upstream = "ws"%s }\n' % (workers, server, upstream_extra, handler_extra))


class NodeServer:
    """ws_peer.js server: started by the test, stopped by PID."""

    def __enter__(self):
        self.proc = subprocess.Popen([NODE, os.path.join(HERE, "ws_peer.js"), "server"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # blocks until listening (or the process died)
        if not line:
            raise AssertionError("ws_peer.js server did not start: " + self.proc.stderr.read())
        self.port = json.loads(line)["port"]
        self.events = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_event(self, kind, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in list(self.events):
                if e.get("event") == kind:
                    return e
            time.sleep(0.02)
        raise AssertionError("ws server saw no %s event; events: %r" % (kind, self.events))

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def node_client(mode, url, timeout=60):
    p = subprocess.run([NODE, os.path.join(HERE, "ws_peer.js"), mode, url], capture_output=True, text=True,
                       timeout=timeout)
    lines = p.stdout.strip().splitlines()
    return p.returncode, json.loads(lines[-1]) if lines else {"stderr": p.stderr}


@unittest.skipUnless(NODE and HAVE_WS, "needs node and tests/integration/node_modules/ws (tools/dev test installs it)")
class NodeWebSocket(unittest.TestCase):
    def test_echo_text_binary_1mib_and_close_handshake(self):
        with NodeServer() as srv, Atlas(config("127.0.0.1:%d" % srv.port)) as at:
            rc, res = node_client("client", "ws://127.0.0.1:%d/chat?room=1" % at.port)
            self.assertEqual(rc, 0, res)
            self.assertEqual([(e["length"], e["binary"]) for e in res["echoes"]],
                             [(19, False), (1 << 20, False), (1 << 20, True)])
            self.assertEqual(res["close"], {"code": 4000, "reason": "done"})
            opened = srv.wait_event("open")
            self.assertEqual(opened["path"], "/chat?room=1")
            self.assertEqual(opened["headers"]["upgrade"].lower(), "websocket")
            self.assertIn("x-forwarded-for", opened["headers"])
            # The server saw the client's close frame, code and reason intact.
            self.assertEqual(srv.wait_event("close")["code"], 4000)

    def test_server_initiated_close(self):
        with NodeServer() as srv, Atlas(config("127.0.0.1:%d" % srv.port)) as at:
            rc, res = node_client("client-server-close", "ws://127.0.0.1:%d/" % at.port)
            self.assertEqual(rc, 0, res)
            self.assertEqual(res, {"code": 4001, "reason": "server bye"})

    def test_keep_alive_requests_and_websockets_share_a_listener(self):
        # A plain request to the ws server gets its 426 through the proxy, then the same
        # client connection upgrades: ordinary HTTP before, tunnel after.
        with NodeServer() as srv, Atlas(config("127.0.0.1:%d" % srv.port)) as at, connect(at.port) as s:
            s.sendall(build_request("GET", "/plain"))
            self.assertEqual(read_response(s).status, 426)
            s.sendall(websocket_request("/chat"))
            r = read_response(s, head=True)
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            self.assertEqual(r.header("Upgrade").lower(), "websocket")
            self.assertEqual(r.header("Connection").lower(), "upgrade")
            self.assertIsNone(r.header("Content-Length"))
            self.assertIsNone(r.header("Transfer-Encoding"))
            # One masked text frame "hi" (RFC 6455 5.3), echoed back unmasked.
            mask = b"\x01\x02\x03\x04"
            s.sendall(b"\x81\x82" + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(b"hi")))
            self.assertEqual(recv_exact(s, 4), b"\x81\x02hi")

    def test_websocket_off_is_plain_http(self):
        with NodeServer() as srv, Atlas(config("127.0.0.1:%d" % srv.port, ", websocket = false")) as at:
            rc, res = node_client("client", "ws://127.0.0.1:%d/" % at.port)
            self.assertEqual(rc, 2, res)
            self.assertEqual(res["error"], "unexpected response 426")


def recv_exact(s, n, timeout=20):
    """n bytes, starting with what read_response read ahead; any surplus stays buffered."""
    s.settimeout(timeout)
    buf = _take_buffer(s)
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    if len(buf) > n:
        _buffers[s] = buf[n:]
    return buf[:n]


class RawUpstream:
    """A one-connection-at-a-time upstream on 127.0.0.1:0 that reads a request head,
    records it, and then runs `behaviour(conn, head)` in a thread."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.heads = []
        self.done = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    head, _, rest = head.partition(b"\r\n\r\n")
                    self.heads.append(head.decode("latin-1"))
                    self.behaviour(conn, head, rest)
                except Exception as e:  # reported by the test through .errors
                    self.errors.append(repr(e))
                finally:
                    self.done.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=10)


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\nX-Up: 1\r\n\r\n"


def echo_until_eof(conn, rest, greeting=b""):
    """Echo everything, upper-cased, until the proxy half-closes; then say goodbye and close."""
    if greeting:
        conn.sendall(greeting)
    if rest:
        conn.sendall(rest.upper())
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        conn.sendall(chunk.upper())
    conn.sendall(b"BYE")
    conn.shutdown(socket.SHUT_WR)


def upgrade_request(protocol, path="/t", extra=()):
    return build_request("GET", path, headers=[("Upgrade", protocol), ("Connection", "Upgrade")] + list(extra))


def websocket_request(path="/t"):
    return upgrade_request("websocket", path, [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                               ("Sec-WebSocket-Version", "13")])


def switch_then_wait_for_close(closed):
    """An upstream behaviour: 101 to WebSocket, then read until the proxy closes the
    connection (EOF or reset), which sets `closed`."""
    def behaviour(conn, head, rest):
        conn.sendall(SWITCH % b"websocket")
        conn.settimeout(30)
        try:
            while conn.recv(65536):
                pass
        except socket.timeout:
            return
        except OSError:
            pass
        closed.set()
    return behaviour


class OtherUpgrades(unittest.TestCase):
    def test_listed_protocol_tunnels_both_ways_with_half_closes(self):
        def behaviour(conn, head, rest):
            echo_until_eof(conn, rest, SWITCH % b"echo/1")

        with RawUpstream(behaviour) as up, \
                Atlas(config(up.address, ', upgrade = ["echo"]')) as at, connect(at.port) as s:
            # Bytes sent right behind the head, before the 101, are the new protocol's.
            s.sendall(upgrade_request("echo/1") + b"early ")
            r = read_response(s, head=True)
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("Upgrade"), "echo/1")
            self.assertEqual(r.header("X-Up"), "1")
            self.assertEqual(recv_exact(s, 6), b"EARLY ")
            s.sendall(b"hello")
            self.assertEqual(recv_exact(s, 5), b"HELLO")
            # Client half-close: the upstream sees EOF, still answers, then closes its side.
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_until_close(s, timeout=20), b"BYE")
        self.assertEqual(up.errors, [])
        self.assertIn("Upgrade: echo/1", up.heads[0])
        self.assertIn("Connection: upgrade", up.heads[0])

    def test_upstream_half_close_reaches_the_client_which_can_still_send(self):
        got = []

        def behaviour(conn, head, rest):
            conn.sendall(SWITCH % b"echo" + b"server done")
            conn.shutdown(socket.SHUT_WR)  # the upstream has nothing more to say...
            while True:  # ...but keeps reading what the client sends
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got.append(chunk)

        with RawUpstream(behaviour) as up, \
                Atlas(config(up.address, ', upgrade = ["echo"]')) as at, connect(at.port) as s:
            s.sendall(upgrade_request("echo"))
            self.assertEqual(read_response(s, head=True).status, 101)
            self.assertEqual(read_until_close(s, timeout=20), b"server done")  # EOF passed on
            s.sendall(b"after your close")
            s.shutdown(socket.SHUT_WR)
            self.assertTrue(up.done.wait(20))
        self.assertEqual(b"".join(got), b"after your close")

    def test_unlisted_protocol_is_not_forwarded(self):
        def behaviour(conn, head, rest):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        with RawUpstream(behaviour) as up, Atlas(config(up.address)) as at, connect(at.port) as s:
            s.sendall(upgrade_request("h2c", extra=[("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")]))
            r = read_response(s)
            self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertNotIn("upgrade", up.heads[0].lower())

    def test_101_to_a_protocol_not_offered_is_502(self):
        def behaviour(conn, head, rest):
            conn.sendall(SWITCH % b"h2c")

        with RawUpstream(behaviour) as up, Atlas(config(up.address)) as at, connect(at.port) as s:
            s.sendall(websocket_request())
            self.assertEqual(read_response(s).status, 502)

    def test_101_without_an_upgrade_request_is_502(self):
        def behaviour(conn, head, rest):
            conn.sendall(SWITCH % b"websocket")

        with RawUpstream(behaviour) as up, Atlas(config(up.address)) as at, connect(at.port) as s:
            s.sendall(build_request("GET", "/"))
            self.assertEqual(read_response(s).status, 502)

    @too_heavy_for_valgrind
    def test_bulk_both_ways_with_backpressure(self):
        # 64 MiB each way at once; the client reads slowly at first so both directions
        # fill atlasd's bounded buffers and pause.
        size = 64 << 20
        piece = os.urandom(1 << 20)
        want = hashlib.sha256(piece * 64).hexdigest()
        server_got = hashlib.sha256()

        def behaviour(conn, head, rest):
            conn.sendall(SWITCH % b"bulk")
            received = [len(rest)]
            server_got.update(rest)

            def reader():
                while received[0] < size:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    server_got.update(chunk)
                    received[0] += len(chunk)

            t = threading.Thread(target=reader)
            t.start()
            for _ in range(64):
                conn.sendall(piece)
            t.join(120)
            conn.shutdown(socket.SHUT_WR)

        with RawUpstream(behaviour) as up, \
                Atlas(config(up.address, ', upgrade = ["bulk"]')) as at, connect(at.port, timeout=120) as s:
            s.sendall(upgrade_request("bulk"))
            self.assertEqual(read_response(s, head=True).status, 101)
            sender = threading.Thread(target=lambda: [s.sendall(piece) for _ in range(64)])
            sender.start()
            time.sleep(0.5)  # not a readiness wait: lets the download back up before reading
            got = recv_sha256(s, size, _take_buffer(s))
            sender.join(120)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_until_close(s, timeout=20), b"")
            self.assertTrue(up.done.wait(60))
            # Bounded buffers, not 64 MiB held for a reader that waits: the RSS shows it.
            hwm = None if runs_asan(at.pid) else vm_hwm(at.pid)
        self.assertEqual(got, want)
        self.assertEqual(server_got.hexdigest(), want)
        self.assertEqual(up.errors, [])
        if hwm is not None:
            self.assertLess(hwm, 32 << 20, "atlasd peak RSS %d KiB" % (hwm >> 10))

    def test_idle_tunnel_is_closed_after_the_tunnel_timeout(self):
        closed = threading.Event()
        with RawUpstream(switch_then_wait_for_close(closed)) as up, \
                Atlas(config(up.address, upstream_extra='timeouts = { tunnel = "1s" }')) as at, \
                connect(at.port, timeout=30) as s:
            s.sendall(websocket_request())
            self.assertEqual(read_response(s, head=True).status, 101)
            self.assertEqual(read_until_close(s, timeout=30), b"")
            self.assertTrue(closed.wait(30), "the upstream connection stayed open")

    def test_client_disconnect_closes_the_upstream(self):
        closed = threading.Event()
        with RawUpstream(switch_then_wait_for_close(closed)) as up, Atlas(config(up.address)) as at:
            s = connect(at.port)
            s.sendall(websocket_request())
            self.assertEqual(read_response(s, head=True).status, 101)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # a reset, not even a FIN
            self.assertTrue(closed.wait(20), "the upstream connection stayed open")

    def test_bad_options_are_config_errors(self):
        for extra, key in ((', websocket = "yes"', "websocket"), (', upgrade = "echo"', "upgrade"),
                           (', upgrade = ["bad name"]', "upgrade"), (', upgrade = [1]', "upgrade")):
            with self.subTest(extra=extra):
                rc, out, err = run_check({"atlas.toml": config("127.0.0.1:9", extra)})
                self.assertEqual(rc, 1, err)
                self.assertIn(key, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)


if __name__ == "__main__":
    unittest.main()
