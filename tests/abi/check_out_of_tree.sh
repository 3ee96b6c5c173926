#!/usr/bin/env bash
# Out-of-tree module test: build a pure-C module the way a third party would,
# from the pkg-config file alone, then load it into a real atlasd and talk to it.
#
# usage: check_out_of_tree.sh ATLASD BUILD_ROOT MOD_HELLO_C
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 ATLASD BUILD_ROOT MOD_HELLO_C" >&2
    exit 2
fi
atlasd=$(realpath "$1")
build=$(realpath "$2")
src=$(realpath "$3")

start_deadline=20 # seconds for atlasd to accept connections (sanitizer builds are slow)
stop_deadline=20  # seconds for atlasd to exit after SIGTERM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atlas-oot.XXXXXX")
pid=""
# shellcheck disable=SC2317  # called through trap
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
}
show_log() { [[ -f $tmp/atlasd.log ]] && sed 's/^/     | /' "$tmp/atlasd.log"; return 0; }
finish() {
    echo "$passed passed, $failed failed"
    if ((failed > 0)); then exit 1; fi
    exit 0
}

# --- 1. build it from pkg-config alone -------------------------------------
export PKG_CONFIG_PATH="$build/module-api${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if ! cflags=$(pkg-config --cflags atlas-module); then
    fail "pkg-config --cflags atlas-module (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
    finish
fi
moduledir=$(pkg-config --variable=moduledir atlas-module)
if [[ -n $moduledir ]]; then ok "pkg-config moduledir = $moduledir"; else fail "pkg-config --variable=moduledir is empty"; fi

# shellcheck disable=SC2086  # cflags is a word list
if ${CC:-cc} $cflags -std=c11 -pedantic -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
    -o "$tmp/mod_hello.so" "$src" 2>"$tmp/cc.log"; then
    ok "mod_hello.c builds with -std=c11 -pedantic -Wall -Wextra -Werror"
else
    fail "mod_hello.c does not build:"
    sed 's/^/     | /' "$tmp/cc.log"
    finish
fi

exports=$(nm -D --defined-only "$tmp/mod_hello.so" | awk '{print $3}' | tr '\n' ' ')
if [[ $exports == "atlas_module_entry " ]]; then
    ok "exports only atlas_module_entry"
else
    fail "exported symbols: $exports(expected only atlas_module_entry)"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# --- 2. a config error is reported through atlas_error_t, naming the key ------
mkdir -p "$tmp/bad"
cat >"$tmp/bad/atlas.toml" <<EOF
[server]
module_dir = "$tmp"
workers = 1
[[listener]]
name = "oot"
listen = ["127.0.0.1:$port"]
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "hello" }
EOF
rc=0
"$atlasd" -t -c "$tmp/bad" >"$tmp/bad.out" 2>"$tmp/bad.err" </dev/null || rc=$?
if [[ $rc -eq 1 ]] && grep -q 'greeting' "$tmp/bad.err"; then
    ok "missing greeting: atlasd -t exits 1 naming 'greeting'"
else
    fail "missing greeting: exit $rc, stderr:"
    sed 's/^/     | /' "$tmp/bad.err"
fi

# --- 3. load it and serve --------------------------------------------------
mkdir -p "$tmp/conf"
cat >"$tmp/conf/atlas.toml" <<EOF
[server]
module_dir = "$tmp"
workers = 1
[[listener]]
name = "oot"
listen = ["127.0.0.1:$port"]
  [[listener.route]]
  path_prefix = "/json"
  handler = { module = "hello", greeting = "unused here", echo = true }
  [[listener.route]]
  path_prefix = "/"
  handler = { module = "hello", greeting = "hi from C" }
EOF

rc=0
"$atlasd" -t -c "$tmp/conf" >"$tmp/t.out" 2>"$tmp/t.err" </dev/null || rc=$?
if [[ $rc -eq 0 ]]; then ok "atlasd -t accepts the config"; else
    fail "atlasd -t exit $rc:"
    sed 's/^/     | /' "$tmp/t.err"
fi

"$atlasd" -c "$tmp/conf" </dev/null >"$tmp/atlasd.log" 2>&1 &
pid=$!

ready=0
deadline=$((SECONDS + start_deadline))
while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.05
done
if [[ $ready -ne 1 ]]; then
    if kill -0 "$pid" 2>/dev/null; then
        fail "atlasd not accepting on 127.0.0.1:$port after ${start_deadline}s"
    else
        rc=0
        wait "$pid" || rc=$?
        pid=""
        fail "atlasd exited early (status $rc)"
    fi
    show_log
    finish
fi
ok "atlasd accepts connections on 127.0.0.1:$port"

# GET / -> 200, "hi from C\n", Content-Type: text/plain
code=$(curl -s --max-time 10 -D "$tmp/h1" -o "$tmp/b1" -w '%{http_code}' "http://127.0.0.1:$port/" || true)
if [[ $code == 200 ]]; then ok "GET / status 200"; else fail "GET / status '$code'"; fi
if printf 'hi from C\n' | cmp -s - "$tmp/b1"; then ok "GET / body 'hi from C\\n'"; else
    fail "GET / body: $(od -c "$tmp/b1" | head -3 | tr '\n' ' ')"
fi
if tr -d '\r' <"$tmp/h1" | grep -qix 'content-type: text/plain'; then
    ok "GET / Content-Type: text/plain"
else
    fail "GET / headers lack 'Content-Type: text/plain':"
    sed 's/^/     | /' "$tmp/h1"
fi

# GET /json/x -> the request's method and path as JSON, built by the module
want='{"method":"GET","path":"/json/x"}'
code=$(curl -s --max-time 10 -o "$tmp/b2" -w '%{http_code}' "http://127.0.0.1:$port/json/x" || true)
got=$(cat "$tmp/b2")
if [[ $code == 200 && $got == "$want" ]]; then ok "GET /json/x -> $want"; else
    fail "GET /json/x status '$code' body '$got' (expected 200 '$want')"
fi

# --- 4. SIGTERM: graceful stop, exit 0 ---------------------------------------
kill -TERM "$pid"
deadline=$((SECONDS + stop_deadline))
while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
    fail "atlasd still running ${stop_deadline}s after SIGTERM"
    show_log
else
    rc=0
    wait "$pid" || rc=$?
    pid=""
    if [[ $rc -eq 0 ]]; then ok "SIGTERM: atlasd exits 0"; else
        fail "SIGTERM: atlasd exit status $rc"
        show_log
    fi
fi

finish
