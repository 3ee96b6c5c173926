"""mod_tcp, the L4 proxy (issue 7): bytes relayed both ways between a client and a server
picked through the upstream's LB policy, half-closes passed on, the next server after a
failed connect, idle timeout, the listener's connection limit, PROXY protocol v1 and v2
accepted from a load balancer in front and sent to servers, TLS in front and to the
server, the seed's flat `mode = "tcp"`, the per-connection access log and reloads.

The servers are real TCP servers in threads of this process (tcp_peer.py); clients are
plain sockets, python's ssl and curl."""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import tcp_peer
from backend import Backend
from harness import too_heavy_for_valgrind
from harness import REPO, Atlas, assert_peak_rss_below, connect, free_port, read_response, recv_exactly, \
    recv_to_eof, run_check, wait_closed, wait_until
from tcp_peer import TcpServer

GiB = 1 << 30


def L4(*args, **kw):
    """atlasd seen ready by its listening port: a probe connection would reach the
    upstream server like a client and count in what the tests look at."""
    kw.setdefault("ready", "listen")
    return Atlas(*args, **kw)


def l4_config(servers, tcp_extra="", listener_extra="", upstream_extra="", workers=1, top="", log="stderr",
              chain=None):
    """One L4 listener on {port} forwarding to [upstream.app] (servers: "ip:port" list)."""
    tcp = '{ module = "tcp", upstream = "app"%s }' % ((", " + tcp_extra) if tcp_extra else "")
    return """%s
[server]
workers = %d
module_dir = "{modules}"

[upstream.app]
servers = [%s]
%s

[[listener]]
name = "l4"
listen = ["127.0.0.1:{port}"]
chain = [%s]
access_log = %s
%s
""" % (top, workers, ", ".join('"%s"' % s for s in servers), upstream_extra,
       chain if chain else tcp, json.dumps(log), listener_extra)


def stream_lines(a):
    """The L4 access log lines atlasd wrote to stderr so far (they are flushed each second)."""
    return [l for l in a.stderr_text().splitlines() if "] TCP " in l]


def dead_port():
    """A port nothing listens on (connects are refused)."""
    return free_port()


