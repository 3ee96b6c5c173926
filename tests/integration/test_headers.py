"""mod_headers: response edits on files served by mod_static (add/set/remove, several
values, the order remove -> set -> add, the top-level shorthand of the design's example),
request edits as the handler sees them (mod_testkit's handler with echo_headers = true
answers with the request headers it received), X-Request-ID (generated, unique, passed
on when fit, replaced when not, echoed on the response) and `atlasd -t` refusing bad
filter tables with one line naming the key.

"""

import re
import unittest

from harness import (Atlas, build_request, connect, read_response, request,
                     run_check)

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def head(workers=1):
    return ('[server]\nworkers = %d\nmodule_dir = "{modules}"\n\n'
            '[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n' % workers)


def route(prefix, handler, filters=None):
    text = '\n  [[listener.route]]\n  path_prefix = "%s"\n' % prefix
    if filters:
        text += "  filters = [%s]\n" % ", ".join(filters)
    return text + "  handler = %s\n" % handler


STATIC = '{ module = "static", root = "www" }'
ECHO = '{ module = "testkit", echo_headers = true }'


def echoed(r):
    """The request headers mod_testkit's echo_headers handler received: [(name, value)]."""
    assert r.status == 200, (r.status, r.body)
    out = []
    for line in r.body.decode("latin-1").splitlines():
        name, _, value = line.partition(": ")
        out.append((name, value))
    return out


def echoed_all(r, name):
    return [v for k, v in echoed(r) if k.lower() == name.lower()]


def fetch(port, path, headers=(), method="GET"):
    """One request with the given (name, value) list (repeated names allowed)."""
    with connect(port) as s:
        s.sendall(build_request(method, path, headers=[("Connection", "close")] + list(headers)))
        return read_response(s, head=(method == "HEAD"))


class Server:
    """One atlasd for a whole TestCase class (started in setUpClass)."""

    CONFIG = None
    WWW = None

    @classmethod
    def setUpClass(cls):
        cls.atlas = Atlas(cls.CONFIG, www=cls.WWW)
        cls.atlas.__enter__()
        cls.port = cls.atlas.port

    @classmethod
    def tearDownClass(cls):
        cls.atlas.__exit__(None, None, None)


# --------------------------------------------------------------------------- response side

RESPONSE_CONFIG = (
    head(workers=2)
    + route("/plain/", STATIC)
    + route("/resp/", STATIC, [
        '{ module = "headers", response = { '
        'remove = ["ETag", "Accept-Ranges"], '
        'set = { "Content-Type" = "text/x-custom", "X-Frame-Options" = "DENY" }, '
        'add = { "X-Gateway" = "atlas", "Link" = ["</a.css>; rel=preload", "</b.js>; rel=preload"] } } }'])
    + route("/order/", STATIC, [
        '{ module = "headers", response = { add = { "Accept-Ranges" = "x-added" }, '
        'set = { "Accept-Ranges" = "none" }, remove = ["Accept-Ranges"] } }'])
    + route("/short/", STATIC, [
        '{ module = "headers", add = { "X-Gateway" = "atlas" }, remove = ["Server"] }'])
    + route("/srv/", STATIC, ['{ module = "headers", set = { "Server" = "edge" } }'])
    + route("/two/", STATIC, [
        '{ module = "headers", add = { "X-Hop" = "outer" } }',
        '{ module = "headers", add = { "X-Hop" = "inner" }, set = { "X-Last" = "inner" } }'])
)

RESPONSE_WWW = {d + "/hello.txt": "hello from %s\n" % d for d in ("plain", "resp", "order", "short", "srv", "two")}


