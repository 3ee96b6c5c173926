"""Privileges: [server] user/group (bind as root, then switch, keeping only
CAP_NET_BIND_SERVICE so a reload can still bind ports below 1024), and the module
loader refusing .so files that someone other than root or atlasd's user could change.
Everything here needs root; as another user the tests skip."""

import os
import pwd
import grp
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import (BIN, BUILD, CHECK_TIMEOUT, Atlas, get, port_is_free, run_bin, run_check,
                     wait_until)

IS_ROOT = os.geteuid() == 0
CAP_NET_BIND_SERVICE = 10
LINE_WAIT = 15  # seconds: access log lines reach the file on the workers' 1 s sweep


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


NOBODY = nobody()


def module_config(module_dir, port="{port}"):
    return ('[server]\nworkers = 1\nmodule_dir = "%s"\n\n[[listener]]\nname = "web"\n'
            'listen = ["127.0.0.1:%s"]\n  [[listener.route]]\n  path_prefix = "/"\n'
            '  handler = { module = "static", root = "www" }\n' % (module_dir, port))


@unittest.skipUnless(IS_ROOT, "needs root: chown/chmod of module files to other owners")
class ModulePermissions(unittest.TestCase):
    """A copy of mod_static.so in a directory of its own, its mode or owner changed."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="atlas-priv-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.mods = os.path.join(self.tmp, "modules")
        os.mkdir(self.mods, 0o755)
        self.so = os.path.join(self.mods, "mod_static.so")
        shutil.copyfile(os.path.join(BUILD, "modules", "mod_static.so"), self.so)
        os.chmod(self.so, 0o755)

    def check(self):
        return run_check(module_config(self.mods), files={"www/index.html": "hi\n"})

    def assert_refused(self, reason):
        code, out, err = self.check()
        self.assertEqual(code, 1, err)
        lines = [l for l in err.splitlines() if "refusing to load" in l]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("module 'static': " + reason, lines[0])
        # At start too: atlasd exits at once with the same line (it never listens).
        d = os.path.join(self.tmp, "etc")
        os.makedirs(os.path.join(d, "www"), exist_ok=True)
        with open(os.path.join(d, "atlas.toml"), "w") as f:
            f.write(module_config(self.mods, port=0))
        code, _, err = run_bin(["-c", d])
        self.assertEqual(code, 1, err)
        self.assertIn("module 'static': " + reason, err)

    def test_a_good_copy_loads(self):
        code, out, err = self.check()
        self.assertEqual(code, 0, err)
        self.assertIn("configuration OK", out)

    def test_world_writable_module(self):
        os.chmod(self.so, 0o757)
        self.assert_refused(self.so + " is world-writable: refusing to load it")

    def test_group_writable_module(self):
        os.chmod(self.so, 0o775)
        self.assert_refused(self.so + " is group-writable: refusing to load it")

    def test_writable_module_directory(self):
        os.chmod(self.mods, 0o777)
        self.assert_refused("its directory " + self.mods + " is world-writable (the module could be swapped)"
                            ": refusing to load " + self.so)

    def test_symlink_into_a_writable_directory(self):
        # module_dir itself is fine; the file it links to lives in a group-writable one.
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.mkdir(elsewhere)
        os.chmod(elsewhere, 0o775)
        os.rename(self.so, os.path.join(elsewhere, "mod_static.so"))
        os.symlink(os.path.join(elsewhere, "mod_static.so"), self.so)
        self.assert_refused("its directory " + elsewhere + " is group-writable")

    @unittest.skipUnless(NOBODY, "no user 'nobody'")
    def test_module_owned_by_another_user(self):
        os.chown(self.so, NOBODY.pw_uid, -1)
        self.assert_refused("%s is owned by uid %d, not root or the running user (uid 0)"
                            % (self.so, NOBODY.pw_uid))


@unittest.skipUnless(IS_ROOT, "needs root")
class Identity(unittest.TestCase):
    def test_unknown_user(self):
        code, _, err = run_check('[server]\nuser = "no-such-user-atlas"\n' + LISTENER, files=WWW)
        self.assertEqual(code, 1, err)
        self.assertIn('server.user: no such user "no-such-user-atlas"', err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_unknown_group(self):
        code, _, err = run_check('[server]\nuser = "nobody"\ngroup = "no-such-group-atlas"\n' + LISTENER, files=WWW)
        self.assertEqual(code, 1, err)
        self.assertIn('server.group: no such group "no-such-group-atlas"', err)

    def test_group_without_user(self):
        code, _, err = run_check('[server]\ngroup = "nogroup"\n' + LISTENER, files=WWW)
        self.assertEqual(code, 1, err)
        self.assertIn("server.group: needs server.user", err)

    @unittest.skipUnless(NOBODY, "no user 'nobody'")
    def test_switching_needs_root(self):
        # As nobody, a config asking for another user is refused at -t with the reason.
        tmp = tempfile.mkdtemp(prefix="atlas-priv-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        os.mkdir(os.path.join(tmp, "www"), 0o755)
        with open(os.path.join(tmp, "atlas.toml"), "w") as f:
            f.write('[server]\nuser = "root"\n' + LISTENER.replace("{port}", "0"))
        os.chmod(os.path.join(tmp, "atlas.toml"), 0o644)
        p = subprocess.run([BIN, "-t", "-c", tmp], capture_output=True, timeout=CHECK_TIMEOUT,
                           stdin=subprocess.DEVNULL, user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                           extra_groups=[], cwd=tmp)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn('server.user: switching to "root" needs root (running as uid %d)' % NOBODY.pw_uid, err)
        # Already running as that user: nothing to switch, fine.
        with open(os.path.join(tmp, "atlas.toml"), "w") as f:
            f.write('[server]\nuser = "nobody"\n' + LISTENER.replace("{port}", "0"))
        p = subprocess.run([BIN, "-t", "-c", tmp], capture_output=True, timeout=CHECK_TIMEOUT,
                           stdin=subprocess.DEVNULL, user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                           extra_groups=[], cwd=tmp)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


WWW = {"www/index.html": "hi\n"}
LISTENER = ('\n[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n  [[listener.route]]\n'
            '  path_prefix = "/"\n  handler = { module = "static", root = "www" }\n')


class WorldReadableAtlas(Atlas):
    """Atlas whose temp tree nobody can read: the static root, the config (read again at
    a reload) and the module_dir are under it."""

    def _prepare(self):
        super()._prepare()
        if self.tmp:
            os.chmod(self.tmp, 0o755)


def free_low_port():
    for port in range(1023, 599, -1):
        if port_is_free(port):
            return port
    return None


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


SWITCH_CONFIG = ('[server]\nworkers = 2\nuser = "nobody"\npid_file = "{dir}/run/atlas.pid"\n'
                 '\n[[listener]]\nname = "web"\nlisten = ["127.0.0.1:{port}"]\n'
                 'access_log = "{dir}/log/access.log"\n  [[listener.route]]\n  path_prefix = "/"\n'
                 '  handler = { module = "static", root = "www" }\n')


@unittest.skipUnless(IS_ROOT, "needs root: atlasd switches from root to nobody")
@unittest.skipUnless(NOBODY, "no user 'nobody'")
class SwitchToNobody(unittest.TestCase):
    def setUp(self):
        self.atlas = WorldReadableAtlas(SWITCH_CONFIG, www={"index.html": "hi\n"},
                                        files={"run/.keep": "", "log/.keep": ""})
        self.atlas.start()
        self.addCleanup(self.atlas.__exit__, None, None, None)
        self.group = grp.getgrgid(NOBODY.pw_gid).gr_name

    def log_path(self, name="access.log"):
        return self.atlas.path("log", name)

    def test_serves_as_nobody_with_only_net_bind_service(self):
        self.assertEqual(get(self.atlas.port, "/").status, 200)
        st = proc_status(self.atlas.pid)
        self.assertEqual(st["Uid"], [str(NOBODY.pw_uid)] * 4)
        self.assertEqual(st["Gid"], [str(NOBODY.pw_gid)] * 4)
        self.assertEqual(int(st["CapEff"][0], 16), 1 << CAP_NET_BIND_SERVICE)
        self.assertEqual(int(st["CapPrm"][0], 16), 1 << CAP_NET_BIND_SERVICE)
        self.assertEqual(int(st["CapInh"][0], 16), 0)
        # the worker threads too
        for tid in os.listdir("/proc/%d/task" % self.atlas.pid):
            with open("/proc/%d/task/%s/status" % (self.atlas.pid, tid)) as f:
                text = f.read()
            self.assertIn("\nUid:\t%d\t%d\t%d\t%d\n" % ((NOBODY.pw_uid,) * 4), text)
        self.assertIn("running as user nobody (uid %d), group %s (gid %d)"
                      % (NOBODY.pw_uid, self.group, NOBODY.pw_gid), self.atlas.stderr_text())
        with open(self.atlas.path("run", "atlas.pid")) as f:
            self.assertEqual(f.read().strip(), str(self.atlas.pid))

    def test_reload_binds_a_port_below_1024(self):
        low = free_low_port()
        if low is None:
            self.skipTest("no free port in 600-1023")
        with open(self.atlas.path("atlas.toml"), "a") as f:
            f.write('\n[[listener]]\nname = "low"\nlisten = ["127.0.0.1:%d"]\n  [[listener.route]]\n'
                    '  path_prefix = "/"\n  handler = { module = "static", root = "www" }\n' % low)
        self.atlas.send_signal(signal.SIGHUP)
        wait_until(lambda: "Configuration hot-reloaded (2 listeners" in self.atlas.stderr_text()
                   or "not reloaded" in self.atlas.stderr_text(), "the reload's outcome")
        self.assertNotIn("not reloaded", self.atlas.stderr_text())
        r = get(low, "/")
        self.assertEqual((r.status, r.body), (200, b"hi\n"))
        self.assertEqual(get(self.atlas.port, "/").status, 200)  # the first listener lives on

    def test_reload_cannot_change_the_user(self):
        with open(self.atlas.path("atlas.toml")) as f:
            text = f.read()
        with open(self.atlas.path("atlas.toml"), "w") as f:
            f.write(text.replace('user = "nobody"', 'user = "daemon"'))
        self.atlas.send_signal(signal.SIGHUP)
        wait_until(lambda: "not reloaded" in self.atlas.stderr_text(), "the refused reload")
        self.assertIn('server.user: changing the user needs a restart (running as "nobody")',
                      self.atlas.stderr_text())
        self.assertEqual(get(self.atlas.port, "/").status, 200)

    def read_log(self, name="access.log"):
        try:
            with open(self.log_path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_access_log_is_the_users_and_reopens_after_rotation(self):
        self.assertEqual(os.stat(self.log_path()).st_uid, NOBODY.pw_uid)
        get(self.atlas.port, "/first")
        wait_until(lambda: "GET /first" in self.read_log(), "the first line", LINE_WAIT)
        # logrotate with `create 0640 nobody nogroup`: the new file exists, owned by the user.
        os.rename(self.log_path(), self.log_path("access.log.1"))
        fd = os.open(self.log_path(), os.O_CREAT | os.O_WRONLY, 0o640)
        os.fchown(fd, NOBODY.pw_uid, NOBODY.pw_gid)
        os.close(fd)
        self.atlas.send_signal(signal.SIGUSR1)
        wait_until(lambda: "SIGUSR1" in self.atlas.stderr_text(), "the reopen")
        get(self.atlas.port, "/second")
        wait_until(lambda: "GET /second" in self.read_log(), "the line in the new file", LINE_WAIT)
        self.assertNotIn("GET /second", self.read_log("access.log.1"))
        self.assertNotIn("cannot reopen", self.atlas.stderr_text())

    def test_reopen_where_the_user_cannot_create_keeps_the_old_file(self):
        # log/ belongs to root (0755): nobody cannot create a new file there, so the
        # reopen is refused with a warning and lines keep going to the renamed file.
        get(self.atlas.port, "/first")
        wait_until(lambda: "GET /first" in self.read_log(), "the first line", LINE_WAIT)
        os.rename(self.log_path(), self.log_path("access.log.1"))
        self.atlas.send_signal(signal.SIGUSR1)
        wait_until(lambda: "cannot reopen" in self.atlas.stderr_text(), "the reopen warning")
        self.assertIn("listener.web.access_log: cannot reopen '%s': Permission denied" % self.log_path(),
                      self.atlas.stderr_text())
        get(self.atlas.port, "/second")
        wait_until(lambda: "GET /second" in self.read_log("access.log.1"), "the line in the old file",
                   LINE_WAIT)


@unittest.skipUnless(IS_ROOT, "needs root: atlasd switches from root to nobody")
@unittest.skipUnless(NOBODY, "no user 'nobody'")
class DeviceAccessLog(unittest.TestCase):
    def test_a_device_is_not_given_to_the_user(self):
        before = os.stat("/dev/null")
        self.addCleanup(os.chown, "/dev/null", before.st_uid, before.st_gid)
        with WorldReadableAtlas(SWITCH_CONFIG.replace('"{dir}/log/access.log"', '"/dev/null"'),
                                www={"index.html": "hi\n"}, files={"run/.keep": ""}) as a:
            self.assertEqual(get(a.port, "/").status, 200)
            self.assertIn("running as user nobody", a.stderr_text())
            self.assertEqual(os.stat("/dev/null").st_uid, before.st_uid)


class PidFile(unittest.TestCase):
    """server.pid_file, written before any switch (no user here: any uid runs this)."""

    def test_written_at_start_and_removed_at_exit(self):
        config = SWITCH_CONFIG.replace('user = "nobody"\n', "")
        a = Atlas(config, www={"index.html": "hi\n"}, files={"run/.keep": "", "log/.keep": ""},
                  check_exit=False)
        with a:
            with open(a.path("run", "atlas.pid")) as f:
                self.assertEqual(f.read(), "%d\n" % a.pid)
            self.assertEqual(a.stop(), 0)
            self.assertFalse(os.path.exists(a.path("run", "atlas.pid")))

    def test_unwritable_pid_file_stops_start_up(self):
        code, _, err = run_check('[server]\npid_file = "{dir}/no/such/dir/atlas.pid"\n' + LISTENER, files=WWW)
        self.assertEqual(code, 0, err)  # -t does not write it
        with self.assertRaises(AssertionError) as e:
            with Atlas('[server]\npid_file = "{dir}/no/such/dir/atlas.pid"\n' + LISTENER,
                       files=WWW, check_exit=False, ready_timeout=5):
                pass
        self.assertIn("server.pid_file: cannot write '", str(e.exception))
        self.assertIn("/no/such/dir/atlas.pid': No such file or directory", str(e.exception))


if __name__ == "__main__":
    unittest.main()