def proxy_v1(src, dst, sport, dport):
    family = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def proxy_v2(src, dst, sport, dport, tlvs=b""):
    """A v2 PROXY header (command PROXY, TCP over IPv4 or IPv6), built here independently
    of atlasd's code."""
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return tcp_peer.V2_SIGNATURE + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class Relay(unittest.TestCase):
    def test_echo_and_access_log(self):
        with TcpServer(tcp_peer.echo) as srv, L4(l4_config([srv.address])) as a:
            with connect(a.port) as s:
                for msg in (b"hello", b"x" * 70000, b"bye"):
                    s.sendall(msg)
                    self.assertEqual(recv_exactly(s, len(msg)), msg)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_to_eof(s), b"")  # the server's half-close came back
            lines = wait_until(lambda: stream_lines(a), "the connection's access log line")
            # nginx's stream format: client [time] TCP status bytes_sent bytes_received seconds "server"
            fields = lines[0].split()
            self.assertEqual(fields[0], "127.0.0.1")
            self.assertEqual(fields[3:7], ["TCP", "200", "70008", "70008"], lines[0])
            self.assertRegex(fields[7], r"^\d+\.\d{3}$")
            self.assertEqual(fields[8], '"%s"' % srv.address)

    def test_json_access_log(self):
        cfg = l4_config(["{BACKEND}"]).replace(
            'access_log = "stderr"', 'access_log = { path = "l4.log", format = "json" }')
        with TcpServer(tcp_peer.echo) as srv:
            with L4(cfg.replace("{BACKEND}", srv.address)) as a:
                with connect(a.port) as s:
                    s.sendall(b"12345")
                    self.assertEqual(recv_exactly(s, 5), b"12345")
                log = a.path("l4.log")
                line = wait_until(lambda: os.path.exists(log) and open(log).read().strip(), "the JSON log line")
                e = json.loads(line.splitlines()[0])
                self.assertEqual((e["client"], e["protocol"], e["status"], e["bytes_sent"], e["bytes_received"],
                                  e["upstream"]), ("127.0.0.1", "TCP", 200, 5, 5, srv.address))
                self.assertIn("duration_ms", e)

    @too_heavy_for_valgrind
    def test_bulk_one_gib_each_way(self):
        """1 GiB up and 1 GiB down at once through the proxy (the server echoes), both
        sha256-checked, and atlasd's memory stays bounded while it flows."""
        block = os.urandom(1 << 20)
        with TcpServer(tcp_peer.echo) as srv, L4(l4_config([srv.address])) as a:
            with connect(a.port, timeout=120) as s:
                sent = hashlib.sha256()

                def send():
                    for i in range(GiB // len(block)):
                        piece = block[i % 7:] + block[:i % 7]  # no two consecutive MiB alike
                        s.sendall(piece)
                        sent.update(piece)
                    s.shutdown(socket.SHUT_WR)

                t = threading.Thread(target=send)
                t.start()
                got = hashlib.sha256()
                n = 0
                s.settimeout(120)
                while True:
                    d = s.recv(1 << 20)
                    if not d:
                        break
                    got.update(d)
                    n += len(d)
                t.join()
            self.assertEqual(n, GiB)
            self.assertEqual(got.hexdigest(), sent.hexdigest())
            assert_peak_rss_below(a.pid, 64 << 20)
            line = wait_until(lambda: stream_lines(a), "the access log line")[0]
            self.assertEqual(line.split()[5:7], [str(GiB), str(GiB)], line)


class ManyStreams(unittest.TestCase):
    """Request-response exchanges on many streams at once, the load under which a
    worker's waits gather completions into batches ([server] batch_wait_us, shortened
    with few connections: 240 here make it 120 us). Every exchange must come back whole
    and in order, with batching at its longest setting and with it off; a wait that
    never ended would leave clients stuck past the deadline."""

    CLIENTS = 120
    EXCHANGES = 40

    def exchange_all(self, port):
        failures = []

        def client(n):
            try:
                with connect(port) as s:
                    s.settimeout(30)
                    for i in range(self.EXCHANGES):
                        msg = (b"%d:%d:" % (n, i)) * (1 + (n + i) % 50)
                        s.sendall(msg)
                        got = recv_exactly(s, len(msg))
                        if got != msg:
                            failures.append("client %d exchange %d: %r" % (n, i, got[:40]))
                            return
            except OSError as e:
                failures.append("client %d: %s" % (n, e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60  # one for all: a stuck client does not add its own minute
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.assertFalse([t for t in threads if t.is_alive()], "clients still waiting after 60 s")
        self.assertEqual(failures, [])

    def test_every_exchange_comes_back_with_and_without_batching(self):
        for wait in (1000, 0):
            with self.subTest(batch_wait_us=wait):
                cfg = l4_config(["{BACKEND}"]).replace("[server]\n", "[server]\nbatch_wait_us = %d\n" % wait)
                self.assertIn("batch_wait_us = %d" % wait, cfg)  # the setting under test is really there
                with TcpServer(tcp_peer.echo, backlog=256) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
                    self.exchange_all(a.port)


class HalfClose(unittest.TestCase):
    def test_client_shuts_write_and_still_receives(self):
        with TcpServer(tcp_peer.reply_on_eof) as srv, L4(l4_config([srv.address])) as a:
            with connect(a.port) as s:
                s.sendall(b"a" * 100000)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_to_eof(s), b"got 100000 bytes")
            self.assertTrue(srv.connections[0].eof.wait(10))

    def test_server_shuts_write_and_still_receives(self):
        with TcpServer(tcp_peer.speak_first(b"220 ready\r\n")) as srv, L4(l4_config([srv.address])) as a:
            with connect(a.port) as s:
                # The server spoke first and ended its stream: the client sees all of it and EOF...
                self.assertEqual(recv_to_eof(s), b"220 ready\r\n")
                # ...and may still send: the server gets every byte, then the client's EOF.
                s.sendall(b"QUIT after the server's EOF\r\n")
                s.shutdown(socket.SHUT_WR)
                rec = wait_until(lambda: srv.connections and srv.connections[0], "the server's connection")
                self.assertTrue(rec.eof.wait(10), "the server never saw the client's half-close")
                self.assertEqual(bytes(rec.received), b"QUIT after the server's EOF\r\n")
                closed, _ = wait_closed(s)
                self.assertTrue(closed)


class Servers(unittest.TestCase):
    def test_refusing_server_goes_to_the_next(self):
        cfg = l4_config(["127.0.0.1:%d" % dead_port(), "{BACKEND}"], upstream_extra="retries = 1")
        with TcpServer(tcp_peer.echo) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
            for i in range(6):
                with connect(a.port) as s:
                    s.sendall(b"ping %d" % i)
                    self.assertEqual(recv_exactly(s, 6), b"ping %d" % i)
            self.assertEqual(srv.count(), 6)
            wait_until(lambda: "connect failed: Connection refused" in a.stderr_text(), "the refusal in the log")

    def test_connect_timeout_goes_to_the_next(self):
        """A server whose accept queue is full drops the SYN: the connect times out after
        timeouts.connect and the connection goes to the next server."""
        stuck = socket.socket()
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        fillers = []
        for _ in range(4):  # fill its accept queue (listen(0) holds one)
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(stuck.getsockname())
            fillers.append(c)
        try:
            cfg = l4_config(["127.0.0.1:%d" % stuck.getsockname()[1], "{BACKEND}"], tcp_extra="",
                            upstream_extra='timeouts = { connect = "300ms" }\nlb = "round_robin"')
            with TcpServer(tcp_peer.echo) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
                for i in range(3):
                    with connect(a.port, timeout=20) as s:
                        s.sendall(b"hi")
                        self.assertEqual(recv_exactly(s, 2), b"hi")
                wait_until(lambda: "connect timed out" in a.stderr_text(), "the timeout in the log")
        finally:
            for c in fillers:
                c.close()
            stuck.close()

    def test_no_server_closes_the_client(self):
        """Nothing answers: the client is closed (502 in the log); then the server is down
        (passive check), and the next client is closed at once (503)."""
        cfg = l4_config(["127.0.0.1:%d" % dead_port()])
        with L4(cfg) as a:
            for _ in range(2):
                with connect(a.port) as s:
                    s.sendall(b"anyone?")
                    closed, got = wait_closed(s)
                    self.assertTrue(closed)
                    self.assertEqual(got, b"")
            lines = wait_until(lambda: len(stream_lines(a)) >= 2 and stream_lines(a), "two log lines")
            self.assertEqual([l.split()[4] for l in lines], ["502", "503"], lines)

    def test_client_gone_before_the_connect_is_499(self):
        """A client that resets while its server connection is still being made is logged
        499 (not the server's fault), and the server is not marked down."""
        stuck = socket.socket()
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(stuck.getsockname())
            fillers.append(c)
        try:
            with L4(l4_config(["127.0.0.1:%d" % stuck.getsockname()[1]])) as a:
                with connect(a.port) as s:
                    s.sendall(b"x")
                    # A reset, not a half-close (after which the client would still wait).
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                line = wait_until(lambda: stream_lines(a), "the log line")[0]
                self.assertEqual(line.split()[4:7], ["499", "0", "1"], line)
                self.assertNotIn("down", a.stderr_text())
        finally:
            for c in fillers:
                c.close()
            stuck.close()

    def test_least_connections_counts_open_connections(self):
        """Long-lived L4 connections count as load: least_connections spreads them."""
        with TcpServer(tcp_peer.echo) as s1, TcpServer(tcp_peer.echo) as s2:
            cfg = l4_config([s1.address, s2.address], upstream_extra='lb = "least_connections"', workers=2)
            with L4(cfg) as a:
                socks = []
                try:
                    for i in range(6):
                        s = connect(a.port)
                        socks.append(s)
                        s.sendall(b"x")
                        self.assertEqual(recv_exactly(s, 1), b"x")
                    self.assertEqual((s1.count(), s2.count()), (3, 3))
                finally:
                    for s in socks:
                        s.close()


class Resets(unittest.TestCase):
    def test_paused_client_that_resets_is_noticed(self):
        """The server stops reading, so the client's reads are paused (bounded buffers);
        the client then resets: atlasd notices at once (not when the server drains) and
        closes the server side too."""
        go = threading.Event()

        def stalled_sink(sock, rec):
            go.wait(60)
            while sock.recv(1 << 20):
                pass
            rec.eof.set()

        with TcpServer(stalled_sink) as srv, L4(l4_config([srv.address])) as a:
            s = connect(a.port)
            s.settimeout(0.5)
            sent = 0
            try:
                while sent < (64 << 20):  # until the proxy stops taking more
                    sent += s.send(b"u" * (1 << 20))
            except socket.timeout:
                pass
            self.assertLess(sent, 64 << 20, "the proxy never stopped reading")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # a reset
            line = wait_until(lambda: stream_lines(a), "the client's connection to end")[0]
            self.assertEqual(line.split()[4], "200", line)
            go.set()
            self.assertTrue(srv.connections[0].eof.wait(30), "the server side was left open")


class Timeouts(unittest.TestCase):
    def test_idle_timeout_closes_both_sides(self):
        with TcpServer(tcp_peer.echo) as srv, L4(l4_config([srv.address], tcp_extra='idle_timeout = "1s"')) as a:
            with connect(a.port) as s:
                s.sendall(b"hi")
                self.assertEqual(recv_exactly(s, 2), b"hi")
                closed, extra = wait_closed(s, timeout=20)
                self.assertTrue(closed)
                self.assertEqual(extra, b"")
            self.assertTrue(srv.connections[0].done.wait(20), "the server side was not closed")


class ConnectionLimit(unittest.TestCase):
    def test_over_the_limit_waits_for_a_slot(self):
        """max_connections = 2 over two workers: a third client is not served (its bytes
        reach no server) until one of the first two goes; then it is."""
        cfg = l4_config(["{BACKEND}"], listener_extra="max_connections = 2", workers=2)
        with TcpServer(tcp_peer.echo) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
            first = [connect(a.port), connect(a.port)]
            for i, s in enumerate(first):
                s.sendall(b"%d" % i)
                self.assertEqual(recv_exactly(s, 1), b"%d" % i)
            third = connect(a.port)
            try:
                third.sendall(b"third")
                time.sleep(0.5)  # a window for a wrong relay to show; nothing is timed
                self.assertEqual(srv.count(), 2, "a third connection went through")
                first[0].close()
                self.assertEqual(recv_exactly(third, 5), b"third")
                self.assertEqual(srv.count(), 3)
            finally:
                third.close()
                first[1].close()

    def test_limit_applies_to_http_listeners(self):
        cfg = """
[server]
workers = 1
[[listener]]
listen = ["127.0.0.1:{port}"]
max_connections = 1
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "www" }
"""
        with L4(cfg, www={"index.html": "hi"}) as a:
            with connect(a.port) as s1:
                s1.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(s1).status, 200)
                with connect(a.port) as s2:
                    s2.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    s1.close()
                    self.assertEqual(read_response(s2).status, 200)


class ProxyProtocol(unittest.TestCase):
    def relay_header(self, sent, tcp_pp, expected, listener_pp=True, payload=b"payload"):
        cfg = l4_config(["{BACKEND}"], tcp_extra='proxy_protocol = "%s"' % tcp_pp,
                        listener_extra="proxy_protocol = true" if listener_pp else "")
        with TcpServer(tcp_peer.proxy_capture) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
            with connect(a.port) as s:
                s.sendall(sent + payload)
                self.assertEqual(recv_exactly(s, len(payload)), payload)
                port = s.getsockname()[1]
            rec = srv.connections[0]
            self.assertEqual(rec.header, expected(port, a.port) if callable(expected) else expected)
            self.assertEqual(bytes(rec.received), payload)
            return a, wait_until(lambda: stream_lines(a), "the log line")

    def test_v1_in_v1_out_byte_exact(self):
        h = proxy_v1("203.0.113.7", "198.51.100.1", 40000, 443)
        _, lines = self.relay_header(h, "v1", h)
        self.assertTrue(lines[0].startswith("203.0.113.7 ["), lines[0])  # the real client is logged

    def test_v1_ipv6(self):
        h = proxy_v1("2001:db8::1", "2001:db8::2", 65535, 8443)
        self.relay_header(h, "v1", h)

    def test_v2_in_v2_out_byte_exact(self):
        h = proxy_v2("203.0.113.9", "198.51.100.2", 51234, 443)
        self.relay_header(h, "v2", h)

    def test_v2_ipv6_with_tlvs_in_v1_out(self):
        tlv = bytes([0x02, 0x00, 0x05]) + b"a.com"  # PP2_TYPE_AUTHORITY, skipped
        self.relay_header(proxy_v2("2001:db8::7", "2001:db8::8", 1000, 2000, tlv), "v1",
                          proxy_v1("2001:db8::7", "2001:db8::8", 1000, 2000))

    def test_v1_in_v2_out(self):
        self.relay_header(proxy_v1("192.0.2.1", "192.0.2.2", 1, 2), "v2", proxy_v2("192.0.2.1", "192.0.2.2", 1, 2))

    def test_sent_without_one_coming_in(self):
        """No PROXY header accepted: the socket's own addresses go out."""
        self.relay_header(b"", "v1", lambda cport, lport: proxy_v1("127.0.0.1", "127.0.0.1", cport, lport),
                          listener_pp=False)
        self.relay_header(b"", "v2", lambda cport, lport: proxy_v2("127.0.0.1", "127.0.0.1", cport, lport),
                          listener_pp=False)

    def test_local_and_unknown_use_the_socket(self):
        local = tcp_peer.V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00])
        self.relay_header(local, "v1", lambda cport, lport: proxy_v1("127.0.0.1", "127.0.0.1", cport, lport))
        self.relay_header(b"PROXY UNKNOWN\r\n", "v1",
                          lambda cport, lport: proxy_v1("127.0.0.1", "127.0.0.1", cport, lport))

    def test_header_in_pieces(self):
        h = proxy_v2("203.0.113.9", "198.51.100.2", 51234, 443)
        cfg = l4_config(["{BACKEND}"], tcp_extra='proxy_protocol = "v2"', listener_extra="proxy_protocol = true")
        with TcpServer(tcp_peer.proxy_capture) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
            with connect(a.port, nodelay=True) as s:
                for i in range(0, len(h), 5):
                    s.sendall(h[i:i + 5])
                    time.sleep(0.02)  # separate segments; nothing is timed
                s.sendall(b"rest")
                self.assertEqual(recv_exactly(s, 4), b"rest")
            self.assertEqual(srv.connections[0].header, h)

    def test_bad_header_closes_and_reaches_no_server(self):
        cfg = l4_config(["{BACKEND}"], listener_extra="proxy_protocol = true")
        with TcpServer(tcp_peer.echo) as srv, L4(cfg.replace("{BACKEND}", srv.address)) as a:
            for bad in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
                        b"PROXY TCP4 1.2.3.4\r\n", tcp_peer.V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\0" * 12):
                with connect(a.port) as s:
                    s.sendall(bad)
                    closed, got = wait_closed(s)
                    self.assertTrue(closed, bad)
                    self.assertEqual(got, b"")
            self.assertEqual(srv.count(), 0)
            lines = wait_until(lambda: len(stream_lines(a)) >= 4 and stream_lines(a), "four log lines")
            self.assertTrue(all(l.split()[4] == "400" for l in lines), lines)
            self.assertIn("bad PROXY protocol header", a.stderr_text())

    def test_header_timeout(self):
        cfg = l4_config(["127.0.0.1:1"], listener_extra='proxy_protocol = true\nlimits = { header_timeout = "1s" }')
        with L4(cfg) as a, connect(a.port) as s:
            s.sendall(b"PROXY TCP4 ")
            closed, _ = wait_closed(s, timeout=20)
            self.assertTrue(closed)

    def test_http_listener_uses_the_real_client(self):
        """On an HTTP listener the PROXY source is the client: X-Forwarded-For, the access
        log and the hash policy all use it."""
        with Backend("b1") as b1, Backend("b2") as b2:
            cfg = """
[server]
workers = 1
[upstream.web]
servers = ["127.0.0.1:%d", "127.0.0.1:%d"]
lb = "hash"
[[listener]]
listen = ["127.0.0.1:{port}"]
proxy_protocol = true
access_log = "stderr"
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "proxy", upstream = "web" }
""" % (b1.port, b2.port)
            with L4(cfg) as a:
                def ask(src):
                    with connect(a.port) as s:
                        s.sendall(proxy_v1(src, "192.0.2.80", 5555, 80) +
                                  b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        r = read_response(s)
                        self.assertEqual(r.status, 200)
                        return r.header("X-Backend"), dict(json.loads(r.body)["headers"])["X-Forwarded-For"]
                picks = {}
                for i in range(24):
                    src = "198.51.100.%d" % (i % 8 + 1)
                    backend, xff = ask(src)
                    self.assertEqual(xff, src)
                    self.assertEqual(picks.setdefault(src, backend), backend, "the hash moved " + src)
                self.assertEqual(set(picks.values()), {"b1", "b2"})
                wait_until(lambda: '198.51.100.3 - - [' in a.stderr_text(), "the real client in the access log")


TLS_DIR = None


def setUpModule():
    global TLS_DIR
    if shutil.which("openssl"):
        TLS_DIR = tempfile.mkdtemp(prefix="atlas-tcp-tls-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "3", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", "key.pem", "-out", "cert.pem"], cwd=TLS_DIR, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)


