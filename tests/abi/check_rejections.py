#!/usr/bin/env python3
"""ABI rejection tests: atlasd must refuse each deliberately broken module with
exactly one line on stderr naming the module file and the reason, exit 1, and
never crash; the valid control module must load (and serve).

usage: check_rejections.py ATLASD MODULE_DIR
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CHECK_TIMEOUT = 60  # seconds for one `atlasd -t` (generous for sanitizer builds)
START_DEADLINE = 20  # seconds for atlasd to accept connections
STOP_DEADLINE = 20  # seconds for atlasd to exit after SIGTERM

# (module name, reason substring atlasd must print)
REJECTIONS = [
    ("bad_magic", "bad magic"),
    ("major_plus1", "ABI major"),
    ("minor_plus1", "newer than"),
    ("short_struct", "struct_size"),
    ("no_entry", "atlas_module_entry"),
    ("null_entry", "returned no descriptor"),
]

HANDLER_KEY = "listener.t.route[0].handler"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(root, module_dir, module, port):
    conf = os.path.join(root, "conf")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "atlas.toml"), "w") as f:
        f.write(
            "[server]\n"
            f"module_dir = {toml_string(module_dir)}\n"
            "workers = 1\n"
            "[[listener]]\n"
            'name = "t"\n'
            f'listen = ["127.0.0.1:{port}"]\n'
            "  [[listener.route]]\n"
            '  path_prefix = "/"\n'
            f"  handler = {{ module = {toml_string(module)} }}\n"
        )
    return conf


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


def run_check(atlasd, conf):
    p = subprocess.run([atlasd, "-t", "-c", conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, errors="replace",
                       timeout=CHECK_TIMEOUT)
    return p.returncode, p.stdout, p.stderr


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems, detail=""):
        if problems:
            self.failed += 1
            print(f"FAIL {name}: " + "; ".join(problems))
            if detail:
                for l in detail.rstrip().splitlines():
                    print(f"     | {l}")
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect_rejected(res, atlasd, module_dir, tmp, module, reason, file_hint):
    name = f"reject {module}"
    conf = write_config(os.path.join(tmp, module), module_dir, module, free_port())
    try:
        rc, out, err = run_check(atlasd, conf)
    except subprocess.TimeoutExpired:
        res.check(name, [f"atlasd -t did not finish within {CHECK_TIMEOUT}s"])
        return
    problems = []
    if rc != 1:
        problems.append(f"exit status {rc}, expected 1" + (" (killed by a signal)" if rc < 0 else ""))
    errs = lines(err)
    if len(errs) != 1:
        problems.append(f"{len(errs)} stderr lines, expected exactly 1")
    for needle in [file_hint, reason]:
        if not any(needle in l for l in errs):
            problems.append(f"stderr does not contain {needle!r}")
    if errs and not all(l.startswith("atlasd: ") for l in errs):
        problems.append("stderr line does not start with 'atlasd: '")
    res.check(name, problems, f"stdout:\n{out}stderr:\n{err}" if problems else "")


def expect_good_loads(res, atlasd, module_dir, tmp):
    conf = write_config(os.path.join(tmp, "good-check"), module_dir, "good", free_port())
    try:
        rc, out, err = run_check(atlasd, conf)
    except subprocess.TimeoutExpired:
        res.check("load good (-t)", [f"atlasd -t did not finish within {CHECK_TIMEOUT}s"])
        return
    problems = []
    if rc != 0:
        problems.append(f"exit status {rc}, expected 0")
    if not out.startswith("atlasd: configuration OK"):
        problems.append("stdout does not start with 'atlasd: configuration OK'")
    res.check("load good (-t)", problems, f"stdout:\n{out}stderr:\n{err}" if problems else "")


def expect_good_serves(res, atlasd, module_dir, tmp):
    """The control module is really loaded and called: GET / answers 200 "good\\n"."""
    name = "serve good"
    port = free_port()
    conf = write_config(os.path.join(tmp, "good-serve"), module_dir, "good", port)
    log_path = os.path.join(tmp, "good-serve", "atlasd.log")
    problems = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen([atlasd, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_DEADLINE
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                ready = True
                break
            except OSError:
                time.sleep(0.05)
        if not ready:
            problems.append("atlasd exited early" if proc.poll() is not None
                            else f"port {port} not accepting after {START_DEADLINE}s")
        else:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/anything")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status != 200:
                    problems.append(f"status {r.status}, expected 200")
                if body != b"good\n":
                    problems.append(f"body {body!r}, expected b'good\\n'")
            except (OSError, http.client.HTTPException) as e:
                problems.append(f"request failed: {e!r}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=STOP_DEADLINE)
                if rc != 0:
                    problems.append(f"exit status {rc} after SIGTERM, expected 0")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                problems.append(f"did not exit within {STOP_DEADLINE}s of SIGTERM")
        try:  # anything left in the session this test started (e.g. under a wrapper)
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    with open(log_path, errors="replace") as f:
        log_text = f.read()
    res.check(name, problems, f"atlasd log:\n{log_text}" if problems else "")


def expect_not_found(res, atlasd, module_dir, tmp):
    name = "reject does_not_exist"
    conf = write_config(os.path.join(tmp, "missing"), module_dir, "does_not_exist", free_port())
    try:
        rc, out, err = run_check(atlasd, conf)
    except subprocess.TimeoutExpired:
        res.check(name, [f"atlasd -t did not finish within {CHECK_TIMEOUT}s"])
        return
    problems = []
    if rc != 1:
        problems.append(f"exit status {rc}, expected 1")
    errs = lines(err)
    if len(errs) != 1:
        problems.append(f"{len(errs)} stderr lines, expected exactly 1")
    for needle in ["not found", HANDLER_KEY]:
        if not any(needle in l for l in errs):
            problems.append(f"stderr does not contain {needle!r}")
    res.check(name, problems, f"stdout:\n{out}stderr:\n{err}" if problems else "")


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    atlasd = os.path.abspath(sys.argv[1])
    module_dir = os.path.abspath(sys.argv[2])
    res = Results()
    tmp = tempfile.mkdtemp(prefix="atlas-abi-")
    try:
        for module, reason in REJECTIONS:
            so = os.path.join(module_dir, f"mod_{module}.so")
            if not os.path.isfile(so):
                res.check(f"reject {module}", [f"{so} was not built"])
                continue
            expect_rejected(res, atlasd, module_dir, tmp, module, reason, f"mod_{module}.so")
        expect_good_loads(res, atlasd, module_dir, tmp)
        expect_good_serves(res, atlasd, module_dir, tmp)
        expect_not_found(res, atlasd, module_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
