"""TLS to upstream servers ([upstream.NAME] tls = {...}, mod_tls's client side): the
certificate is verified against a CA file and the configured name, a failed handshake
counts against the server and the request goes to the next one, pooled connections
and resumed sessions save handshakes. The upstream is python3's http.server behind
python's ssl (OpenSSL), in a thread of this process; certificates are made with the
openssl command line at test time."""

import hashlib
import http.server
import json
import os
import shutil
import socketserver
import ssl
import subprocess
import tempfile
import threading
import unittest

from backend import Backend
from harness import Atlas, connect, read_response, request


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_pki(d):
    """ca.pem (a CA), server.pem/.key (api.test, signed by it), self.pem/.key (self-signed)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=Atlas test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=api.test",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:api.test\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=api.test", "-addext", "subjectAltName=DNS:api.test", "-keyout", "self.key",
            "-out", "self.pem", cwd=d)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        while n:
            piece = self.rfile.read(min(n, 1 << 16))
            if not piece:
                break
            h.update(piece)
            n -= len(piece)
        self._answer(h.hexdigest().encode())

    def _answer(self, digest):
        body = json.dumps({"path": self.path, "sha256": digest.decode(),
                           "proto": self.headers.get("X-Forwarded-Proto", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TlsBackend:
    """A threaded HTTPS server on 127.0.0.1:0 with `cert`/`key`; counts connections and
    handshakes that resumed a session."""

    def __init__(self, cert, key, client_ca=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if client_ca:  # a client certificate signed by this CA is required
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.connections = 0
        self.resumed = 0
        self.lock = threading.Lock()
        backend = self

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, addr = self.socket.accept()
                tls = backend.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return tls, addr

            def finish_request(self, request, client_address):
                try:
                    request.settimeout(30)
                    request.do_handshake()
                except (ssl.SSLError, OSError):
                    return  # a failed handshake is what some tests want
                with backend.lock:
                    backend.connections += 1
                    backend.resumed += 1 if request.session_reused else 0
                super().finish_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def config(servers, tls, upstream_extra=""):
    servers_toml = ", ".join('"%s"' % s for s in servers)
    return ("[server]\nworkers = 1\n[upstream.api]\nservers = [%s]\ntls = %s\n%s\n"
            '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
            '  [[listener.route]]\n  path_prefix = "/"\n'
            '  handler = { module = "proxy", upstream = "api" }\n' % (servers_toml, tls, upstream_extra))


class UpstreamTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="atlas-upstream-tls-")
        make_pki(cls.pki)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def pem(self, name):
        return os.path.join(self.pki, name)

    def tls_table(self, **kv):
        parts = []
        for k, v in kv.items():
            parts.append("%s = %s" % (k, json.dumps(v)))
        return "{ " + ", ".join(parts) + " }"

    def test_verified_by_ca_and_name(self):
        """A server certificate signed by the CA file and naming `sni` is accepted; bodies
        go through intact both ways and X-Forwarded-Proto is the client's (http)."""
        with TlsBackend(self.pem("server.pem"), self.pem("server.key")) as b, \
                Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test"))) as a:
            body = os.urandom(1 << 20)
            r = request(a.port, "POST", "/upload", body=body)
            self.assertEqual(r.status, 200, r.body)
            doc = json.loads(r.body)
            self.assertEqual(doc["sha256"], hashlib.sha256(body).hexdigest())
            self.assertEqual(doc["proto"], "http")

    def test_name_mismatch_is_502(self):
        """A certificate that does not name `sni` fails the handshake: 502, and the log
        says why."""
        with TlsBackend(self.pem("server.pem"), self.pem("server.key")) as b, \
                Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="other.test"))) as a:
            self.assertEqual(request(a.port, "GET", "/").status, 502)
            self.assertIn("handshake with upstream %s failed" % b.address, a.stderr_text())

    def test_unknown_issuer_is_502_unless_verify_is_off(self):
        """A self-signed server certificate fails verification against the CA file; with
        verify = false it is accepted."""
        with TlsBackend(self.pem("self.pem"), self.pem("self.key")) as b:
            with Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test"))) as a:
                self.assertEqual(request(a.port, "GET", "/").status, 502)
            with Atlas(config([b.address], self.tls_table(verify=False))) as a:
                self.assertEqual(request(a.port, "GET", "/x").status, 200)

    def test_failed_handshake_retries_on_the_next_server(self):
        """A server that does not speak TLS fails the handshake before the request left:
        every request is retried on the TLS server and answered 200."""
        with Backend() as plain, TlsBackend(self.pem("server.pem"), self.pem("server.key")) as b, \
                Atlas(config(["127.0.0.1:%d" % plain.port, b.address],
                             self.tls_table(ca=self.pem("ca.pem"), sni="api.test"),
                             "passive = { fails = 0 }")) as a:
            for i in range(6):
                r = request(a.port, "GET", "/n%d" % i)
                self.assertEqual(r.status, 200, (i, r.body))
            self.assertIn("TLS handshake failed", a.stderr_text())

    def test_pooled_connection_serves_many_requests(self):
        """Keep-alive to a TLS upstream: sequential requests share one connection (one
        handshake)."""
        with TlsBackend(self.pem("server.pem"), self.pem("server.key")) as b, \
                Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test"))) as a:
            with connect(a.port) as s:
                for i in range(10):
                    s.sendall(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                    self.assertEqual(read_response(s).status, 200)
            self.assertEqual(b.connections, 1)

    def test_new_connections_resume_the_session(self):
        """Without pooling every request opens a connection; all but the first resume the
        session of the previous one."""
        with TlsBackend(self.pem("server.pem"), self.pem("server.key")) as b, \
                Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test"),
                             "keepalive = { idle_per_worker = 0 }")) as a:
            for i in range(5):
                self.assertEqual(request(a.port, "GET", "/r%d" % i).status, 200)
            self.assertEqual(b.connections, 5)
            self.assertGreaterEqual(b.resumed, 3)

    def test_client_certificate(self):
        """A server that requires a client certificate accepts the configured cert + key
        and refuses the handshake without them."""
        with TlsBackend(self.pem("server.pem"), self.pem("server.key"), client_ca=self.pem("ca.pem")) as b:
            with Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test",
                                                          cert=self.pem("server.pem"), key=self.pem("server.key")))) as a:
                self.assertEqual(request(a.port, "GET", "/with-cert").status, 200)
            with Atlas(config([b.address], self.tls_table(ca=self.pem("ca.pem"), sni="api.test"))) as a:
                self.assertEqual(request(a.port, "GET", "/without-cert").status, 502)

    def test_config_errors_name_the_key(self):
        """A missing CA file and an unknown key are refused at config time."""
        from harness import run_check
        code, _, err = run_check(config(["127.0.0.1:1"], '{ ca = "missing-ca.pem" }'))
        self.assertNotEqual(code, 0)
        self.assertIn("upstream.api.tls", err)
        self.assertIn("missing-ca.pem", err)
        code, _, err = run_check(config(["127.0.0.1:1"], '{ insecure = true }'))
        self.assertNotEqual(code, 0)
        self.assertIn("insecure: unknown key", err)


if __name__ == "__main__":
    unittest.main()