def tearDownModule():
    if TLS_DIR:
        shutil.rmtree(TLS_DIR, ignore_errors=True)


def tls_files():
    out = {}
    for n in ("cert.pem", "key.pem"):
        with open(os.path.join(TLS_DIR, n), "rb") as f:
            out[n] = f.read()
    return out


@unittest.skipIf(not shutil.which("openssl"), "the openssl command line is not installed")
class Tls(unittest.TestCase):
    def test_tls_in_front_of_tcp(self):
        """TLS terminated by mod_tls, plain TCP to the server: 3 MiB echoed intact; the
        client's close_notify is its half-close, passed on to the server, and the server's
        EOF comes back as close_notify (unwrap() completes)."""
        chain = '{ module = "tls", cert = "cert.pem", key = "key.pem" }, { module = "tcp", upstream = "app" }'
        with TcpServer(tcp_peer.echo) as srv, L4(l4_config([srv.address], chain=chain), files=tls_files()) as a:
            ctx = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "cert.pem"))
            data = os.urandom(3 << 20)
            with socket.create_connection(("127.0.0.1", a.port), timeout=20) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    # One thread per SSL object (OpenSSL's are not for concurrent use):
                    # a piece out, its echo back.
                    echoed = b""
                    for off in range(0, len(data), 256 * 1024):
                        piece = data[off:off + 256 * 1024]
                        s.sendall(piece)
                        echoed += recv_exactly(s, len(piece))
                    s.unwrap()  # close_notify out; returns once the server's close_notify came
            self.assertEqual(hashlib.sha256(echoed).hexdigest(), hashlib.sha256(data).hexdigest())
            rec = srv.connections[0]
            self.assertTrue(rec.eof.wait(20), "the server never saw the client's end")
            line = wait_until(lambda: stream_lines(a), "the log line")[0]
            self.assertEqual(line.split()[4:7], ["200", str(len(data)), str(len(data))])

    def test_server_connection_waits_for_the_client_handshake(self):
        """Behind TLS the server connection is made once the client's handshake is
        through: a client that never sends a ClientHello costs no upstream connection,
        and is closed after header_timeout (400 in the log)."""
        chain = '{ module = "tls", cert = "cert.pem", key = "key.pem" }, { module = "tcp", upstream = "app" }'
        with TcpServer(tcp_peer.echo) as srv:
            cfg = l4_config([srv.address], chain=chain, listener_extra='limits = { header_timeout = "1s" }')
            with L4(cfg, files=tls_files()) as a:
                with connect(a.port) as s:
                    closed, _ = wait_closed(s, timeout=20)
                    self.assertTrue(closed)
                self.assertEqual(srv.count(), 0)
                line = wait_until(lambda: stream_lines(a), "the log line")[0]
                self.assertEqual(line.split()[4:7], ["400", "0", "0"], line)

    def test_tls_to_the_server(self):
        """An upstream `tls` table: the client speaks plain TCP, the server TLS."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem"))

        def tls_echo(sock, rec):
            sock.sendall(b"hello over TLS\n")  # the server speaks first
            while True:
                d = sock.recv(1 << 16)
                if not d:
                    break
                sock.sendall(d)
            rec.eof.set()
            sock.unwrap()

        with TcpServer(tcp_peer.tls(tls_echo, ctx)) as srv:
            cfg = l4_config([srv.address], upstream_extra='tls = { ca = "cert.pem", sni = "localhost" }')
            with L4(cfg, files=tls_files()) as a, connect(a.port) as s:
                self.assertEqual(recv_exactly(s, 15), b"hello over TLS\n")
                s.sendall(b"over TLS upstream")
                self.assertEqual(recv_exactly(s, 17), b"over TLS upstream")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_to_eof(s), b"")
                self.assertTrue(srv.connections[0].eof.wait(10))

    def test_proxy_header_goes_before_the_tls_handshake(self):
        """PROXY protocol and TLS to the server: the header in the clear, then TLS."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem"))

        def header_then_tls(sock, rec):
            rec.header = tcp_peer.read_proxy_header(sock)
            tcp_peer.tls(tcp_peer.echo, ctx)(sock, rec)

        with TcpServer(header_then_tls) as srv:
            cfg = l4_config([srv.address], tcp_extra='proxy_protocol = "v2"',
                            listener_extra="proxy_protocol = true",
                            upstream_extra='tls = { ca = "cert.pem", sni = "localhost" }')
            with L4(cfg, files=tls_files()) as a, connect(a.port) as s:
                h = proxy_v2("203.0.113.50", "203.0.113.51", 1234, 443)
                s.sendall(h + b"secret")
                self.assertEqual(recv_exactly(s, 6), b"secret")
                self.assertEqual(srv.connections[0].header, h)

    def test_stalled_server_handshake_goes_to_the_next(self):
        """A server that takes the connection but never answers the ClientHello: after
        timeouts.connect the attempt failed, and the next server has the client's bytes."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem"))
        done = threading.Event()

        def silent(sock, rec):
            done.wait(60)

        with TcpServer(silent) as mute, TcpServer(tcp_peer.tls(tcp_peer.echo, ctx)) as good:
            cfg = l4_config([mute.address, good.address],
                            upstream_extra='lb = "round_robin"\ntimeouts = { connect = "500ms" }\n'
                                           'tls = { ca = "cert.pem", sni = "localhost" }')
            try:
                with L4(cfg, files=tls_files()) as a:
                    for i in range(2):
                        with connect(a.port, timeout=30) as s:
                            s.sendall(b"waited %d" % i)
                            self.assertEqual(recv_exactly(s, 8, timeout=30), b"waited %d" % i)
                    wait_until(lambda: "TLS handshake timed out" in a.stderr_text(), "the timeout in the log")
            finally:
                done.set()

    def test_proxy_header_before_the_client_handshake(self):
        """A load balancer's PROXY header comes before the client's TLS: it is read first,
        then the handshake, and the server gets the real client in a header of its own."""
        chain = '{ module = "tls", cert = "cert.pem", key = "key.pem" }, { module = "tcp", upstream = "app", proxy_protocol = "v1" }'
        with TcpServer(tcp_peer.proxy_capture) as srv:
            cfg = l4_config([srv.address], chain=chain, listener_extra="proxy_protocol = true")
            with L4(cfg, files=tls_files()) as a:
                ctx = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "cert.pem"))
                h = proxy_v1("198.51.100.77", "203.0.113.1", 60000, 443)
                with socket.create_connection(("127.0.0.1", a.port), timeout=20) as raw:
                    raw.sendall(h)
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(b"inside TLS")
                        self.assertEqual(recv_exactly(s, 10), b"inside TLS")
                self.assertEqual(srv.connections[0].header, h)
                line = wait_until(lambda: stream_lines(a), "the log line")[0]
                self.assertTrue(line.startswith("198.51.100.77 ["), line)

    def test_failed_server_handshake_goes_to_the_next(self):
        """A server that is not TLS at all (it echoes the ClientHello): the handshake fails
        and the connection goes to the next server, the client's bytes intact."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem"))
        with TcpServer(tcp_peer.echo) as plain, TcpServer(tcp_peer.tls(tcp_peer.echo, ctx)) as good:
            cfg = l4_config([plain.address, good.address],
                            upstream_extra='lb = "round_robin"\ntls = { ca = "cert.pem", sni = "localhost" }')
            with L4(cfg, files=tls_files()) as a:
                for i in range(4):
                    with connect(a.port) as s:
                        s.sendall(b"early bytes %d" % i)
                        self.assertEqual(recv_exactly(s, 13), b"early bytes %d" % i)


