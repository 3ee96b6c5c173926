"""Upstreams at config load: server names resolved, each upstream's LB policy module
loaded and its config checked (`atlasd -t` names the key), and a worker running with
upstreams declared (policies get their endpoints at worker start)."""

import unittest

from harness import Atlas, get, run_check, site_config

WWW = {"www/index.html": "x"}


def with_upstream(body):
    return site_config() + "\n[upstream.api]\n" + body + "\n"


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.strip()]


class Check(unittest.TestCase):
    def check(self, config):
        return run_check(config, files=WWW)

    def assert_one_error(self, config, *needles):
        rc, out, err = self.check(config)
        self.assertEqual(rc, 1, "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err))
        lines = error_lines(err)
        self.assertEqual(len(lines), 1, err)
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]

    def test_every_policy_loads(self):
        for policy in ("round_robin", "weighted_round_robin", "weighted", "random",
                       "least_connections", "p2c", "hash", "ip_hash"):
            with self.subTest(policy=policy):
                rc, out, err = self.check(with_upstream(
                    'lb = "%s"\nservers = ["127.0.0.1:3001", { address = "[::1]:3002", weight = 3 }]'
                    % policy))
                self.assertEqual(rc, 0, err)

    def test_hash_options(self):
        for key in ("client_ip", "header:X-User", "cookie:session"):
            with self.subTest(key=key):
                rc, out, err = self.check(with_upstream(
                    'lb = { module = "hash", key = "%s" }\nservers = ["127.0.0.1:3001"]' % key))
                self.assertEqual(rc, 0, err)

    def test_hostname_resolves(self):
        rc, out, err = self.check(with_upstream('servers = ["localhost:3001"]'))
        self.assertEqual(rc, 0, err)

    def test_unknown_policy_names_the_key(self):
        line = self.assert_one_error(with_upstream('lb = "fastest"\nservers = ["127.0.0.1:3001"]'),
                                     "upstream.api.lb", "mod_lb_fastest.so")
        self.assertIn("not found", line)

    def test_bad_policy_option_names_the_key(self):
        self.assert_one_error(
            with_upstream('lb = { module = "hash", key = "shoe_size" }\nservers = ["127.0.0.1:3001"]'),
            "upstream.api.lb", "shoe_size")

    def test_unknown_policy_option(self):
        self.assert_one_error(
            with_upstream('lb = { module = "round_robin", sticky = true }\nservers = ["127.0.0.1:3001"]'),
            "upstream.api.lb", "sticky")

    def test_module_of_the_wrong_kind(self):
        # mod_static exists but is no lb_policy: "lb_static" is looked up, so it is not found;
        # a policy named like a handler module must not load that handler.
        self.assert_one_error(with_upstream('lb = "static"\nservers = ["127.0.0.1:3001"]'),
                              "upstream.api.lb", "mod_lb_static.so")

    def test_unresolvable_server(self):
        line = self.assert_one_error(
            with_upstream('servers = ["127.0.0.1:3001", "no-such-host.invalid:80"]'),
            "upstream.api.servers[1]", "no-such-host.invalid")
        self.assertIn("cannot resolve", line)


class Running(unittest.TestCase):
    def test_serves_with_upstreams_declared(self):
        config = (site_config(workers=2)
                  + '\n[upstream.api]\nlb = "least_connections"\n'
                    'servers = ["127.0.0.1:3001", "localhost:3002"]\n'
                  + '\n[upstream.sticky]\nlb = { module = "hash", key = "cookie:sid" }\n'
                    'servers = [{ address = "127.0.0.1:3003", weight = 2 }]\n')
        with Atlas(config, www={"index.html": "<p>up</p>\n"}) as a:
            r = get(a.port, "/")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"<p>up</p>\n")


if __name__ == "__main__":
    unittest.main()
