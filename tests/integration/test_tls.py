"""mod_tls (wolfSSL) terminating TLS in front of the HTTP codec, through a real atlasd:
TLS 1.2 and 1.3 with curl, openssl s_client, python3's ssl and node's https; SNI
choosing the certificate (and strict_sni refusing unknown names); ALPN; the server's
cipher order; session resumption by ticket and by session id (and none when both are
off); version limits; plaintext HTTP and hostile ClientHellos closing cleanly while the
server keeps serving; 1 GiB up through a proxy route and 256 MiB down from a static file,
intact; close_notify both ways; the JSON access log's tls_* fields; config errors from
`atlasd -t`; a certificate swapped on disk and SIGHUP; the seed's flat [listen.tls]
example.  Every certificate is made at test time with the openssl command line (an
ECDSA P-256 CA, ECDSA P-256 and RSA-2048 leaves with DNS subjectAltNames); all traffic
goes to 127.0.0.1."""

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import warnings

from backend import Backend
from harness import too_heavy_for_valgrind
from harness import (BUILD, HERE, REPO, Atlas, build_request, connect, free_port, read_response,
                     recv_sha256, run_check, tail, assert_peak_rss_below, wait_closed, wait_until)

MOD_TLS = os.path.join(BUILD, "modules", "mod_tls.so")
V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
MiB, GiB = 1 << 20, 1 << 30
LINE_WAIT = 15  # seconds: access log lines reach the file on the workers' 1 s sweep

# TLS 1.3 suites: IANA / OpenSSL names (what clients print) -> wolfSSL's (the access log).
WOLFSSL_SUITE = {"TLS_AES_128_GCM_SHA256": "TLS13-AES128-GCM-SHA256",
                 "TLS_AES_256_GCM_SHA384": "TLS13-AES256-GCM-SHA384",
                 "TLS_CHACHA20_POLY1305_SHA256": "TLS13-CHACHA20-POLY1305-SHA256"}


