"""Command line and configuration loading: `-t`, error lines, conf.d merge, the seed's
flat format, `atlasd FILE`."""

import os
import unittest

from harness import Atlas, get, run_bin, run_check as _run_check, site_config

WWW = {"index.html": "<p>main</p>\n", "hello.txt": "hello from www\n"}

BAD_MODULE = site_config().replace('module = "static"', 'module = "nosuchmodule"')
BAD_KEY = site_config().replace("workers = 1", "workers = 1\nwrokers = 2")
BAD_DURATION = site_config(limits={"header_timeout": '"5x"'})
ALL_THREE = (site_config(limits={"header_timeout": '"5x"'})
             .replace('module = "static"', 'module = "nosuchmodule"')
             .replace("workers = 1", "workers = 1\nwrokers = 2"))


def run_check(config, files=None):
    """run_check with the static root present, so only the intended problems show."""
    f = {"www/index.html": "x", "more/index.html": "x", "third/index.html": "x"}
    f.update(files or {})
    return _run_check(config, files=f)


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.strip()]


class Check(unittest.TestCase):
    def assert_error_lines(self, rc, out, err, n):
        self.assertEqual(rc, 1, "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err))
        lines = error_lines(err)
        self.assertEqual(len(lines), n, "want %d error line(s):\n%s" % (n, err))
        for l in lines:
            self.assertTrue(l.startswith("atlasd: "), l)
        self.assertNotIn("configuration OK", out)
        return lines

    def test_valid_config_ok(self):
        rc, out, err = run_check(site_config(), files={"www/index.html": "x"})
        self.assertEqual(rc, 0, err)
        self.assertTrue(any(l.startswith("atlasd: configuration OK")
                            for l in out.splitlines()), "stdout: %r stderr: %r" % (out, err))

    def test_unknown_module(self):
        lines = self.assert_error_lines(*run_check(BAD_MODULE), n=1)
        self.assertIn("listener.web.route[0].handler", lines[0])

    def test_unknown_key(self):
        lines = self.assert_error_lines(*run_check(BAD_KEY), n=1)
        self.assertIn("server.wrokers", lines[0])

    def test_bad_duration(self):
        lines = self.assert_error_lines(*run_check(BAD_DURATION), n=1)
        self.assertIn("header_timeout", lines[0])

    def test_three_problems_three_lines(self):
        lines = self.assert_error_lines(*run_check(ALL_THREE), n=3)
        for key in ("listener.web.route[0].handler", "server.wrokers", "header_timeout"):
            hits = [l for l in lines if key in l]
            self.assertEqual(len(hits), 1, "want exactly one line naming %s:\n%s"
                             % (key, "\n".join(lines)))

    def test_errors_name_the_file(self):
        # DESIGN section 7: "a one-line error naming the file and key".
        for cfg in (BAD_KEY, BAD_DURATION):
            with self.subTest(cfg=cfg.splitlines()[1]):
                rc, out, err = run_check(cfg)
                self.assertEqual(rc, 1, err)
                self.assertIn("atlas.toml", err)

    def test_toml_syntax_error(self):
        rc, out, err = run_check("[server\nworkers = 1\n")
        self.assertEqual(rc, 1, err)
        lines = error_lines(err)
        self.assertGreaterEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("atlasd: "), err)
        self.assertIn("atlas.toml", err)

    def test_missing_config_dir(self):
        rc, out, err = run_bin(["-t", "-c", "/nonexistent/atlas-config-dir"])
        self.assertEqual(rc, 1, err)
        lines = error_lines(err)
        self.assertGreaterEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("atlasd: "), err)

    def test_key_set_twice_names_both_files(self):
        rc, out, err = run_check({
            "atlas.toml": site_config(),
            "conf.d/20-dup.toml": "[server]\nworkers = 2\n",
        })
        self.assertEqual(rc, 1, "stdout: %s\nstderr: %s" % (out, err))
        lines = error_lines(err)
        self.assertTrue(any("atlas.toml" in l and "20-dup.toml" in l for l in lines),
                        "no single line names both files:\n" + err)
        self.assertTrue(all(l.startswith("atlasd: ") for l in lines), err)

    def test_non_toml_files_in_confd_ignored(self):
        rc, out, err = run_check({
            "atlas.toml": site_config(),
            "conf.d/README": "this is [not toml\n",
            "conf.d/old.toml.bak": "[server\n",
        })
        self.assertEqual(rc, 0, err)

    def test_seed_flat_format_checks(self):
        rc, out, err = run_check({
            "atlas.toml": SEED_FLAT,
            "public/index.html": "seed\n",
        })
        self.assertEqual(rc, 0, err)


SEED_FLAT = """\
[listen]
address = "127.0.0.1"
port = {port}
mode = "static"

[static_files]
root = "public"
"""

# An absolute root: whether a relative path in a conf.d file resolves against conf.d/
# or against the config dir is not what these tests are about.
MORE_LISTENER = """\
[[listener]]
name = "more"
listen = ["127.0.0.1:{port2}"]

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "{dir}/more" }
"""

THIRD_LISTENER = MORE_LISTENER.replace("more", "third").replace("{port2}", "{port3}")


class Serve(unittest.TestCase):
    def test_confd_adds_a_listener_and_route(self):
        # conf.d arrays append: a [[listener]] (with its route) from conf.d is served
        # next to the one from atlas.toml.
        cfg = {"atlas.toml": site_config(), "conf.d/10-more.toml": MORE_LISTENER}
        files = {"more/hello.txt": "hello from more\n"}
        with Atlas(cfg, www=WWW, files=files) as a:
            r = get(a.port2, "/hello.txt")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from more\n")
            r = get(a.port, "/hello.txt")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from www\n")

    def test_confd_files_in_name_order(self):
        cfg = {"atlas.toml": site_config(),
               "conf.d/20-third.toml": THIRD_LISTENER,
               "conf.d/10-more.toml": MORE_LISTENER}
        files = {"more/hello.txt": "more\n", "third/hello.txt": "third\n"}
        with Atlas(cfg, www=WWW, files=files) as a:
            self.assertEqual(get(a.port2, "/hello.txt").body, b"more\n")
            self.assertEqual(get(a.port3, "/hello.txt").body, b"third\n")

    def test_seed_flat_format_serves(self):
        files = {"public/hello.txt": "hello from the seed format\n",
                 "public/index.html": "<p>seed</p>\n"}
        with Atlas({"atlas.toml": SEED_FLAT}, files=files) as a:
            r = get(a.port, "/hello.txt")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from the seed format\n")
            self.assertEqual(r.media_type(), "text/plain")
            r = get(a.port, "/")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"<p>seed</p>\n")

    def test_file_argument_without_c(self):
        with Atlas(site_config(), www=WWW, argv="file") as a:
            r = get(a.port, "/hello.txt")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from www\n")

    def test_c_with_a_file(self):
        with Atlas(site_config(), www=WWW,
                   argv=lambda d: ["-c", os.path.join(d, "atlas.toml")]) as a:
            r = get(a.port, "/hello.txt")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from www\n")

    def test_check_does_not_serve(self):
        # -t exits after checking: nothing is left listening.
        from harness import can_connect, free_port
        port = free_port()
        rc, out, err = run_check(site_config().replace("{port}", str(port)),
                                 files={"www/index.html": "x"})
        self.assertEqual(rc, 0, err)
        self.assertFalse(can_connect(port))


if __name__ == "__main__":
    unittest.main()
