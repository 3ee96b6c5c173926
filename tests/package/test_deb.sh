#!/usr/bin/env bash
# Package test: build the .deb files (tools/dev package), install them with dpkg,
# run the installed atlasd on the installed /etc/atlas as it is and curl it, build
# the third-party example module against the installed files only and check that
# it acts, then remove and purge the packages and check that nothing they
# installed is left behind.
#
# usage: tests/package/test_deb.sh
# Needs root (or sudo): it installs packages. Without either it skips. Last line:
# "N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

start_deadline=20 # seconds for atlasd to accept connections
stop_deadline=40  # seconds for atlasd to exit after SIGTERM (its drain_timeout is 30 s)
log_deadline=5    # seconds for an access log line to reach the file (flushed each second)
POLICY_RC=/usr/sbin/policy-rc.d

passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "ok   $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
}
finish() {
    echo "$passed passed, $failed failed"
    if ((failed > 0)); then exit 1; fi
    exit 0
}

# A command prefix, not a function: `"${as_root[@]}" atlasd &` must make atlasd (or sudo,
# which passes signals on) the background process whose PID the test keeps.
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "SKIP: the package test installs packages: run it as root or with password-less sudo"
    finish
fi

is_installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^[ih][iUFHWt]'; }

for p in atlas atlas-dev; do
    if is_installed "$p"; then
        fail "package $p is already installed here: this test installs and purges it (dpkg -P atlas-dev atlas first)"
        finish
    fi
done

# Both ports of the installed default config must be free: the test runs /etc/atlas as shipped.
port_free() { # port_free HOST PORT
    "${as_root[@]}" python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind((sys.argv[1], int(sys.argv[2])))
except OSError: sys.exit(1)' "$1" "$2"
}
for hp in 0.0.0.0:80 127.0.0.1:9901; do
    if ! port_free "${hp%:*}" "${hp##*:}"; then
        fail "$hp is in use: the installed /etc/atlas/atlas.toml listens there; stop what holds it"
        finish
    fi
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-deb.XXXXXX")
chmod 755 "$tmp" # sudo'd commands read from it
pid=""
installed=0
policy_rc_made=0
extra_files=() # put into the packages' directories by the test, removed by it