# --------------------------------------------------------------------------- certificates


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed (%d):\n%s"
                             % (" ".join(args), p.returncode, p.stderr.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


class Pki:
    """Keys and certificates in a temp dir, made once per run of this file:
       ca.pem/.key       ECDSA P-256 CA ("Atlas TLS test CA")
       a.pem/.key        ECDSA P-256, CN a.test, SAN a.test + localhost (the default one)
       b.pem/.key        RSA-2048, CN b.test, SAN b.test + *.b.test, its chain file (leaf + CA)
       a2.pem/.key       ECDSA P-256, CN a2.test, SAN a.test + localhost (a renewal of a)
       a-sec1.key        a.key in SEC 1 form (BEGIN EC PRIVATE KEY)
       expired.pem/.key  valid in January 2020 only, or None when no tool can make it
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="atlas-tls-pki-")
        d = self.dir
        openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "3", "-subj", "/CN=Atlas TLS test CA", "-keyout", "ca.key", "-out", "ca.pem",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        self.leaf("a", "ec", "a.test", ["a.test", "localhost"], serial=11)
        self.leaf("b", "rsa", "b.test", ["b.test", "*.b.test"], serial=12, chain=True)
        self.leaf("a2", "ec", "a2.test", ["a.test", "localhost"], serial=13)
        openssl("ec", "-in", "a.key", "-out", "a-sec1.key", cwd=d)
        self.expired_how = self.make_expired()

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    @staticmethod
    def newkey(kind):
        return (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
                else ["-newkey", "rsa:2048"])

    def ext_file(self, name, dns):
        path = self.path(name + ".ext")
        with open(path, "w") as f:
            f.write("subjectAltName = %s\nbasicConstraints = CA:FALSE\n"
                    "keyUsage = critical, digitalSignature, keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n" % ", ".join("DNS:" + n for n in dns))
        return path

    def leaf(self, name, kind, cn, dns, serial, chain=False):
        d = self.dir
        openssl("req", "-new", *self.newkey(kind), "-nodes", "-subj", "/CN=" + cn,
                "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", str(serial), "-days", "3", "-extfile", self.ext_file(name, dns),
                "-out", name + ".pem", cwd=d)
        if chain:
            with open(self.path(name + ".pem"), "ab") as f:
                f.write(self.read("ca.pem"))

    def make_expired(self):
        """expired.pem/.key, valid 2020-01-01 .. 2020-02-01.  openssl x509 -not_before/
        -not_after (OpenSSL >= 3.4), else openssl ca -startdate/-enddate, else python's
        cryptography; returns how, or None."""
        d = self.dir
        openssl("req", "-new", *self.newkey("ec"), "-nodes", "-subj", "/CN=old.test",
                "-keyout", "expired.key", "-out", "expired.csr", cwd=d)
        ext = self.ext_file("expired", ["old.test"])
        helptext = subprocess.run(["openssl", "x509", "-help"], capture_output=True).stderr.decode()
        if "-not_before" in helptext:
            openssl("x509", "-req", "-in", "expired.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-set_serial", "14", "-not_before", "20200101000000Z", "-not_after", "20200201000000Z",
                    "-extfile", ext, "-out", "expired.pem", cwd=d)
            return "openssl x509 -not_before"
        try:
            ca = os.path.join(d, "ca-db")
            os.makedirs(ca)
            open(os.path.join(ca, "index.txt"), "w").close()
            with open(os.path.join(ca, "serial"), "w") as f:
                f.write("0F\n")
            with open(os.path.join(ca, "ca.cnf"), "w") as f:
                f.write("[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = %s/index.txt\nnew_certs_dir = %s\n"
                        "serial = %s/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
                        "[any]\ncommonName = supplied\n" % (ca, ca, ca))
            openssl("ca", "-batch", "-config", os.path.join(ca, "ca.cnf"), "-cert", "ca.pem", "-keyfile", "ca.key",
                    "-in", "expired.csr", "-out", "expired.pem", "-notext", "-startdate", "20200101000000Z",
                    "-enddate", "20200201000000Z", "-extfile", ext, cwd=d)
            return "openssl ca -startdate/-enddate"
        except AssertionError:
            pass
        try:
            import datetime
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.x509.oid import NameOID
        except ImportError:
            return None
        key = serialization.load_pem_private_key(self.read("expired.key"), None)
        ca_key = serialization.load_pem_private_key(self.read("ca.key"), None)
        ca_cert = x509.load_pem_x509_certificate(self.read("ca.pem"))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.test")]))
                .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(14)
                .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
                .not_valid_after(datetime.datetime(2020, 2, 1, tzinfo=datetime.timezone.utc))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("old.test")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        with open(self.path("expired.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        return "python cryptography"

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


PKI = None


def missing_prerequisite():
    if not os.path.exists(MOD_TLS):
        return "%s is not built" % MOD_TLS
    if not shutil.which("openssl"):
        return "the openssl command line is not installed"
    return None


# On every class (a skip raised by setUpModule would count as "did not run" in run.py).
needs_tls = unittest.skipIf(missing_prerequisite() is not None, missing_prerequisite() or "")


def setUpModule():
    global PKI
    if missing_prerequisite() is None:
        PKI = Pki()


def tearDownModule():
    if PKI is not None:
        PKI.cleanup()


def cert_files(*names):
    """{name: bytes} of PKI files, for Atlas(files=...) / run_check(files=...)."""
    return {n: PKI.read(n) for n in names}


# --------------------------------------------------------------------------- configs


def tls_config(tls, routes=None, workers=1, listener_extra="", top=""):
    """One listener with chain = [TLS_TABLE, http], static www at "/" unless `routes`
    ([(prefix, handler)]) say otherwise."""
    text = "[server]\nworkers = %d\n%s\n[[listener]]\nname = \"web\"\nlisten = [\"127.0.0.1:{port}\"]\n%s\n" \
           "chain = [%s, { module = \"http\" }]\n" % (workers, top, listener_extra, tls)
    for prefix, handler in routes or [("/", '{ module = "static", root = "www" }')]:
        text += '  [[listener.route]]\n  path_prefix = "%s"\n  handler = %s\n' % (prefix, handler)
    return text


TWO_CERTS = ('{ module = "tls", certificates = [{ cert = "a.pem", key = "a.key" }, '
             '{ cert = "b.pem", key = "b.key" }], min_version = "1.2" }')
WWW = {"index.html": "hello over tls\n", "small.txt": "small\n"}


# --------------------------------------------------------------------------- clients


def client_context(minimum=None, maximum=None, alpn=None, ciphers=None, check_hostname=True,
                   verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(PKI.path("ca.pem"))
        ctx.check_hostname = check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_connect(port, name="a.test", ctx=None, session=None, timeout=10, **kw):
    """A TLS connection to 127.0.0.1:port, handshake done.  name: the SNI (None: none);
    the default context verifies the chain against the test CA and `name`."""
    if ctx is None:
        ctx = client_context(check_hostname=name is not None)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=name, session=session, **kw)
    except BaseException:
        raw.close()
        raise


def https_get(port, path="/index.html", name="a.test", ctx=None, session=None, host="localhost"):
    """One GET on a new TLS connection (Connection: close).  Returns (Response, info) with
    info = {version, cipher, alpn, cn, dns, session, reused}."""
    with tls_connect(port, name, ctx, session) as s:
        s.sendall(build_request("GET", path, host=host, headers=[("Connection", "close")]))
        r = read_response(s)
        info = tls_info(s)
    return r, info


def tls_info(s):
    info = {"version": s.version(), "cipher": s.cipher()[0], "alpn": s.selected_alpn_protocol(),
            "session": s.session, "reused": s.session_reused, "cn": None, "dns": None}
    cert = s.getpeercert()
    if cert:
        info["cn"] = [v for rdn in cert["subject"] for k, v in rdn if k == "commonName"][0]
        info["dns"] = sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")
    return info


GET_CLOSE = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def s_client(port, args, send=GET_CLOSE, timeout=20):
    """openssl s_client -connect 127.0.0.1:PORT ARGS, with `send` written to its stdin.
    stdin stays open until s_client exits by itself (the server closes after the
    Connection: close request, or the handshake fails), so everything the server sends
    after the handshake (TLS 1.3 session tickets) is read first.  Returns (rc, output)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                             stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                p.stdin.write(send)
                p.stdin.flush()
            except BrokenPipeError:
                pass  # the handshake failed already
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError("openssl s_client %s still running after %ss" % (" ".join(args), timeout))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
        out.seek(0)
        return rc, out.read().decode("utf-8", "replace")


def curl(port, name, path="/index.html", args=(), binary=False):
    """curl -v to https://NAME:PORT/PATH resolved to 127.0.0.1, verifying against the test
    CA.  Returns (rc, body (bytes if binary), verbose stderr, status)."""
    cmd = ["curl", "-sS", "-v", "--noproxy", "*", "--max-time", "20", "--cacert", PKI.path("ca.pem"),
           "--resolve", "%s:%d:127.0.0.1" % (name, port), "-o", "-", "-w", "\n%{http_code}",
           "https://%s:%d%s" % (name, port, path)] + list(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    body, _, status = p.stdout.rpartition(b"\n")
    return (p.returncode, body if binary else body.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
            status.decode())


NODE_CLIENT = r"""
const fs = require('fs'), https = require('https');
const [port, servername, maxVersion, ca] = process.argv.slice(1);
const req = https.request({host: '127.0.0.1', port: +port, path: '/index.html', servername, agent: false,
                           ca: fs.readFileSync(ca), ALPNProtocols: ['http/1.1'], maxVersion}, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    const s = res.socket, c = s.getPeerCertificate();
    console.log(JSON.stringify({status: res.statusCode, body: Buffer.concat(chunks).toString(),
                                protocol: s.getProtocol(), cipher: s.getCipher().name, alpn: s.alpnProtocol,
                                cn: c.subject.CN, san: c.subjectaltname, authorized: s.authorized}));
  });
});
req.on('error', (e) => { console.log(JSON.stringify({error: e.code || e.message})); });
req.end();
"""


def node_get(port, servername, max_version):
    p = subprocess.run(["node", "-e", NODE_CLIENT, str(port), servername, max_version, PKI.path("ca.pem")],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=HERE)
    lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        raise AssertionError("node printed nothing (exit %d):\n%s" % (p.returncode, p.stderr.decode()))
    return json.loads(lines[-1])


def client_hello(name="a.test"):
    """The bytes of a real ClientHello (python's ssl / OpenSSL), TLS 1.2 and 1.3 offered."""
    ctx = client_context(verify=False)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def alerts_only(data):
    """True when data is a run of whole TLS alert records (possibly none)."""
    i = 0
    while i < len(data):
        if len(data) - i < 5 or data[i] != 0x15 or data[i + 1] != 3:
            return False
        i += 5 + int.from_bytes(data[i + 3:i + 5], "big")
    return i == len(data)



def links_system_wolfssl():
    """mod_tls links Debian's shared libwolfssl (no AES-NI code of its own), not the tuned build."""
    return b"libwolfssl.so" in subprocess.run(["ldd", MOD_TLS], capture_output=True).stdout


def cpu_has_aesni():
    """What mod_tls's AES-GCM device needs (modules/tls/aes_gcm.cc)."""
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return all(" %s" % f in flags for f in ("aes", "pclmulqdq", "ssse3", "sse4_1"))


def wolfssl_aes_leads(env=os.environ):
    """Whether mod_tls's default order puts AES-GCM before ChaCha20: whenever AES-GCM runs
    on AES-NI, which on a CPU that has it is always, unless atlasd runs with
    ATLAS_TLS_AESNI=0 (no device) on Debian's libwolfssl."""
    return cpu_has_aesni() and not (env.get("ATLAS_TLS_AESNI") == "0" and links_system_wolfssl())


# --------------------------------------------------------------------------- tests


@needs_tls
class Site(unittest.TestCase):
    """Two workers, certificates a (ECDSA, the default) and b (RSA, names from its SANs),
    min_version 1.2, a JSON access log."""

    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(tls_config(TWO_CERTS, workers=2,
                                     listener_extra='access_log = { path = "access.json", format = "json" }'),
                          www=WWW, files=cert_files("a.pem", "a.key", "b.pem", "b.key"))
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def assert_serves(self, what=""):
        """The server is alive and a good TLS request works."""
        self.atlas.assert_alive()
        r, info = https_get(self.port)
        self.assertEqual((r.status, r.body), (200, b"hello over tls\n"), what)

    # -- protocol versions, four clients

    def test_python_ssl_tls13_and_tls12(self):
        """python3 ssl gets the page over TLS 1.3 and over TLS 1.2 (chain verified)."""
        for version, name in ((V13, "TLSv1.3"), (V12, "TLSv1.2")):
            with self.subTest(version=name):
                r, info = https_get(self.port, ctx=client_context(minimum=version, maximum=version))
                self.assertEqual((r.status, r.body), (200, b"hello over tls\n"))
                self.assertEqual(info["version"], name)
                self.assertEqual(info["cn"], "a.test")

    def test_curl_tls13_and_tls12(self):
        """curl (OpenSSL, verifying the chain and the name) over TLS 1.3 and TLS 1.2."""
        for args, name in ((["--tlsv1.3"], "TLSv1.3"), (["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2")):
            with self.subTest(version=name):
                rc, body, err, status = curl(self.port, "b.test", args=args)
                self.assertEqual((rc, status, body), (0, "200", "hello over tls\n"), tail(err))
                self.assertIn("SSL connection using %s" % name, err)
                self.assertIn("subject: CN=b.test", err)
                self.assertIn("ALPN: server accepted http/1.1", err)

    def test_openssl_s_client_tls13_and_tls12(self):
        """openssl s_client -verify_return_error over TLS 1.3 and 1.2, with ALPN http/1.1."""
        for flag, name in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            with self.subTest(version=name):
                rc, out = s_client(self.port, [flag, "-servername", "a.test", "-CAfile", PKI.path("ca.pem"),
                                               "-verify_return_error", "-verify_hostname", "a.test",
                                               "-alpn", "http/1.1"])
                self.assertEqual(rc, 0, tail(out))
                self.assertIn("New, %s, Cipher is" % name, out)
                self.assertIn("Verify return code: 0 (ok)", out)
                self.assertIn("ALPN protocol: http/1.1", out)
                self.assertIn("HTTP/1.1 200 OK", out)
                self.assertIn("hello over tls", out)

    @unittest.skipUnless(shutil.which("node"), "node is not installed")
    def test_node_https_tls13_and_tls12(self):
        """node's https (verifying against the CA) over TLS 1.3 and 1.2: SNI b.test gets the
        RSA certificate, ALPN http/1.1."""
        for max_version in ("TLSv1.3", "TLSv1.2"):
            with self.subTest(version=max_version):
                doc = node_get(self.port, "b.test", max_version)
                self.assertNotIn("error", doc, doc)
                self.assertEqual((doc["status"], doc["body"]), (200, "hello over tls\n"))
                self.assertEqual(doc["protocol"], max_version)
                self.assertTrue(doc["authorized"])
                self.assertEqual((doc["cn"], doc["alpn"]), ("b.test", "http/1.1"))
                self.assertEqual(doc["san"], "DNS:b.test, DNS:*.b.test")
                if max_version == "TLSv1.2":
                    self.assertIn("RSA", doc["cipher"])  # the RSA key signed the key exchange

    # -- certificates by SNI

    def test_sni_picks_the_certificate(self):
        """SNI a.test / b.test / a name under *.b.test get their certificate (names taken
        from the SANs); no SNI and an unknown name get the default one."""
        cases = (("a.test", "a.test", True), ("localhost", "a.test", True), ("b.test", "b.test", True),
                 ("www.b.test", "b.test", True), (None, "a.test", False), ("unknown.test", "a.test", False))
        for sni, cn, check_name in cases:
            with self.subTest(sni=sni):
                r, info = https_get(self.port, name=sni, ctx=client_context(check_hostname=check_name))
                self.assertEqual(r.status, 200)
                self.assertEqual(info["cn"], cn)
                self.assertEqual(info["dns"], ["*.b.test", "b.test"] if cn == "b.test" else ["a.test", "localhost"])

    def test_sni_is_case_insensitive(self):
        """SNI B.TEST (as s_client sends it, unchanged) picks certificate b."""
        rc, out = s_client(self.port, ["-servername", "B.TEST", "-CAfile", PKI.path("ca.pem")])
        self.assertEqual(rc, 0, tail(out))
        self.assertRegex(out, r"subject=CN\s*=\s*b\.test")

    # -- ALPN and cipher order

    def test_alpn(self):
        """ALPN: http/1.1 is chosen from h2,http/1.1; a client offering only h2 (or no ALPN)
        gets none and is still served."""
        for offered, chosen in ((["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"), (["h2"], None),
                                (None, None)):
            with self.subTest(offered=offered):
                r, info = https_get(self.port, ctx=client_context(alpn=offered))
                self.assertEqual(r.status, 200)
                self.assertEqual(info["alpn"], chosen)

    def test_server_cipher_order_tls12(self):
        """TLS 1.2: the server's order decides: a client offering AES-128-GCM then ChaCha20
        (or the other way round) gets the same suite, ChaCha20 with Debian's wolfSSL."""
        got = []
        for order in ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"):
            r, info = https_get(self.port, ctx=client_context(maximum=V12, ciphers=order))
            self.assertEqual(r.status, 200)
            got.append(info["cipher"])
        self.assertEqual(got[0], got[1], "the client's order decided")
        want = "ECDHE-ECDSA-AES128-GCM-SHA256" if wolfssl_aes_leads() else "ECDHE-ECDSA-CHACHA20-POLY1305"
        self.assertEqual(got[0], want)

    def test_server_cipher_order_tls13(self):
        """TLS 1.3: the server's order decides between TLS_AES_128_GCM_SHA256 and
        TLS_CHACHA20_POLY1305_SHA256, whichever the client lists first."""
        got = []
        for order in ("TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
                      "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"):
            rc, out = s_client(self.port, ["-tls1_3", "-ciphersuites", order, "-servername", "a.test"])
            self.assertEqual(rc, 0, tail(out))
            got.append(re.search(r"New, TLSv1\.3, Cipher is (\S+)", out).group(1))
        self.assertEqual(got[0], got[1], "the client's order decided")
        want = "TLS_AES_128_GCM_SHA256" if wolfssl_aes_leads() else "TLS_CHACHA20_POLY1305_SHA256"
        self.assertEqual(got[0], want)

    # -- resumption

    def test_resumption_openssl_s_client(self):
        """s_client -sess_out then -sess_in: 'Reused' for TLS 1.2 and for TLS 1.3 (ticket)."""
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=name):
                sess = os.path.join(self.atlas.tmp, "s_client%s.sess" % flag)
                rc, out = s_client(self.port, [flag, "-servername", "a.test", "-sess_out", sess])
                self.assertEqual(rc, 0, tail(out))
                self.assertIn("New, %s" % name, out)
                self.assertTrue(os.path.exists(sess), "s_client saved no session")
                rc, out = s_client(self.port, [flag, "-servername", "a.test", "-sess_in", sess])
                self.assertEqual(rc, 0, tail(out))
                self.assertIn("Reused, %s" % name, out)
                self.assertIn("HTTP/1.1 200 OK", out)

    def test_resumption_python_ssl(self):
        """python ssl: a session (ticket) from one connection resumes on the next ones,
        TLS 1.2 and 1.3, across both workers (the ticket keys are shared)."""
        for version in (V12, V13):
            with self.subTest(version=version.name):
                ctx = client_context(minimum=version, maximum=version)
                r, first = https_get(self.port, ctx=ctx)
                self.assertFalse(first["reused"])
                self.assertTrue(first["session"].has_ticket)
                session = first["session"]
                for i in range(6):  # new connections, spread over the two workers
                    r, info = https_get(self.port, ctx=ctx, session=session)
                    self.assertEqual(r.status, 200)
                    self.assertTrue(info["reused"], "connection %d did not resume" % i)
                    session = info["session"]

    # -- hostile input

    def test_plaintext_http_gets_400_in_the_clear(self):
        """A plain HTTP request on the TLS port: a 400 in the clear saying the port speaks
        HTTPS, then close; the server goes on serving."""
        for req in (build_request("GET", "/index.html"), b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"):
            with self.subTest(request=req[:20]), connect(self.port) as s:
                s.sendall(req)
                r = read_response(s)
                self.assertEqual(r.status, 400)
                self.assertIn(b"This port speaks HTTPS", r.body)
                closed, extra = wait_closed(s)
                self.assertTrue(closed, "still open after the plaintext 400")
                self.assertEqual(extra, b"")
        self.assert_serves()

    def test_bad_client_hellos_close_cleanly(self):
        """Hostile first flights are refused: the connection closes (after TLS alert records
        at most), and the server keeps serving after each."""
        hello = client_hello()
        self.assertEqual(hello[0], 0x16)
        ssl3 = bytearray(hello)
        ssl3[1:3] = b"\x03\x00"    # record version SSL 3.0
        ssl3[9:11] = b"\x03\x00"   # ClientHello.legacy_version SSL 3.0 (RFC 8446 D.5: abort)
        rnd = random.Random(20240601)
        noise = bytearray(rnd.getrandbits(8) for _ in range(1024))
        noise[0] = 0x2a            # no TLS content type, no SSLv2 header, no upper-case letter (HTTP)
        specs = bytes.fromhex("010080 030080 070080 000004 00000a")
        challenge = bytes(rnd.getrandbits(8) for _ in range(16))

        def sslv2(version):
            body = b"\x01" + version + struct.pack(">HHH", len(specs), 0, len(challenge)) + specs + challenge
            return struct.pack(">H", 0x8000 | len(body)) + body

        shapes = [
            # (name, bytes, half-close after sending, first alert description or None)
            ("truncated record", hello[:60], True, None),
            ("wrong version bytes (SSL 3.0)", bytes(ssl3), False, 70),
            ("huge record length", b"\x16\x03\x01\xff\xff" + hello[5:], False, None),
            ("huge handshake length", hello[:5] + b"\x01\xff\xff\xff" + hello[9:], False, None),
            ("zeroed hello body", hello[:9] + bytes(len(hello) - 9), False, None),
            ("empty handshake record", b"\x16\x03\x01\x00\x00", False, None),
            ("application data first", b"\x17\x03\x03\x00\x10" + bytes(16), False, None),
            ("random bytes", bytes(noise), False, None),
            ("SSLv2 hello, version 2", sslv2(b"\x00\x02"), False, None),
            ("SSLv2-compatible hello, TLS 1.0", sslv2(b"\x03\x01"), False, None),
        ]
        for name, data, half_close, alert in shapes:
            with self.subTest(shape=name):
                with connect(self.port) as s:
                    try:
                        s.sendall(data)
                        if half_close:
                            s.shutdown(socket.SHUT_WR)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    closed, extra = wait_closed(s, timeout=10)
                self.assertTrue(closed, "connection still open 10 s after %s" % name)
                self.assertTrue(alerts_only(extra), "not just alert records: %r" % extra[:80])
                if alert is not None:
                    self.assertGreaterEqual(len(extra), 7, "no alert")
                    self.assertEqual(extra[6], alert, "alert %r" % extra[:7])
                self.assert_serves(name)

    def test_tls11_client_is_refused(self):
        """A TLS 1.1 client (min_version 1.2) gets a protocol_version alert; the server
        serves on."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 / TLSv1_1
            ctx = client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1, verify=False,
                                 ciphers="DEFAULT:@SECLEVEL=0")
        try:
            with tls_connect(self.port, "a.test", ctx):
                self.fail("a TLS 1.1 handshake succeeded")
        except ssl.SSLError as e:
            if "NO_PROTOCOLS_AVAILABLE" in str(e) or "NO_CIPHERS_AVAILABLE" in str(e):
                self.skipTest("this OpenSSL cannot offer TLS 1.1: %s" % e)
            self.assertIn("ALERT_PROTOCOL_VERSION", str(e))
        self.assert_serves()

    # -- closing

    def test_close_notify_is_answered(self):
        """After a request on a keep-alive connection the client sends close_notify
        (python ssl unwrap()): the server answers with its own close_notify, then closes
        the TCP connection with nothing else sent."""
        for version in (V12, V13):
            with self.subTest(version=version.name):
                s = tls_connect(self.port, ctx=client_context(maximum=version))
                try:
                    s.sendall(build_request("GET", "/small.txt"))
                    self.assertEqual(read_response(s).body, b"small\n")
                    s.settimeout(3)  # (read_response set its own)
                    try:
                        plain = s.unwrap()
                    except (ssl.SSLError, OSError) as e:
                        self.fail("no close_notify from the server in answer to ours: %r" % e)
                    closed, extra = wait_closed(plain, timeout=10)
                    self.assertTrue(closed)
                    self.assertEqual(extra, b"")
                finally:
                    s.close()

    def test_close_notify_right_after_a_request(self):
        """A request immediately followed by the client's close_notify (its stream ends, as
        with a TCP half-close): the response still comes, then the server's close_notify
        and the close."""
        for version in (V12, V13):
            with self.subTest(version=version.name), connect(self.port, timeout=3) as sock:
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                obj = client_context(maximum=version, verify=False).wrap_bio(incoming, outgoing,
                                                                            server_hostname="a.test")
                while True:
                    try:
                        obj.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        sock.sendall(outgoing.read())
                        data = sock.recv(65536)
                        self.assertTrue(data, "closed during the handshake")
                        incoming.write(data)
                sock.sendall(outgoing.read())
                obj.write(build_request("GET", "/small.txt"))
                try:
                    obj.unwrap()
                except ssl.SSLWantReadError:
                    pass
                sock.sendall(outgoing.read())
                plain, ended = b"", None
                while ended is None:
                    try:
                        data = sock.recv(65536)
                    except socket.timeout:
                        ended = "nothing for 3 s (connection left open)"
                        break
                    if not data:
                        incoming.write_eof()
                    else:
                        incoming.write(data)
                    try:
                        while True:
                            piece = obj.read(65536)
                            if not piece:
                                ended = "close_notify"
                                break
                            plain += piece
                    except ssl.SSLWantReadError:
                        if not data:
                            ended = "TCP close without close_notify"
                    except ssl.SSLZeroReturnError:
                        ended = "close_notify"
                    except ssl.SSLError as e:
                        ended = "TLS error %r" % e
                self.assertTrue(plain.startswith(b"HTTP/1.1 200 OK\r\n"), plain[:100])
                self.assertTrue(plain.endswith(b"\r\n\r\nsmall\n"), plain[-100:])
                self.assertEqual(ended, "close_notify")
                closed, extra = wait_closed(sock, timeout=10)
                self.assertTrue(closed and not extra, (closed, extra))

    def test_connection_close_ends_with_close_notify(self):
        """A Connection: close response is followed by the server's close_notify before
        the TCP close: with ragged EOFs not suppressed, recv returns b"" cleanly."""
        for version in (V12, V13):
            with self.subTest(version=version.name):
                with tls_connect(self.port, ctx=client_context(maximum=version), suppress_ragged_eofs=False) as s:
                    s.sendall(build_request("GET", "/small.txt", headers=[("Connection", "close")]))
                    r = read_response(s)
                    self.assertEqual(r.body, b"small\n")
                    try:
                        rest = s.recv(4096)
                    except ssl.SSLEOFError as e:
                        self.fail("TCP close without close_notify: %r" % e)
                    self.assertEqual(rest, b"")

    # -- access log

    def test_access_log_tls_fields(self):
        """JSON access log lines carry tls_protocol, tls_cipher, tls_server_name, tls_alpn
        and tls_resumed as the handshake settled them."""
        r1, i1 = https_get(self.port, "/index.html?log=1", name="b.test",
                           ctx=client_context(minimum=V13, alpn=["h2", "http/1.1"]))
        ctx12 = client_context(maximum=V12, check_hostname=False)
        r2, i2 = https_get(self.port, "/index.html?log=2", name=None, ctx=ctx12)
        r3, i3 = https_get(self.port, "/index.html?log=3", name=None, ctx=ctx12, session=i2["session"])
        self.assertEqual([r.status for r in (r1, r2, r3)], [200, 200, 200])
        self.assertTrue(i3["reused"])
        path = self.atlas.path("access.json")
        lines = {}

        def have_all():
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        e = json.loads(line)
                        lines[e["target"]] = e
            return all("/index.html?log=%d" % n in lines for n in (1, 2, 3))

        wait_until(have_all, "the three access log lines", LINE_WAIT)
        e1, e2, e3 = (lines["/index.html?log=%d" % n] for n in (1, 2, 3))
        self.assertEqual((e1["tls_protocol"], e1["tls_server_name"], e1["tls_alpn"], e1["tls_resumed"]),
                         ("TLSv1.3", "b.test", "http/1.1", False))
        self.assertEqual(e1["tls_cipher"], WOLFSSL_SUITE[i1["cipher"]])
        for e, resumed in ((e2, False), (e3, True)):
            self.assertEqual((e["tls_protocol"], e["tls_server_name"], e["tls_alpn"], e["tls_resumed"]),
                             ("TLSv1.2", "", "", resumed))
            self.assertEqual(e["tls_cipher"], i2["cipher"])
        self.assertEqual(e1["status"], 200)


@needs_tls
class Versions(unittest.TestCase):
    """min_version / max_version."""

    def test_min_version_13_refuses_a_tls12_client(self):
        """min_version = "1.3": a TLS 1.2-only client (python ssl, curl) is refused, a
        TLS 1.3 one served."""
        tls = '{ module = "tls", cert = "a.pem", key = "a.key", min_version = "1.3" }'
        with Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a.key")) as a:
            with self.assertRaisesRegex(ssl.SSLError, "PROTOCOL_VERSION"):
                https_get(a.port, ctx=client_context(maximum=V12))
            rc, body, err, status = curl(a.port, "a.test", args=["--tlsv1.2", "--tls-max", "1.2"])
            self.assertNotEqual(rc, 0, "curl with TLS 1.2 at most got through")
            r, info = https_get(a.port)
            self.assertEqual((r.status, info["version"]), (200, "TLSv1.3"))
            a.assert_alive()

    def test_max_version_12(self):
        """max_version = "1.2": a client allowing 1.3 gets TLS 1.2, a 1.3-only client
        (python ssl, s_client -tls1_3) is refused."""
        tls = '{ module = "tls", cert = "a.pem", key = "a.key", max_version = "1.2" }'
        with Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a.key")) as a:
            r, info = https_get(a.port)
            self.assertEqual((r.status, info["version"]), (200, "TLSv1.2"))
            # (wolfSSL answers handshake_failure here, not RFC 8446's protocol_version)
            with self.assertRaises(ssl.SSLError):
                https_get(a.port, ctx=client_context(minimum=V13))
            rc, out = s_client(a.port, ["-tls1_3", "-servername", "a.test"])
            self.assertNotEqual(rc, 0, tail(out))
            self.assertNotIn("HTTP/1.1 200", out)
            r, info = https_get(a.port)
            self.assertEqual(r.status, 200)


@needs_tls
class StrictSni(unittest.TestCase):
    def test_strict_sni_refuses_unknown_names(self):
        """strict_sni = true with explicit names: an unknown name (and a name only b's SAN
        would cover, since names replace the SANs) is refused; the configured names are
        served, each with its certificate."""
        tls = ('{ module = "tls", strict_sni = true, certificates = [{ cert = "a.pem", key = "a.key" }, '
               '{ cert = "b.pem", key = "b.key", names = ["b.test"] }] }')
        with Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a.key", "b.pem", "b.key")) as a:
            for name in ("unknown.test", "www.b.test"):
                with self.subTest(refused=name):
                    with self.assertRaisesRegex(ssl.SSLError, "UNRECOGNIZED_NAME"):
                        https_get(a.port, name=name, ctx=client_context(check_hostname=False))
            for name, cn in (("a.test", "a.test"), ("localhost", "a.test"), ("b.test", "b.test")):
                with self.subTest(served=name):
                    r, info = https_get(a.port, name=name)
                    self.assertEqual((r.status, info["cn"]), (200, cn))
            a.assert_alive()


@needs_tls
class Options(unittest.TestCase):
    """ciphers (a ':'-string), ciphersuites (an array of IANA names), groups, alpn = [],
    ticket_lifetime, and the SEC 1 key form."""

    @classmethod
    def setUpClass(cls):
        tls = ('{ module = "tls", cert = "a.pem", key = "a-sec1.key", ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384", '
               'ciphersuites = ["TLS_AES_256_GCM_SHA384"], groups = ["P-256"], alpn = [], ticket_lifetime = "2h" }')
        cls.atlas = Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a-sec1.key"))
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)

    def test_ciphers_limit_tls12(self):
        """ciphers: TLS 1.2 uses the one listed; a client offering only ChaCha20 is refused."""
        r, info = https_get(self.port, ctx=client_context(maximum=V12))
        self.assertEqual((r.status, info["cipher"]), (200, "ECDHE-ECDSA-AES256-GCM-SHA384"))
        with self.assertRaises(ssl.SSLError):
            https_get(self.port, ctx=client_context(maximum=V12, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"))

    def test_ciphersuites_limit_tls13(self):
        """ciphersuites (IANA name): TLS 1.3 uses TLS_AES_256_GCM_SHA384; a client offering
        only ChaCha20 is refused."""
        rc, out = s_client(self.port, ["-tls1_3", "-servername", "a.test"])
        self.assertEqual(rc, 0, tail(out))
        self.assertIn("New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384", out)
        rc, out = s_client(self.port, ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"])
        self.assertNotEqual(rc, 0, tail(out))

    def test_groups(self):
        """groups = ["P-256"]: a client offering only X25519 is refused, P-256 works."""
        rc, out = s_client(self.port, ["-tls1_3", "-groups", "X25519", "-servername", "a.test"])
        self.assertNotEqual(rc, 0, tail(out))
        rc, out = s_client(self.port, ["-tls1_3", "-groups", "P-256", "-servername", "a.test"])
        self.assertEqual(rc, 0, tail(out))
        self.assertIn("HTTP/1.1 200 OK", out)

    def test_alpn_off(self):
        """alpn = []: no protocol is selected even when the client offers http/1.1."""
        r, info = https_get(self.port, ctx=client_context(alpn=["http/1.1"]))
        self.assertEqual((r.status, info["alpn"]), (200, None))

    def test_ticket_lifetime_hint(self):
        """ticket_lifetime = "2h": the TLS 1.3 ticket's lifetime hint is 7200 s, and it resumes."""
        ctx = client_context(minimum=V13)
        r, info = https_get(self.port, ctx=ctx)
        self.assertEqual(info["session"].ticket_lifetime_hint, 7200)
        r, again = https_get(self.port, ctx=ctx, session=info["session"])
        self.assertTrue(again["reused"])


@needs_tls
class Resumption(unittest.TestCase):
    def test_no_resumption_when_tickets_and_cache_are_off(self):
        """session_tickets = false, session_cache = false: no ticket is issued and a second
        connection offering the first one's session does a full handshake (1.2 and 1.3)."""
        tls = '{ module = "tls", cert = "a.pem", key = "a.key", session_tickets = false, session_cache = false }'
        with Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a.key")) as a:
            for version in (V12, V13):
                with self.subTest(version=version.name):
                    ctx = client_context(minimum=version, maximum=version)
                    r, first = https_get(a.port, ctx=ctx)
                    self.assertFalse(first["session"].has_ticket)
                    for _ in range(2):
                        r, again = https_get(a.port, ctx=ctx, session=first["session"])
                        self.assertEqual(r.status, 200)
                        self.assertFalse(again["reused"], "resumed with tickets and the cache off")
            for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(client="s_client " + flag):
                    sess = os.path.join(a.tmp, "s%s.sess" % flag)
                    rc, out = s_client(a.port, [flag, "-servername", "a.test", "-sess_out", sess])
                    self.assertEqual(rc, 0, tail(out))
                    if os.path.exists(sess):  # s_client saves only a session it could resume
                        rc, out = s_client(a.port, [flag, "-servername", "a.test", "-sess_in", sess])
                        self.assertEqual(rc, 0, tail(out))
                        self.assertIn("New, %s" % name, out)

    def test_session_cache_alone_resumes_tls12(self):
        """session_tickets = false, the cache on (one worker): TLS 1.2 resumes by session id."""
        tls = '{ module = "tls", cert = "a.pem", key = "a.key", session_tickets = false }'
        with Atlas(tls_config(tls), www=WWW, files=cert_files("a.pem", "a.key")) as a:
            ctx = client_context(maximum=V12)
            r, first = https_get(a.port, ctx=ctx)
            self.assertFalse(first["session"].has_ticket)
            r, again = https_get(a.port, ctx=ctx, session=first["session"])
            self.assertEqual(r.status, 200)
            self.assertTrue(again["reused"])


@needs_tls
class Timeouts(unittest.TestCase):
    def test_stalled_handshake_is_closed_by_header_timeout(self):
        """A handshake that stops half-way (a truncated ClientHello, no FIN) or never starts
        is closed once header_timeout (2 s) passes."""
        with Atlas(tls_config(TWO_CERTS, listener_extra='limits = { header_timeout = "2s" }'), www=WWW,
                   files=cert_files("a.pem", "a.key", "b.pem", "b.key")) as a:
            for name, data in (("truncated hello", client_hello()[:60]), ("nothing", b"")):
                with self.subTest(stall=name), connect(a.port) as s:
                    s.sendall(data)
                    closed, extra = wait_closed(s, timeout=15)
                    self.assertTrue(closed, "still open 15 s after a stalled handshake (%s)" % name)
                    self.assertTrue(alerts_only(extra), extra[:80])
            r, info = https_get(a.port)
            self.assertEqual(r.status, 200)


TLS_ECHO = """
[server]
workers = 1
module_dir = "{modules}"

[[listener]]
name = "secure-echo"
listen = ["127.0.0.1:{port}"]
chain = [{ module = "tls", cert = "a.pem", key = "a.key" }, { module = "testkit", banner = "hello\\n" }]
"""


@needs_tls
class Stream(unittest.TestCase):
    def test_tls_in_front_of_a_stream_handler(self):
        """TLS before an L4 handler (mod_testkit's echo): its banner, queued before the
        handshake, arrives first; 8 MiB echo back intact; the client's close_notify is the
        handler's end of input, and its half-close comes back as the server's
        close_notify (unwrap() completes)."""
        with Atlas(TLS_ECHO, files=cert_files("a.pem", "a.key")) as a:
            ctx = client_context(maximum=V13)
            with socket.create_connection(("127.0.0.1", a.port), timeout=20) as raw_sock:
                with ctx.wrap_socket(raw_sock, server_hostname="a.test") as s:
                    got = b""
                    while not got.endswith(b"\n"):
                        piece = s.recv(64)
                        self.assertTrue(piece, "closed before the banner")
                        got += piece
                    self.assertEqual(got, b"hello\n")
                    data = os.urandom(8 * MiB)
                    echoed = bytearray()
                    for off in range(0, len(data), 256 * 1024):
                        s.sendall(data[off:off + 256 * 1024])
                        while len(echoed) < off + 256 * 1024:
                            piece = s.recv(1 << 16)
                            self.assertTrue(piece, "closed in the middle of the echo")
                            echoed += piece
                    self.assertEqual(hashlib.sha256(echoed).hexdigest(), hashlib.sha256(data).hexdigest())
                    s.unwrap()  # sends close_notify, returns once the server's has come


@needs_tls
class Metrics(unittest.TestCase):
    def test_handshake_counters(self):
        """/metrics counts a TLS listener's completed handshakes, the resumed ones, and
        connections that closed before theirs completed (a bad hello); a plain listener
        has none of these series."""
        top = '[admin]\nlisten = "127.0.0.1:{port2}"\n'
        text = tls_config(TWO_CERTS, top=top) + ('[[listener]]\nname = "plain"\nlisten = ["127.0.0.1:{port3}"]\n'
                                                 '  [[listener.route]]\n  path_prefix = "/"\n'
                                                 '  handler = { module = "static", root = "www" }\n')
        with Atlas(text, www=WWW, files=cert_files("a.pem", "a.key", "b.pem", "b.key")) as a:
            def series():
                with connect(a.port2) as s:
                    s.sendall(build_request("GET", "/metrics", headers=[("Connection", "close")]))
                    body = read_response(s).body.decode()
                found = {}
                for line in body.splitlines():
                    m = re.match(r'(atlas_tls_\w+)\{listener="(\w+)"\} (\d+)$', line)
                    if m:
                        found[(m.group(1), m.group(2))] = int(m.group(3))
                return found

            ctx12 = client_context(maximum=V12, check_hostname=False)
            _, first = https_get(a.port, name=None, ctx=ctx12)
            _, again = https_get(a.port, name=None, ctx=ctx12, session=first["session"])
            self.assertTrue(again["reused"])
            https_get(a.port)
            done = {("atlas_tls_handshakes_total", "web"): 3, ("atlas_tls_resumed_total", "web"): 1}
            wait_until(lambda: all(series().get(k) == v for k, v in done.items()), "the counters %s" % done)
            # The harness's readiness probes connected without a handshake: they count too.
            failures = ("atlas_tls_handshake_failures_total", "web")
            base = series()[failures]
            with connect(a.port) as s:
                s.sendall(b"\x16\x03\x01\x00\x05hello")
                wait_closed(s)
            wait_until(lambda: series()[failures] == base + 1, "one more handshake failure")
            self.assertFalse(any(listener == "plain" for _, listener in series()))


@needs_tls
@too_heavy_for_valgrind
class BigBodies(unittest.TestCase):
    """1 GiB up through a proxy route and 256 MiB down from a static file, over TLS,
    intact, atlasd's peak RSS under 64 MiB (normal build)."""

    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("sha").__enter__()
        top = '[upstream.b]\nservers = [{ address = "%s" }]\n' % cls.backend.address
        routes = [("/up/", '{ module = "proxy", upstream = "b" }'), ("/", '{ module = "static", root = "www" }')]
        try:
            cls.atlas = Atlas(tls_config(TWO_CERTS, routes=routes, top=top), www=WWW,
                              files=cert_files("a.pem", "a.key", "b.pem", "b.key")).__enter__()
        except BaseException:
            cls.backend.__exit__(None, None, None)
            raise
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)
        cls.backend.__exit__(None, None, None)

    @staticmethod
    def pieces(count, size=MiB):
        """`count` pieces of `size` bytes, each different (a counter over random bytes)."""
        base = os.urandom(size)
        for i in range(count):
            yield i.to_bytes(8, "big") + base[8:]

    def test_upload_1gib_through_proxy(self):
        """1 GiB POSTed over TLS to a proxy route: the backend's SHA-256 of what it received
        is the client's; the upstream is told X-Forwarded-Proto: https."""
        want = hashlib.sha256()
        with tls_connect(self.port, timeout=120) as s:
            s.sendall(build_request("POST", "/up/echo", headers=[("Content-Length", str(GiB))]))
            for piece in self.pieces(GiB // MiB):
                want.update(piece)
                s.sendall(piece)
            r = read_response(s, timeout=120)
        self.assertEqual(r.status, 200, r)
        e = json.loads(r.body)
        self.assertEqual(e["body_len"], GiB)
        self.assertEqual(e["body_sha256"], want.hexdigest())
        self.assertIn(["X-Forwarded-Proto", "https"], e["headers"])
        assert_peak_rss_below(self.atlas.pid, 64 << 20)

    def test_download_256mib_static(self):
        """A 256 MiB static file read with python ssl: SHA-256 intact."""
        want = hashlib.sha256()
        size = 256 * MiB
        with open(self.atlas.path("www", "big.bin"), "wb") as f:
            for piece in self.pieces(size // MiB):
                want.update(piece)
                f.write(piece)
        with tls_connect(self.port, timeout=120) as s:
            s.sendall(build_request("GET", "/big.bin"))
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = s.recv(65536)
                self.assertTrue(data, "closed before the response head")
                buf += data
            head, rest = buf.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertIn(b"\r\nContent-Length: %d" % size, head)
            self.assertEqual(recv_sha256(s, size, rest), want.hexdigest())
            s.sendall(build_request("GET", "/small.txt"))  # the connection lives on
            self.assertEqual(read_response(s).body, b"small\n")
        assert_peak_rss_below(self.atlas.pid, 64 << 20)


@needs_tls
class AesGcmEngines(unittest.TestCase):
    """AES-GCM from either engine: mod_tls's AES-NI code (the default on an AES-NI CPU) or
    wolfSSL's own (ATLAS_TLS_AESNI=0). Each suite, TLS 1.3 and 1.2, both key sizes,
    carries 3 MiB down and 3 MiB up intact, checked by curl's OpenSSL and by the
    backend's SHA-256."""

    SUITES = [(["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"], "TLS_AES_128_GCM_SHA256"),
              (["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"], "TLS_AES_256_GCM_SHA384"),
              (["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
               "ECDHE-ECDSA-AES128-GCM-SHA256"),
              (["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"],
               "ECDHE-ECDSA-AES256-GCM-SHA384")]

    def run_engine(self, env, engine_line, aes_leads):
        data = os.urandom(3 * MiB + 777)  # not a whole number of records
        want = hashlib.sha256(data).hexdigest()
        with Backend("sha") as backend:
            top = '[upstream.b]\nservers = [{ address = "%s" }]\n' % backend.address
            routes = [("/up/", '{ module = "proxy", upstream = "b" }'), ("/", '{ module = "static", root = "www" }')]
            with Atlas(tls_config(TWO_CERTS, routes=routes, top=top), www=dict(WWW), env=env,
                       files=cert_files("a.pem", "a.key", "b.pem", "b.key")) as atlas:
                self.assertIn(engine_line, atlas.stderr_text())
                with open(atlas.path("www", "big.bin"), "wb") as f:
                    f.write(data)
                up = atlas.path("up.bin")
                with open(up, "wb") as f:
                    f.write(data)
                for args, suite in self.SUITES:
                    with self.subTest(suite=suite):
                        rc, body, err, status = curl(atlas.port, "a.test", "/big.bin", args=args, binary=True)
                        self.assertEqual((rc, status), (0, "200"), err[-600:])
                        self.assertIn(suite, err)
                        self.assertEqual(hashlib.sha256(body).hexdigest(), want)
                        rc, body, err, status = curl(atlas.port, "a.test", "/up/echo",
                                                     args=args + ["--data-binary", "@" + up])
                        self.assertEqual((rc, status), (0, "200"), err[-600:])
                        e = json.loads(body)
                        self.assertEqual((e["body_len"], e["body_sha256"]), (len(data), want))
                # The default order follows the engine: AES-GCM first only on AES-NI.
                rc, out = s_client(atlas.port, ["-tls1_3", "-servername", "a.test", "-ciphersuites",
                                                "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"])
                self.assertEqual(rc, 0, tail(out))
                self.assertIn("Cipher is %s" % ("TLS_AES_128_GCM_SHA256" if aes_leads else
                                                "TLS_CHACHA20_POLY1305_SHA256"), out)
                atlas.assert_alive()

    def test_mod_tls_aesni_engine(self):
        """The default on an AES-NI CPU, with either wolfSSL: mod_tls's AES-NI code."""
        env = {"ATLAS_TLS_AESNI": "1"}  # whatever the runner's environment says
        self.run_engine(env, "AES-GCM: mod_tls's AES-NI code" if cpu_has_aesni() else
                        "AES-GCM: wolfSSL's software code", wolfssl_aes_leads(env))

    def test_wolfssl_engine(self):
        """ATLAS_TLS_AESNI=0: wolfSSL's own AES-GCM; without AES-NI code in it (Debian's
        libwolfssl), ChaCha20 leads again."""
        env = {"ATLAS_TLS_AESNI": "0"}
        line = "AES-GCM: wolfSSL's %s code (ATLAS_TLS_AESNI=0)" % (
            "software" if links_system_wolfssl() else "own AES-NI")
        self.run_engine(env, line, wolfssl_aes_leads(env))


def config_error(tls, files):
    """atlasd -t on a one-listener config with chain [TLS, http]; returns stderr (asserting exit 1)."""
    rc, out, err = run_check(tls_config(tls), files=dict(files, **{"www/index.html": "x"}))
    if rc != 1:
        raise AssertionError("atlasd -t exited %d (want 1)\n%s%s" % (rc, out, err))
    return err


CHAIN_KEY = r"atlas\.toml:\d+: listener\.web\.chain\[0\]: "


@needs_tls
class ConfigErrors(unittest.TestCase):
    """`atlasd -t` refuses bad TLS settings, naming the config line, the key, the file and
    the problem."""

    def test_missing_file(self):
        """A certificate file that does not exist."""
        err = config_error('{ module = "tls", cert = "nope.pem", key = "a.key" }', cert_files("a.key"))
        self.assertRegex(err, CHAIN_KEY + r"tls\.cert: cannot read '/\S+/nope\.pem': No such file or directory")

    def test_directory(self):
        """A directory where the key file should be."""
        err = config_error('{ module = "tls", cert = "a.pem", key = "keys" }',
                           dict(cert_files("a.pem"), **{"keys/a.key": PKI.read("a.key")}))
        self.assertRegex(err, CHAIN_KEY + r"tls\.key: '/\S+/keys' is not a regular file")

    def test_not_pem(self):
        """A certificate file that is not PEM (here: DER)."""
        der = ssl.PEM_cert_to_DER_cert(PKI.read("a.pem").decode())
        err = config_error('{ module = "tls", cert = "a.der", key = "a.key" }',
                           dict(cert_files("a.key"), **{"a.der": der}))
        self.assertRegex(err, CHAIN_KEY + r"tls\.cert: '/\S+/a\.der' is not a PEM certificate")

    def test_key_does_not_match_the_certificate(self):
        """certificates[1] with the key of another certificate."""
        tls = ('{ module = "tls", certificates = [{ cert = "a.pem", key = "a.key" }, '
               '{ cert = "b.pem", key = "a.key" }] }')
        err = config_error(tls, cert_files("a.pem", "a.key", "b.pem"))
        self.assertRegex(err, CHAIN_KEY + r"certificates\[1\]\.key: '/\S+/a\.key' does not match the "
                                          r"certificate in '/\S+/b\.pem'")

    def test_expired_certificate(self):
        """An expired certificate is refused (naming the date); allow_expired = true takes
        it, and it is what the server then sends."""
        if PKI.expired_how is None:
            self.skipTest("no way to make an expired certificate: openssl has neither x509 -not_before "
                          "nor a working ca, and python's cryptography is not importable")
        files = cert_files("expired.pem", "expired.key")
        err = config_error('{ module = "tls", cert = "expired.pem", key = "expired.key" }', files)
        self.assertRegex(err, CHAIN_KEY + r"tls\.cert: '/\S+/expired\.pem' expired on .*2020")
        self.assertIn("allow_expired = true", err)
        tls = '{ module = "tls", cert = "expired.pem", key = "expired.key", allow_expired = true }'
        with Atlas(tls_config(tls), www=WWW, files=files) as a:
            with tls_connect(a.port, "old.test", client_context(verify=False)) as s:
                s.sendall(build_request("GET", "/index.html"))
                self.assertEqual(read_response(s).status, 200)
                self.assertEqual(s.getpeercert(binary_form=True),
                                 ssl.PEM_cert_to_DER_cert(PKI.read("expired.pem").decode()))

    def test_unknown_cipher(self):
        """An unknown TLS 1.2 cipher name in ciphers."""
        err = config_error('{ module = "tls", cert = "a.pem", key = "a.key", ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:'
                           'ECDHE-NOPE-SHA256" }', cert_files("a.pem", "a.key"))
        self.assertRegex(err, CHAIN_KEY + r"ciphers: unknown cipher 'ECDHE-NOPE-SHA256'")

    def test_unknown_tls13_suite(self):
        """An unknown TLS 1.3 suite in ciphersuites (IANA style) is called unknown, not a
        TLS 1.2 cipher."""
        err = config_error('{ module = "tls", cert = "a.pem", key = "a.key", ciphersuites = ["TLS_AES_512_GCM_SHA512"] }',
                           cert_files("a.pem", "a.key"))
        self.assertRegex(err, CHAIN_KEY + r"ciphersuites: ")
        self.assertIn("TLS_AES_512_GCM_SHA512", err)
        self.assertIn("unknown", err)

    def test_min_version_11(self):
        """min_version = "1.1" is refused (RFC 8996)."""
        err = config_error('{ module = "tls", cert = "a.pem", key = "a.key", min_version = "1.1" }',
                           cert_files("a.pem", "a.key"))
        self.assertRegex(err, CHAIN_KEY + r'min_version: TLS 1\.1 is not offered .*use "1\.2" or "1\.3"')


@needs_tls
class Reload(unittest.TestCase):
    def test_sighup_swaps_the_certificate(self):
        """site.pem/.key replaced on disk, then SIGHUP: new connections get the new
        certificate, a keep-alive TLS connection opened before the reload goes on serving
        requests, and a session from before the reload still resumes (ticket keys live
        for the process)."""
        tls = '{ module = "tls", cert = "site.pem", key = "site.key" }'
        files = {"site.pem": PKI.read("a.pem"), "site.key": PKI.read("a.key")}
        with Atlas(tls_config(tls), www=WWW, files=files) as a:
            old = tls_connect(a.port)
            try:
                old.sendall(build_request("GET", "/small.txt"))
                self.assertEqual(read_response(old).body, b"small\n")
                self.assertEqual(tls_info(old)["cn"], "a.test")
                ctx12 = client_context(maximum=V12)
                r, before = https_get(a.port, ctx=ctx12)
                for src, dst in (("a2.pem", "site.pem"), ("a2.key", "site.key")):
                    with open(a.path(dst + ".new"), "wb") as f:
                        f.write(PKI.read(src))
                    os.replace(a.path(dst + ".new"), a.path(dst))
                a.send_signal(signal.SIGHUP)
                wait_until(lambda: "SIGHUP: Configuration hot-reloaded" in a.stderr_text(), "the reload")
                # the workers adopt the new configuration a moment after that line
                wait_until(lambda: https_get(a.port)[1]["cn"] == "a2.test", "a connection with the new certificate")
                for _ in range(3):
                    r, info = https_get(a.port)
                    self.assertEqual((r.status, info["cn"]), (200, "a2.test"))
                for _ in range(2):
                    old.sendall(build_request("GET", "/index.html"))
                    self.assertEqual(read_response(old).body, b"hello over tls\n")
                self.assertEqual(tls_info(old)["cn"], "a.test")
                r, again = https_get(a.port, ctx=ctx12, session=before["session"])
                self.assertEqual(r.status, 200)
                self.assertTrue(again["reused"], "a ticket from before the reload did not resume")
            finally:
                old.close()
            r, info = https_get(a.port)
            self.assertEqual((r.status, info["cn"]), (200, "a2.test"))


PORT_LINE = re.compile(r"^(port\s*=\s*)(\d+)", re.M)


def with_ports(text, ports):
    """The example with each `port = N` line's N replaced by ports[N]; nothing else."""
    out = PORT_LINE.sub(lambda m: m.group(1) + str(ports[int(m.group(2))]), text)
    for o, n in zip(text.splitlines(), out.splitlines()):
        assert o == n or (PORT_LINE.match(o) and PORT_LINE.sub("", o) == PORT_LINE.sub("", n)), (o, n)
    return out


@needs_tls
class SeedExample(unittest.TestCase):
    def test_flat_tls_termination_example(self):
        """configs/examples/tls-termination/atlas.toml (flat [listen] + [listen.tls]) with
        certs/server.pem + .key made as its comment says and only its ports changed:
        curl -k through it reaches the backend, which hears X-Forwarded-Proto: https."""
        with open(os.path.join(REPO, "configs", "examples", "tls-termination", "atlas.toml")) as f:
            text = f.read()
        self.assertEqual(sorted(int(m.group(2)) for m in PORT_LINE.finditer(text)), [3000, 8443])
        self.assertIn("openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost", text)
        certs = tempfile.mkdtemp(prefix="atlas-tls-seed-")
        self.addCleanup(shutil.rmtree, certs, True)
        os.makedirs(os.path.join(certs, "certs"))
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=localhost",
                "-keyout", "certs/server.key", "-out", "certs/server.pem", cwd=certs)
        files = {}
        for name in ("certs/server.pem", "certs/server.key"):
            with open(os.path.join(certs, name), "rb") as f:
                files[name] = f.read()
        with Backend("seed") as b:
            listen = free_port()
            cfg = with_ports(text, {8443: listen, 3000: b.port})
            with Atlas({"atlas.toml": cfg}, files=files, port=listen, argv="file") as a:
                p = subprocess.run(["curl", "-sS", "-k", "--noproxy", "*", "--max-time", "20", "-D", "-",
                                    "https://127.0.0.1:%d/echo" % a.port],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                out = p.stdout.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                head, _, body = out.partition("\r\n\r\n")
                self.assertTrue(head.startswith("HTTP/1.1 200"), head)
                self.assertIn("X-Backend: seed", head)
                e = json.loads(body)
                self.assertIn(["X-Forwarded-Proto", "https"], e["headers"])
                r, info = https_get(a.port, "/echo", name="localhost", ctx=client_context(verify=False))
                self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