class Drain(unittest.TestCase):
    def test_sigterm_lets_a_relayed_connection_go_on_until_drain_timeout(self):
        """SIGTERM stops accepting; an open L4 connection keeps relaying until it ends or
        server.drain_timeout passes, then atlasd exits 0."""
        with TcpServer(tcp_peer.echo) as srv:
            cfg = l4_config([srv.address], top='', workers=1).replace(
                "[server]\n", '[server]\ndrain_timeout = "2s"\n')
            with L4(cfg, check_exit=False) as a, connect(a.port) as s:
                s.sendall(b"before")
                self.assertEqual(recv_exactly(s, 6), b"before")
                a.send_signal(signal.SIGTERM)
                wait_until(lambda: "SIGTERM" in a.stderr_text(), "the drain to start")
                s.sendall(b"during")
                self.assertEqual(recv_exactly(s, 6), b"during")
                self.assertEqual(a.wait(timeout=30), 0)
                closed, _ = wait_closed(s)
                self.assertTrue(closed)


class SeedAndConfig(unittest.TestCase):
    def test_seed_flat_tcp_example(self):
        """configs/examples/tcp-proxy runs unchanged (ports moved): curl through it to an
        HTTP server."""
        with open(os.path.join(REPO, "configs", "examples", "tcp-proxy", "atlas.toml")) as f:
            text = f.read()
        self.assertIn('mode = "tcp"', text)
        with Backend("seed") as b:
            listen = free_port()
            cfg = text.replace("port = 8080", "port = %d" % listen).replace("port = 3000", "port = %d" % b.port)
            with L4({"atlas.toml": cfg}, port=listen, argv="file") as a:
                p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20", "-D", "-",
                                    "http://127.0.0.1:%d/echo" % a.port],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                head, _, body = p.stdout.decode().partition("\r\n\r\n")
                self.assertTrue(head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), head)
                self.assertIn("X-Backend: seed", head)
                # L4: nothing was added to the request on the way.
                self.assertNotIn("X-Forwarded-For", [h[0] for h in json.loads(body)["headers"]])

    def test_config_errors_name_the_key(self):
        cases = [
            ('{ module = "tcp" }', "listener.l4.chain[0]: upstream: required"),
            ('{ module = "tcp", upstream = "nope" }', 'upstream: no upstream named "nope"'),
            ('{ module = "tcp", upstream = "app", proxy_protocol = "v3" }',
             'proxy_protocol: must be "v1", "v2" or false'),
            ('{ module = "tcp", upstream = "app", proxy_protocol = true }', "say which version"),
            ('{ module = "tcp", upstream = "app", idle_timeout = "soon" }',
             'idle_timeout: must be a duration like "30s" or "10m"'),
            ('{ module = "tcp", upstream = "app", idle_timeout = "0s" }', "idle_timeout: must be a duration"),
            ('{ module = "tcp", upstream = "app", splice = true }', "splice: unknown key"),
        ]
        for chain, want in cases:
            code, _, err = run_check(l4_config(["127.0.0.1:1"], chain=chain))
            self.assertEqual(code, 1, chain)
            self.assertIn(want, err, chain)
        code, _, err = run_check(l4_config(["127.0.0.1:1"], listener_extra='proxy_protocol = "yes"'))
        self.assertEqual(code, 1)
        self.assertIn("listener.l4.proxy_protocol: must be true or false (got a string)", err)