# shellcheck disable=SC2317  # called through trap
cleanup() {
    local f
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        "${as_root[@]}" kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    for f in "${extra_files[@]}"; do "${as_root[@]}" rm -f "$f"; done
    if [[ $installed -eq 1 ]]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg -P atlas-dev atlas >/dev/null 2>&1 || true
    fi
    if [[ $policy_rc_made -eq 1 ]]; then "${as_root[@]}" rm -f "$POLICY_RC"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that cleanup runs on an interrupt too

show_log() { [[ -f $1 ]] && sed 's/^/     | /' "$1"; return 0; }

# start_atlasd CONF PORT LOG: runs the installed atlasd in the background (pid in $pid)
# and waits until 127.0.0.1:PORT accepts. Returns 1 (having reported why) otherwise.
start_atlasd() {
    local conf=$1 port=$2 log=$3 deadline rc
    "${as_root[@]}" /usr/sbin/atlasd -c "$conf" </dev/null >"$log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + start_deadline))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            ok "atlasd -c $conf accepts on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "atlasd -c $conf not accepting on 127.0.0.1:$port after ${start_deadline}s"
    else
        rc=0
        wait "$pid" || rc=$?
        pid=""
        fail "atlasd -c $conf exited early (status $rc)"
    fi
    show_log "$log"
    return 1
}

# wait_for_line PATTERN FILE: polls (as root: the log directory is atlas's) until FILE
# has a line with PATTERN; false after log_deadline seconds.
wait_for_line() {
    local deadline=$((SECONDS + log_deadline))
    while ((SECONDS < deadline)); do
        if "${as_root[@]}" grep -q -- "$1" "$2" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# stop_atlasd LOG: SIGTERM, then wait for exit 0.
stop_atlasd() {
    local log=$1 deadline rc
    "${as_root[@]}" kill -TERM "$pid"
    deadline=$((SECONDS + stop_deadline))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        fail "atlasd still running ${stop_deadline}s after SIGTERM"
        show_log "$log"
        return 1
    fi
    rc=0
    wait "$pid" || rc=$?
    pid=""
    if [[ $rc -eq 0 ]]; then ok "SIGTERM: atlasd exits 0"; else
        fail "SIGTERM: atlasd exit status $rc"
        show_log "$log"
    fi
}

# --- 1. build -------------------------------------------------------------------
if ! "$root/tools/dev" package >"$tmp/package.log" 2>&1; then
    fail "tools/dev package:"
    tail -n 40 "$tmp/package.log" | sed 's/^/     | /'
    finish
fi
ok "tools/dev package builds the packages, lintian reports no error"
grep -E '^[EWIN]: ' "$tmp/package.log" | sed 's/^/     lintian| /' || true

version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
debs=("$root/build-deb/atlas_${version}_$arch.deb" "$root/build-deb/atlas-dev_${version}_$arch.deb")
for d in "${debs[@]}"; do
    if [[ ! -f $d ]]; then
        fail "no $d"
        finish
    fi
done

# --- 2. install -------------------------------------------------------------------
# Which of the packages' paths exist before they are installed (directories shared
# with the system, like /usr/sbin): those are not expected to go away on purge.
for d in "${debs[@]}"; do dpkg-deb -c "$d"; done | awk '{ p = $6; sub(/^\./, "", p); sub(/\/$/, "", p); if (p != "") print p }' |
    sort -u >"$tmp/paths"
while read -r p; do
    if [[ -e $p || -L $p ]]; then echo "$p"; fi
done <"$tmp/paths" >"$tmp/existed-before"

# The dependencies first (dpkg -i does not fetch them): the Depends fields' first
# alternatives, without versions; apt-get picks versions that satisfy them.
deps=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
    sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep -vxE 'atlas|atlas-dev|' | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086  # a word list of package names
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $deps \
    </dev/null >"$tmp/apt.log" 2>&1; then
    fail "apt-get install $deps:"
    show_log "$tmp/apt.log"
    finish
fi

# Where systemd runs, keep the package's postinst from starting the unit on :80 during
# the test (deb-systemd-invoke asks policy-rc.d); CI's container runs no systemd.
if [[ ! -e $POLICY_RC ]]; then
    # shellcheck disable=SC2016  # $1 is expanded by the inner sh
    "${as_root[@]}" sh -c 'printf "#!/bin/sh\n# temporary, from atlas tests/package: do not start daemons\nexit 101\n" >"$1" && chmod 755 "$1"' \
        sh "$POLICY_RC"
    policy_rc_made=1
fi
installed=1
if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" </dev/null >"$tmp/dpkg-i.log" 2>&1; then
    ok "dpkg -i atlas atlas-dev"
else
    fail "dpkg -i:"
    show_log "$tmp/dpkg-i.log"
    finish
fi
dpkg -L atlas atlas-dev | grep -vxF '/.' | sort -u >"$tmp/dpkg-L"

moduledir=/usr/lib/$triplet/atlas/modules
for f in /usr/sbin/atlasd "$moduledir/mod_static.so" "$moduledir/mod_proxy.so" "$moduledir/mod_tls.so" \
    "$moduledir/mod_tcp.so" "$moduledir/mod_headers.so" "$moduledir/mod_lb_round_robin.so" \
    /etc/atlas/atlas.toml /etc/atlas/conf.d /usr/share/atlas/www/index.html \
    /lib/systemd/system/atlas.service /usr/share/man/man8/atlasd.8.gz \
    /usr/include/atlas/module.h /usr/include/atlas/module.hpp "/usr/lib/$triplet/pkgconfig/atlas-module.pc"; do
    if grep -qxF "$f" "$tmp/dpkg-L" && [[ -e $f ]]; then ok "installed $f"; else fail "not installed: $f"; fi
done
if dpkg-query -W -f='${Conffiles}\n' atlas | grep -q '^ /etc/atlas/atlas.toml '; then
    ok "/etc/atlas/atlas.toml is a conffile"
else
    fail "/etc/atlas/atlas.toml is not a conffile"
fi
if getent passwd atlas >/dev/null && [[ $(stat -c %U /var/log/atlas 2>/dev/null) == atlas ]]; then
    ok "postinst made the atlas user and /var/log/atlas owned by it"
else
    fail "no atlas user, or /var/log/atlas missing or not owned by atlas"
fi

# --- 3. the installed atlasd on /etc/atlas as shipped --------------------------------
rc=0
"${as_root[@]}" /usr/sbin/atlasd -t -c /etc/atlas >"$tmp/t.out" 2>&1 </dev/null || rc=$?
if [[ $rc -eq 0 ]] && grep -qF "loaded from $moduledir" "$tmp/t.out"; then
    ok "atlasd -t -c /etc/atlas: $(cat "$tmp/t.out")"
else
    fail "atlasd -t -c /etc/atlas exit $rc (expected 0, modules from $moduledir):"
    show_log "$tmp/t.out"
fi

if start_atlasd /etc/atlas 80 "$tmp/atlasd.log"; then
    code=$(curl -s --max-time 10 -o "$tmp/index" -w '%{http_code}' http://127.0.0.1/ || true)
    if [[ $code == 200 ]] && cmp -s "$tmp/index" /usr/share/atlas/www/index.html; then
        ok "GET http://127.0.0.1/ -> 200, /usr/share/atlas/www/index.html"
    else
        fail "GET http://127.0.0.1/ -> '$code' (expected 200 and the packaged index.html)"
    fi
    code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:9901/metrics || true)
    if [[ $code == 200 ]]; then ok "admin API on 127.0.0.1:9901: GET /metrics -> 200"; else
        fail "admin API GET http://127.0.0.1:9901/metrics -> '$code'"
    fi
    if wait_for_line '"GET / HTTP/1.1" 200' /var/log/atlas/access.log; then
        ok "access log line in /var/log/atlas/access.log"
    else
        fail "no 'GET / ... 200' line in /var/log/atlas/access.log after ${log_deadline}s"
    fi
    # The pid file, and `atlasd -s` through it.
    named=$("${as_root[@]}" cat /run/atlas/atlasd.pid 2>/dev/null || true)
    if [[ -n $named && -d /proc/$named ]] && tr '\0' ' ' <"/proc/$named/cmdline" | grep -q '^/usr/sbin/atlasd '; then
        ok "/run/atlas/atlasd.pid names the running atlasd ($named)"
    else
        fail "/run/atlas/atlasd.pid holds '$named', not the running atlasd"
    fi
    if "${as_root[@]}" /usr/sbin/atlasd -s reload -c /etc/atlas >"$tmp/s.log" 2>&1; then
        if wait_for_line 'SIGHUP: Configuration hot-reloaded' "$tmp/atlasd.log"; then
            ok "atlasd -s reload -c /etc/atlas: reloaded"
        else
            fail "atlasd -s reload: no 'SIGHUP: Configuration hot-reloaded' in the log after ${log_deadline}s"
            show_log "$tmp/atlasd.log"
        fi
    else
        fail "atlasd -s reload -c /etc/atlas:"
        show_log "$tmp/s.log"
    fi
    stop_atlasd "$tmp/atlasd.log" || true
fi

# --- 4. a third-party module, built from the installed files only ---------------------
# A copy outside the source tree, with no PKG_CONFIG_PATH: only /usr's atlas-module.pc
# and /usr/include/atlas can be found.
cp -r "$root/tools/third-party-module" "$tmp/mod"
if got=$(env -u PKG_CONFIG_PATH pkg-config --variable=moduledir atlas-module) && [[ $got == "$moduledir" ]]; then
    ok "pkg-config --variable=moduledir atlas-module = $moduledir"
else
    fail "pkg-config --variable=moduledir atlas-module = '${got:-}' (expected $moduledir)"
fi
if env -u PKG_CONFIG_PATH make -C "$tmp/mod" >"$tmp/make.log" 2>&1 &&
    extra_files+=("$moduledir/mod_hello_header.so") &&
    "${as_root[@]}" env -u PKG_CONFIG_PATH make -C "$tmp/mod" install >>"$tmp/make.log" 2>&1; then
    ok "third-party module: make && make install (into $moduledir)"
else
    fail "third-party module does not build or install:"
    show_log "$tmp/make.log"
    finish
fi

port=$(free_port)
snippet=/etc/atlas/conf.d/hello.toml
extra_files+=("$snippet")
sed "s/127\.0\.0\.1:8081/127.0.0.1:$port/" "$tmp/mod/hello.toml" >"$tmp/hello.toml"
if ! grep -q "127.0.0.1:$port" "$tmp/hello.toml"; then
    fail "the example's hello.toml no longer listens on 127.0.0.1:8081 (the test moves that port)"
    finish
fi
"${as_root[@]}" install -m 0644 "$tmp/hello.toml" "$snippet"
if start_atlasd /etc/atlas "$port" "$tmp/atlasd-hello.log"; then
    curl -s --max-time 10 -D "$tmp/h-hello" -o /dev/null "http://127.0.0.1:$port/" || true
    if tr -d '\r' <"$tmp/h-hello" | grep -qix 'x-hello: world'; then
        ok "mod_hello_header: GET :$port/ has 'X-Hello: world'"
    else
        fail "mod_hello_header: no 'X-Hello: world' in the response head:"
        show_log "$tmp/h-hello"
    fi
    curl -s --max-time 10 -D "$tmp/h-default" -o /dev/null http://127.0.0.1/ || true
    if grep -q '^HTTP/1.1 200' "$tmp/h-default" && ! grep -qi '^x-hello:' "$tmp/h-default"; then
        ok "the default listener (no filter there) answers 200 without X-Hello"
    else
        fail "the default listener's response head:"
        show_log "$tmp/h-default"
    fi
    stop_atlasd "$tmp/atlasd-hello.log" || true
fi
"${as_root[@]}" rm -f "$snippet" "$moduledir/mod_hello_header.so"
extra_files=()

# --- 5. remove, purge, nothing left ----------------------------------------------------
if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg -r atlas-dev atlas </dev/null >"$tmp/dpkg-r.log" 2>&1; then
    ok "dpkg -r atlas-dev atlas"
else
    fail "dpkg -r:"
    show_log "$tmp/dpkg-r.log"
fi
if [[ ! -e /usr/sbin/atlasd && -f /etc/atlas/atlas.toml ]]; then
    ok "after dpkg -r: atlasd gone, the conffile /etc/atlas/atlas.toml kept"
else
    fail "after dpkg -r: /usr/sbin/atlasd $([[ -e /usr/sbin/atlasd ]] && echo present || echo gone), /etc/atlas/atlas.toml $([[ -f /etc/atlas/atlas.toml ]] && echo kept || echo gone)"
fi
if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg -P atlas-dev atlas </dev/null >"$tmp/dpkg-P.log" 2>&1; then
    ok "dpkg -P atlas-dev atlas"
    installed=0
else
    fail "dpkg -P:"
    show_log "$tmp/dpkg-P.log"
fi
left=()
while read -r p; do
    if [[ -e $p || -L $p ]] && ! grep -qxF "$p" "$tmp/existed-before"; then left+=("$p"); fi
done <"$tmp/dpkg-L"
for p in /var/log/atlas /etc/atlas /run/atlas; do
    if [[ -e $p ]]; then left+=("$p"); fi
done
if [[ ${#left[@]} -eq 0 ]]; then
    ok "after purge nothing is left of the $(wc -l <"$tmp/dpkg-L") paths dpkg -L listed (nor /var/log/atlas, /etc/atlas, /run/atlas)"
else
    fail "left behind after purge: ${left[*]}"
fi

finish
