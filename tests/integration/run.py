#!/usr/bin/env python3
"""Run the atlasd integration tests.

    tests/integration/run.py --bin build/core/atlasd --build build [-k substring] [-j N]

Discovers test_*.py next to this file and runs each file's unittest TestCases in its own
subprocess (up to -j at once), so a crash or hang in one file is contained.  Prints one
line per test (ok / FAIL / ERROR / skip, name, seconds), then the details of every failure,
then exactly one line "N passed, N failed".  Exit status 1 if anything failed or errored.

A file that runs longer than --timeout seconds (default 300) is killed (its whole process
group, which includes the atlasd processes it started); its unfinished tests count as
failures.

--valgrind runs every atlasd under valgrind memcheck (ATLAS_WRAPPER), for the files of
VALGRIND_FILES (or those -k picks); a memcheck error or a definite leak fails the test.

Environment passed to the tests: ATLAS_BIN, ATLAS_BUILD (absolute paths).
ATLAS_KEEP_TMP=1 keeps the temp config dirs for post-mortems.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# --------------------------------------------------------------------------- worker side


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def short_id(test):
    # "test_basic.BasicSite.test_head" (module name is the file stem)
    return test.id()


class JsonResult(unittest.TestResult):
    """Writes one JSON line per finished test to `out` (a file opened by the worker)."""

    def __init__(self, out):
        super().__init__()
        self.buffer = True  # capture test stdout/stderr; appended to failure details
        self.out = out
        self._start = {}
        self._state = {}

    def _emit(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._start[test.id()] = time.monotonic()
        self._state[test.id()] = {"status": "ok", "details": [], "note": ""}

    def _record(self, test, status, text):
        st = self._state.get(test.id())
        if st is None:
            # setUpClass / setUpModule / tearDownClass errors (_ErrorHolder)
            self._emit({"name": test.id() if hasattr(test, "id") else str(test),
                        "status": status, "secs": 0.0, "details": [text], "note": ""})
            return
        if status == "ERROR" or st["status"] == "ok":
            st["status"] = status if st["status"] != "ERROR" else "ERROR"
        st["details"].append(text)

    def addSuccess(self, test):
        super().addSuccess(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "FAIL", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "ERROR", self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            if issubclass(err[0], test.failureException):
                text = self.failures[-1][1]
                status = "FAIL"
            else:
                text = self.errors[-1][1]
                status = "ERROR"
            self._record(test, status, "[subtest %s]\n%s" % (subtest._subDescription(), text))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        st = self._state.get(test.id())
        if st is None:
            self._emit({"name": test.id(), "status": "skip", "secs": 0.0, "details": [],
                        "note": reason})
            return
        st["status"] = "skip"
        st["note"] = reason

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "FAIL", "unexpected success")

    def stopTest(self, test):
        super().stopTest(test)
        st = self._state.pop(test.id(), None)
        if st is None:
            return
        secs = time.monotonic() - self._start.pop(test.id(), time.monotonic())
        self._emit({"name": test.id(), "status": st["status"], "secs": round(secs, 2),
                    "details": st["details"], "note": st["note"]})


def worker_main(path, pattern, out_path):
    sys.path.insert(0, HERE)
    with open(out_path, "a") as out:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            module = __import__(name)
        except BaseException:
            out.write(json.dumps({"name": name + " (import)", "status": "ERROR", "secs": 0.0,
                                  "details": [traceback.format_exc()], "note": ""}) + "\n")
            return 1
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        tests = [t for t in iter_tests(suite) if not pattern or pattern in short_id(t)]
        out.write(json.dumps({"plan": [short_id(t) for t in tests]}) + "\n")
        out.flush()
        result = JsonResult(out)
        unittest.TestSuite(tests).run(result)
        out.write(json.dumps({"done": True}) + "\n")
        out.flush()
    return 0


# --------------------------------------------------------------------------- parent side


def list_tests(path, pattern):
    """Test ids of one file without running it (imports it in-process; cheap)."""
    sys.path.insert(0, HERE)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        module = __import__(name)
    except BaseException:
        return None  # the worker will report the import error
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    return [short_id(t) for t in iter_tests(suite) if not pattern or pattern in short_id(t)]


class FileRun:
    def __init__(self, path):
        self.path = path
        self.records = []
        self.plan = None
        self.done = False
        self.timed_out = False
        self.rc = None
        self.log = ""
        self.secs = 0.0


def run_file(path, args, env, print_lock):
    fr = FileRun(path)
    with tempfile.TemporaryDirectory(prefix="atlas-run-") as tmp:
        out_path = os.path.join(tmp, "results.jsonl")
        log_path = os.path.join(tmp, "log.txt")
        open(out_path, "w").close()
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", path,
               "--results", out_path]
        if args.k:
            cmd += ["-k", args.k]
        t0 = time.monotonic()
        with open(log_path, "wb") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env, cwd=HERE,
                                 start_new_session=True)
            printed = 0
            deadline = t0 + args.timeout
            while True:
                try:
                    fr.rc = p.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                printed = _stream(out_path, fr, printed, print_lock)
                if time.monotonic() > deadline:
                    fr.timed_out = True
                    _kill_group(p)
                    fr.rc = p.wait()
                    break
            # the worker may have left atlasd children behind (it was killed, or crashed)
            _kill_group(p)
        fr.secs = time.monotonic() - t0
        _stream(out_path, fr, printed, print_lock)
        with open(log_path, "rb") as f:
            fr.log = f.read().decode("utf-8", "replace")
    return fr


def _kill_group(p):
    """Kill the process group we created for this worker (its id is the worker's pid)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stream(out_path, fr, printed, print_lock):
    """Parse new result lines; print the test lines as they arrive."""
    with open(out_path) as f:
        lines = f.read().splitlines()
    # only whole lines (the last one may still be being written)
    complete = []
    for line in lines:
        try:
            complete.append(json.loads(line))
        except ValueError:
            break
    for rec in complete[printed:]:
        if "plan" in rec:
            fr.plan = rec["plan"]
        elif "done" in rec:
            fr.done = True
        else:
            fr.records.append(rec)
            with print_lock:
                print_line(rec)
    return len(complete)


def print_line(rec):
    status = rec["status"]
    tag = {"ok": "ok", "FAIL": "FAIL", "ERROR": "ERROR", "skip": "skip"}.get(status, status)
    extra = ""
    if status == "skip" and rec.get("note"):
        extra = "  (%s)" % rec["note"]
    print("%-5s %s %.2fs%s" % (tag, rec["name"], rec.get("secs", 0.0), extra), flush=True)


# The memcheck run (--valgrind): any error is reported between markers the harness looks
# for, and makes atlasd exit 99; a leak counts when it is definite.
VALGRIND_COMMAND = ("valgrind --quiet --error-exitcode=99 --error-markers=VALGRIND-ERROR-BEGIN,"
                    "VALGRIND-ERROR-END --leak-check=full --errors-for-leak-kinds=definite "
                    "--show-leak-kinds=definite --num-callers=30")

# Files whose tests valgrind can run in time: memcheck slows atlasd down 20-50 times, so
# the subset keeps CI's budget: HTTP parsing and routing, keep-alive, upstreams, signals
# and reload, access logs, L4 glue and TLS (where memcheck found wolfSSL's per-thread ECC
# cache lost at exit). test_proxy, test_tcp and test_websocket also pass under it (their
# hundreds-of-MiB tests are skipped there) and can be run by hand with -k.
VALGRIND_FILES = {
    "test_basic.py", "test_malformed.py", "test_headers.py", "test_routing.py", "test_chain.py",
    "test_keepalive.py", "test_upstreams.py", "test_l4.py", "test_signals.py", "test_access_log.py",
    "test_tls.py",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="atlasd binary (default BUILD/core/atlasd)")
    ap.add_argument("--build", help="build directory (default <repo>/build)")
    ap.add_argument("-k", default="", help="only tests whose id contains this substring")
    ap.add_argument("-j", type=int, default=2, help="test files run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds per test file (default 300)")
    ap.add_argument("--valgrind", action="store_true",
                    help="run atlasd under valgrind memcheck: the files of VALGRIND_FILES, or what -k picks")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        return worker_main(args.worker, args.k, args.results)

    build = os.path.abspath(args.build or os.environ.get("ATLAS_BUILD") or
                            os.path.join(REPO, "build"))
    binary = os.path.abspath(args.bin or os.environ.get("ATLAS_BIN") or
                             os.path.join(build, "core", "atlasd"))
    if not os.path.exists(binary):
        print("run.py: warning: atlasd binary %s does not exist; tests will fail" % binary,
              file=sys.stderr)
    env = dict(os.environ)
    env["ATLAS_BIN"] = binary
    env["ATLAS_BUILD"] = build
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"

    files = sorted(os.path.join(HERE, f) for f in os.listdir(HERE)
                   if f.startswith("test_") and f.endswith(".py"))
    if args.valgrind:
        env["ATLAS_WRAPPER"] = VALGRIND_COMMAND
        if not args.k:  # -k picks from every file, as valgrind runs by hand
            files = [f for f in files if os.path.basename(f) in VALGRIND_FILES]
    if args.k:
        keep = []
        for f in files:
            ids = list_tests(f, args.k)
            if ids is None or ids:
                keep.append(f)
        files = keep

    print_lock = threading.Lock()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
        futs = [ex.submit(run_file, f, args, env, print_lock) for f in files]
        for fut in futs:
            results.append(fut.result())

    passed = failed = skipped = 0
    details = []
    for fr in results:
        fname = os.path.basename(fr.path)
        for rec in fr.records:
            if rec["status"] == "ok":
                passed += 1
            elif rec["status"] == "skip":
                skipped += 1
            else:
                # a failed setUpClass is not counted itself: every test of its class is
                # counted below as "did not run" (tearDownClass errors do count)
                if not rec["name"].startswith(("setUpClass ", "setUpModule ")):
                    failed += 1
                details.append((rec["name"], rec["status"], "\n".join(rec["details"])))
        reported = {r["name"] for r in fr.records}
        missing = [t for t in (fr.plan or []) if t not in reported]
        if fr.timed_out:
            why = "file %s timed out after %.0fs (killed)" % (fname, args.timeout)
        elif not fr.done:
            why = "worker for %s exited %s before finishing" % (fname, fr.rc)
        else:
            why = "did not run (class or module setup failed, see above)"
        for t in missing:
            failed += 1
            rec = {"name": t, "status": "ERROR" if not fr.timed_out else "FAIL",
                   "secs": 0.0}
            print_line(rec)
            details.append((t, rec["status"], why if fr.done else
                            why + "\n--- worker output ---\n" + _tail(fr.log)))
        if fr.plan is None and not fr.records:
            failed += 1
            print_line({"name": fname, "status": "ERROR", "secs": fr.secs})
            details.append((fname, "ERROR", "worker produced no results (exit %s)\n%s"
                            % (fr.rc, _tail(fr.log))))
        elif (fr.timed_out or not fr.done) and not missing:
            failed += 1
            print_line({"name": fname, "status": "ERROR", "secs": fr.secs})
            details.append((fname, "ERROR", why + "\n" + _tail(fr.log)))

    if details:
        print()
        for name, status, text in details:
            print("=" * 78)
            print("%s: %s" % (status, name))
            print("-" * 78)
            print(text.rstrip())
        print("=" * 78)
    if skipped:
        print("(%d skipped)" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def _tail(text, n=80):
    lines = text.splitlines()
    if len(lines) > n:
        lines = ["..."] + lines[-n:]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