class Reload(unittest.TestCase):
    def test_open_connection_survives_reloads(self):
        """A relayed connection keeps its server through reloads that move the upstream
        elsewhere; new connections go to the new server."""
        with TcpServer(tcp_peer.echo) as old, TcpServer(tcp_peer.echo) as new:
            with L4(l4_config([old.address])) as a:
                with connect(a.port) as s:
                    s.sendall(b"before")
                    self.assertEqual(recv_exactly(s, 6), b"before")
                    with open(a.path("atlas.toml")) as f:
                        text = f.read()
                    for i in range(3):
                        with open(a.path("atlas.toml"), "w") as f:
                            f.write(text.replace(old.address, new.address) if i % 2 == 0 else text)
                        n = a.stderr_text().count("Configuration hot-reloaded")
                        a.send_signal(signal.SIGHUP)
                        wait_until(lambda: a.stderr_text().count("Configuration hot-reloaded") > n, "the reload")
                    s.sendall(b"after")
                    self.assertEqual(recv_exactly(s, 5), b"after")
                    self.assertEqual(old.count(), 1)
                with connect(a.port) as s2:
                    s2.sendall(b"new")
                    self.assertEqual(recv_exactly(s2, 3), b"new")
                self.assertEqual(new.count(), 1)


if __name__ == "__main__":
    unittest.main()