class ResponseEdits(Server, unittest.TestCase):
    CONFIG = RESPONSE_CONFIG
    WWW = RESPONSE_WWW

    def test_baseline_without_filter(self):
        # what mod_static sends on its own, so the edits below are visible
        r = request(self.port, path="/plain/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertIsNotNone(r.header("ETag"))
        self.assertEqual(r.header("Accept-Ranges"), "bytes")
        self.assertIsNone(r.header("X-Gateway"))

    def test_add_set_remove(self):
        r = request(self.port, path="/resp/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello from resp\n")
        self.assertIsNone(r.header("ETag"))            # removed
        self.assertIsNone(r.header("Accept-Ranges"))   # removed
        self.assertEqual(r.header_all("Content-Type"), ["text/x-custom"])  # replaced, once
        self.assertEqual(r.header_all("X-Frame-Options"), ["DENY"])        # set when absent
        self.assertEqual(r.header_all("X-Gateway"), ["atlas"])
        self.assertEqual(r.header("Content-Length"), str(len(b"hello from resp\n")))

    def test_add_several_values_in_order(self):
        r = request(self.port, path="/resp/hello.txt")
        self.assertEqual(r.header_all("Link"), ["</a.css>; rel=preload", "</b.js>; rel=preload"])

    def test_order_remove_then_set_then_add(self):
        # declared add, set, remove: applied remove (mod_static's "bytes"), set, add
        r = request(self.port, path="/order/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header_all("Accept-Ranges"), ["none", "x-added"])

    def test_edits_apply_to_error_responses_and_head(self):
        r = request(self.port, path="/resp/missing.txt")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header_all("X-Gateway"), ["atlas"])
        r = fetch(self.port, "/resp/hello.txt", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header_all("X-Gateway"), ["atlas"])
        self.assertEqual(r.body, b"")

    def test_every_response_on_a_keepalive_connection(self):
        with connect(self.port) as s:
            for i in range(5):
                s.sendall(build_request("GET", "/resp/hello.txt" if i % 2 else "/plain/hello.txt"))
                r = read_response(s)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header_all("X-Gateway"), ["atlas"] if i % 2 else [])

    def test_two_filters_response_hooks_run_in_reverse(self):
        r = request(self.port, path="/two/hello.txt")
        self.assertEqual(r.header_all("X-Hop"), ["inner", "outer"])
        self.assertEqual(r.header_all("X-Last"), ["inner"])

    def test_shorthand_is_the_response_side(self):
        # the design's example: filters = [{ module = "headers", add = {...}, remove = ["Server"] }]
        r = request(self.port, path="/short/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header_all("X-Gateway"), ["atlas"])
        self.assertLessEqual(len(r.header_all("Server")), 1)

    def test_remove_server(self):
        r = request(self.port, path="/short/hello.txt")
        self.assertIsNone(r.header("Server"))
        self.assertIsNotNone(r.header("Date"))
        # routes without the filter keep atlasd's Server
        self.assertEqual(request(self.port, path="/plain/hello.txt").header_all("Server"), ["atlas"])

    def test_set_server_replaces_atlasds(self):
        for method in ("GET", "HEAD"):
            with self.subTest(method=method):
                r = request(self.port, method=method, path="/srv/hello.txt")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header_all("Server"), ["edge"])


# --------------------------------------------------------------------------- request side

REQUEST_CONFIG = (
    head(workers=2)
    + route("/edit", ECHO, [
        '{ module = "headers", request = { remove = ["X-C"], set = { "X-B" = "2" }, '
        'add = { "X-A" = ["1", "2"] } } }'])
    + route("/order", ECHO, [
        '{ module = "headers", request = { add = { "X-O" = "added" }, set = { "X-O" = "set" }, '
        'remove = ["X-O"] } }'])
    + route("/rid-alias", ECHO, [
        '{ module = "headers", request = { set = { "X-Request-ID" = "auto" } } }'])
    + route("/rid", ECHO, ['{ module = "headers", request_id = "auto" }'])
    + route("/plain", ECHO)
)


