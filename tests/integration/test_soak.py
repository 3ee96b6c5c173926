"""The soak tool (tools/soak/soak.py, `tools/dev soak`) in a short run against the binary
under test, so that it cannot rot: every kind of load, a backend kill, reloads and a bad
config must happen, and its verdict must be a pass. The RSS-growth check is off (25 s
leave no room for a warm-up, and an ASan build's RSS says nothing about leaks); the crash,
fd-leak, stuck-listener and unexpected-error checks are on."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import BIN, BUILD, HERE, REPO, tail

SOAK = os.path.join(REPO, "tools", "soak", "soak.py")
HAVE_PEERS = all(shutil.which(t) for t in ("wrk", "node", "openssl")) and \
    os.path.isdir(os.path.join(HERE, "node_modules", "ws"))


@unittest.skipUnless(HAVE_PEERS, "needs wrk, node, openssl and tests/integration/node_modules/ws (tools/dev test installs them)")
class SoakSmoke(unittest.TestCase):
    def test_a_short_soak_passes(self):
        with tempfile.TemporaryDirectory(prefix="atlas-soak-test-") as tmp:
            report_path = os.path.join(tmp, "report.json")
            p = subprocess.run([sys.executable, SOAK, "--bin", BIN, "--build", BUILD, "--seconds", "25",
                                "--no-rss-check", "--kill-every", "5", "8", "--reload-every", "3",
                                "--json", report_path],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=240)
            out = tail(p.stdout + p.stderr, 80)
            self.assertEqual(p.returncode, 0, out)
            with open(report_path) as f:
                report = json.load(f)
        self.assertEqual(report["verdict"], "pass", out)
        self.assertEqual(report["reasons"], [], out)
        ops = report["ops"]
        for kind in ("static", "proxy", "tls", "tls_fresh", "proxy_post", "ws_messages", "ws_sessions",
                     "tcp_messages", "tcp_sessions", "hostile_slowloris", "hostile_malformed"):
            self.assertGreater(ops.get(kind, 0), 0, "no %s in %s" % (kind, ops))
        self.assertGreaterEqual(sum(report["kills"].values()), 1, out)
        self.assertGreaterEqual(report["reloads"]["good"], 2, out)
        self.assertGreaterEqual(report["reloads"]["bad_rejected"], 1, out)
        self.assertEqual(report["reloads"]["bad_accepted"], 0, out)
        self.assertTrue(report["fds"]["settled"], out)
        self.assertGreaterEqual(len(report["samples"]), 4, out)


if __name__ == "__main__":
    unittest.main()