class RequestEdits(Server, unittest.TestCase):
    CONFIG = REQUEST_CONFIG

    def test_add_set_remove(self):
        r = fetch(self.port, "/edit", [("X-C", "gone"), ("X-B", "old"), ("X-B", "older"),
                                       ("X-A", "client"), ("X-Keep", "kept")])
        self.assertEqual(echoed_all(r, "X-C"), [])
        self.assertEqual(echoed_all(r, "X-B"), ["2"])
        self.assertEqual(echoed_all(r, "X-A"), ["client", "1", "2"])  # add appends, in order
        self.assertEqual(echoed_all(r, "X-Keep"), ["kept"])
        self.assertEqual(echoed_all(r, "Host"), ["localhost"])
        self.assertIsNone(r.header("X-A"))  # request edits stay on the request side

    def test_without_filter_nothing_changes(self):
        r = fetch(self.port, "/plain", [("X-C", "stays"), ("X-B", "old")])
        self.assertEqual(echoed_all(r, "X-C"), ["stays"])
        self.assertEqual(echoed_all(r, "X-B"), ["old"])
        self.assertEqual(echoed_all(r, "X-Request-ID"), [])
        self.assertIsNone(r.header("X-Request-ID"))

    def test_order_remove_then_set_then_add(self):
        r = fetch(self.port, "/order", [("X-O", "client")])
        self.assertEqual(echoed_all(r, "X-O"), ["set", "added"])

    def assert_generated(self, r):
        ids = echoed_all(r, "X-Request-ID")
        self.assertEqual(len(ids), 1, echoed(r))
        self.assertRegex(ids[0], HEX32)
        self.assertEqual(r.header_all("X-Request-ID"), ids)  # echoed on the response
        return ids[0]

    def test_request_id_generated_and_on_the_response(self):
        self.assert_generated(fetch(self.port, "/rid"))

    def test_request_id_unique(self):
        seen = set()
        for _ in range(60):  # fresh connections: spread over both workers
            seen.add(self.assert_generated(fetch(self.port, "/rid")))
        self.assertEqual(len(seen), 60)

    def test_request_id_passed_on_when_fit(self):
        for value in ("abc-123_XYZ.=", "a", "!~" * 100, "0123456789abcdef0123456789abcdef"):
            with self.subTest(value=value[:20]):
                r = fetch(self.port, "/rid", [("X-Request-ID", value)])
                self.assertEqual(echoed_all(r, "X-Request-ID"), [value])
                self.assertEqual(r.header_all("X-Request-ID"), [value])

    def test_request_id_replaced_when_unfit(self):
        for value in ("x" * 201, "has space", "tab\there", ""):
            with self.subTest(value=value[:20]):
                r = fetch(self.port, "/rid", [("X-Request-ID", value)])
                self.assertNotEqual(self.assert_generated(r), value)

    def test_request_id_non_ascii_replaced(self):
        with connect(self.port) as s:
            s.sendall(b"GET /rid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                      b"X-Request-ID: caf\xc3\xa9\r\n\r\n")
            r = read_response(s)
        self.assert_generated(r)

    def test_request_id_several_fields_become_one(self):
        r = fetch(self.port, "/rid", [("X-Request-ID", "first"), ("x-request-id", "second")])
        self.assertEqual(echoed_all(r, "X-Request-ID"), ["first"])
        self.assertEqual(r.header_all("X-Request-ID"), ["first"])
        r = fetch(self.port, "/rid", [("X-Request-ID", "bad value"), ("X-Request-ID", "second")])
        self.assert_generated(r)

    def test_request_id_alias_in_request_set(self):
        self.assert_generated(fetch(self.port, "/rid-alias"))
        r = fetch(self.port, "/rid-alias", [("X-Request-ID", "kept-id")])
        self.assertEqual(echoed_all(r, "X-Request-ID"), ["kept-id"])
        self.assertEqual(r.header_all("X-Request-ID"), ["kept-id"])


# --------------------------------------------------------------------------- atlasd -t

KEY = "listener.web.route[0].filters[1]"  # the bad filter is the second of the route


def check_config(filter_table):
    """A config whose route has a valid headers filter, then `filter_table`."""
    return (head() + route("/", STATIC, ['{ module = "headers", add = { "X-Ok" = "1" } }',
                                         filter_table]))


class ConfigErrors(unittest.TestCase):
    def assert_refused(self, filter_table, key, reason):
        rc, out, err = run_check(check_config(filter_table), files={"www/index.html": "x"})
        self.assertEqual(rc, 1, "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err))
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("atlasd: "), lines[0])
        self.assertIn(key + ": ", lines[0])
        self.assertIn(reason, lines[0])
        self.assertNotIn("configuration OK", out)

    def test_valid_config_ok(self):
        table = ('{ module = "headers", request_id = "auto", '
                 'request = { remove = ["Cookie"], set = { "Connection" = "close" }, add = { "X-A" = "1" } }, '
                 'response = { remove = ["X-Powered-By"], set = { "Cache-Control" = "no-store" }, '
                 'add = { "Link" = ["<a>", "<b>"], "X-Tab" = "a\tb" } } }')
        rc, out, err = run_check(check_config(table), files={"www/index.html": "x"})
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration OK", out)

    def test_value_with_cr_or_lf(self):
        self.assert_refused('{ module = "headers", response = { add = { "X-A" = "1\\r\\nX-Evil: 1" } } }',
                            KEY + ": response.add", 'value of "X-A" contains CR or LF')
        self.assert_refused('{ module = "headers", request = { set = { "X-B" = "a\\nb" } } }',
                            KEY + ": request.set", 'value of "X-B" contains CR or LF')
        self.assert_refused('{ module = "headers", add = { "X-L" = ["ok", "b\\r"] } }',
                            KEY + ": add", 'value of "X-L" contains CR or LF')

    def test_value_with_nul_or_control(self):
        self.assert_refused('{ module = "headers", response = { set = { "X-N" = "a\\u0000b" } } }',
                            KEY + ": response.set", 'value of "X-N" contains NUL')
        self.assert_refused('{ module = "headers", response = { set = { "X-N" = "a\\u0007b" } } }',
                            KEY + ": response.set", 'value of "X-N" contains a control character')
        self.assert_refused('{ module = "headers", response = { set = { "X-N" = " padded" } } }',
                            KEY + ": response.set", "leading or trailing whitespace")

    def test_name_not_a_token(self):
        self.assert_refused('{ module = "headers", request = { set = { "X B" = "1" } } }',
                            KEY + ": request.set", '"X B" is not a valid header name')
        self.assert_refused('{ module = "headers", response = { remove = ["X:Y"] } }',
                            KEY + ": response.remove", '"X:Y" is not a valid header name')
        self.assert_refused('{ module = "headers", add = { "" = "1" } }',
                            KEY + ": add", '"" is not a valid header name')

    def test_unknown_keys(self):
        self.assert_refused('{ module = "headers", requst = { add = { "X-A" = "1" } } }',
                            KEY + ": requst", "unknown key")
        self.assert_refused('{ module = "headers", response = { append = { "X-A" = "1" } } }',
                            KEY + ": response.append", "unknown key")

    def test_wrong_types(self):
        cases = [
            ('response = { remove = "Server" }', ": response.remove", "must be an array"),
            ('response = { add = { "X-A" = 1 } }', ": response.add", "must be a string"),
            ('response = { add = { "X-A" = [] } }', ": response.add", "non-empty array"),
            ('response = { set = { "X-A" = ["a", "b"] } }', ": response.set", "must be a string"),
            ('request = ["X-A"]', ": request", "must be a table"),
            ('request_id = true', ": request_id", 'must be "auto" or "off"'),
        ]
        for table, key, reason in cases:
            with self.subTest(table=table):
                self.assert_refused('{ module = "headers", %s }' % table, KEY + key, reason)

    def test_response_framing_and_host_written_headers(self):
        for name in ("Content-Length", "Transfer-Encoding", "Connection"):
            with self.subTest(name=name):
                self.assert_refused('{ module = "headers", response = { remove = ["%s"] } }' % name,
                                    KEY + ": response.remove", '"%s" belongs to atlasd' % name)
        self.assert_refused('{ module = "headers", set = { "Connection" = "close" } }',
                            KEY + ": set", '"Connection" belongs to atlasd')
        self.assert_refused('{ module = "headers", add = { "Server" = "x" } }',
                            KEY + ": add", '"Server" cannot be added')
        for edit in ('add = { "Date" = "x" }', 'set = { "Date" = "x" }', 'remove = ["Date"]'):
            with self.subTest(edit=edit):
                self.assert_refused('{ module = "headers", %s }' % edit,
                                    KEY + ": " + edit.split()[0], '"Date" is written by atlasd')

    def test_request_framing_and_routing_headers(self):
        for name in ("Host", "Content-Length", "Transfer-Encoding", "host"):
            with self.subTest(name=name):
                self.assert_refused('{ module = "headers", request = { set = { "%s" = "x" } } }' % name,
                                    KEY + ": request.set", '"%s" cannot be edited on the request side' % name)

    def test_conflicting_keys(self):
        self.assert_refused('{ module = "headers", add = { "X-A" = "1" }, response = { add = { "X-B" = "2" } } }',
                            KEY + ": add", "cannot be combined with response")
        self.assert_refused('{ module = "headers", request_id = "auto", request = { remove = ["X-Request-ID"] } }',
                            KEY + ": request.remove", "managed by request_id")
        self.assert_refused('{ module = "headers", response = { set = { "X-B" = "1", "x-b" = "2" } } }',
                            KEY + ": response.set", "set twice")


if __name__ == "__main__":
    unittest.main()
