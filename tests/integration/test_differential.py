"""Differential parser test (issue 9): one table of raw HTTP/1.1 requests is sent to
Atlas, to nginx and to HAProxy from Debian, and their accept/reject answers are compared.

All three run as reverse proxies in front of the same python backend (below), so
"accepted" means the same thing for each: the peer parsed the request, framed its body
and forwarded it (or answered it itself with a success, 404 or 405). A proxy also has to
read the whole body before the backend can answer, so chunked-body errors show up as
rejections instead of going unnoticed behind a static handler that never reads the body.

Every request goes on a fresh connection, all probes run concurrently, and each answer is
put in one class:

  accept   a final response with status < 400, 404 or 405, any response the backend
           produced (it carries X-Backend: the peer forwarded the request), or an HTTP/0.9
           reply (bytes that are not an HTTP/1.x status line, then the close)
  reject   the peer's own 400, 411, 413, 414, 417, 431, 501 or 505, or the connection
           closed with no response at all
  waits    no response within the read deadline: the peer waits for more bytes
  other    any other response (say a 502): never expected, so it is always reported

A row where nginx's or HAProxy's class differs from Atlas's is a disagreement. Every one
must be listed in EXPECTED_DISAGREEMENTS with a justification citing RFC 9112 / 9110 of
why Atlas's answer is the right one; a listed disagreement that no longer happens fails
the test too, so the list stays honest. The full table is printed on failure, with
`python3 -m unittest -v test_differential` (from this folder), or written to the file
named by ATLAS_DIFF_TABLE.

nginx and HAProxy are not optional: `tools/dev test` installs them (Debian packages nginx
and haproxy), and the test fails, naming the package, when one is missing.
"""

import concurrent.futures
import http.server
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import Atlas, can_connect, free_port, tail

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
PEERS = ("atlas", "nginx", "haproxy")

READ_DEADLINE = 3.0      # seconds a probe waits for a response before calling it "waits"
RECHECK_DEADLINE = 8.0   # a "waits" is probed once more, alone, with this longer deadline
READY_TIMEOUT = 15.0     # seconds for a peer to listen
PROBES_AT_ONCE = 12

REJECT_STATUSES = {400, 411, 413, 414, 417, 422, 431, 501, 505}  # 422: HAProxy's answer to a transfer-coding it will not forward
ACCEPT_STATUSES = {404, 405}  # parsed and routed; any status < 400 is an accept too


# --------------------------------------------------------------------------- the table


def req(line, *fields, body=b""):
    """A request head from its request line and field lines (CRLF added to each), plus
    the final CRLF and `body`."""
    def b(x):
        return x.encode("latin-1") if isinstance(x, str) else x
    out = b(line) + b"\r\n"
    for f in fields:
        out += b(f) + b"\r\n"
    return out + b"\r\n" + b(body)


H = "Host: x"
G = "GET / HTTP/1.1"
P = "POST / HTTP/1.1"
TE = "Transfer-Encoding: chunked"
CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"


def many_fields(n):
    return ["X-F%d: v" % i for i in range(n)]


# (name, request bytes). Names are unique and stable: EXPECTED_DISAGREEMENTS refers to them.
ROWS = [
    # --- valid baselines ---------------------------------------------------------------
    ("GET baseline", req(G, H)),
    ("HEAD baseline", req("HEAD / HTTP/1.1", H)),
    ("POST with Content-Length", req(P, H, "Content-Length: 5", body=b"hello")),
    ("POST chunked", req(P, H, TE, body=CHUNKED_HELLO)),
    ("PUT with Content-Length: 0", req("PUT / HTTP/1.1", H, "Content-Length: 0")),
    ("DELETE", req("DELETE /a HTTP/1.1", H)),
    ("query string", req("GET /a?b=c&d=e HTTP/1.1", H)),
    ("pct-encoded path", req("GET /%41%20b HTTP/1.1", H)),
    ("visible ASCII in target", req("GET /a{b}|c^ HTTP/1.1", H)),
    ("HTTP/1.0 without Host", req("GET / HTTP/1.0")),
    ("HTTP/1.0 with Host", req("GET / HTTP/1.0", H)),
    ("OPTIONS asterisk-form", req("OPTIONS * HTTP/1.1", H)),
    ("absolute-form", req("GET http://x/a HTTP/1.1", H)),
    ("absolute-form differing Host", req("GET http://a/ HTTP/1.1", "Host: b")),
    ("unknown method", req("FOO / HTTP/1.1", H)),
    ("Host with port", req(G, "Host: x:8080")),
    ("Host IPv6 literal", req(G, "Host: [::1]:8080")),
    ("underscore in field name", req(G, H, "X_A: b")),
    ("tab in field value", req(G, H, "X-A: a\tb")),
    ("obs-text in field value", req(G, H, b"X-A: caf\xe9 \xff")),
    ("empty field value", req(G, H, "X-A:")),
    ("field value 6000 bytes", req(G, H, "X-Long: " + "a" * 6000)),
    ("one leading CRLF", b"\r\n" + req(G, H)),
    # --- request-line shapes ------------------------------------------------------------
    ("two spaces after method", req("GET  / HTTP/1.1", H)),
    ("two spaces before version", req("GET /  HTTP/1.1", H)),
    ("space after version", req("GET / HTTP/1.1 ", H)),
    ("tab as separator", req("GET\t/\tHTTP/1.1", H)),
    ("leading space", req(" GET / HTTP/1.1", H)),
    ("lowercase method", req("get / HTTP/1.1", H)),
    ("token char ! in method", req("G!T / HTTP/1.1", H)),
    ("non-token char in method", req("G(T / HTTP/1.1", H)),
    ("space inside target", req("GET /a b HTTP/1.1", H)),
    ("DEL in target", req(b"GET /a\x7f HTTP/1.1", H)),
    ("high byte in target", req(b"GET /\xff HTTP/1.1", H)),
    ("fragment in target", req("GET /a#b HTTP/1.1", H)),
    ("absolute-form https", req("GET https://x/ HTTP/1.1", H)),
    ("absolute-form with userinfo", req("GET http://u@x/ HTTP/1.1", H)),
    ("asterisk-form with GET", req("GET * HTTP/1.1", H)),
    ("authority-form with GET", req("GET x:80 HTTP/1.1", H)),
    ("CONNECT authority-form", req("CONNECT x:443 HTTP/1.1", "Host: x:443")),
    ("HTTP/1.2", req("GET / HTTP/1.2", H)),
    ("HTTP/2.0", req("GET / HTTP/2.0", H)),
    ("HTTP/1.10", req("GET / HTTP/1.10", H)),
    ("HTTP/1", req("GET / HTTP/1", H)),
    ("lowercase http/1.1", req("GET / http/1.1", H)),
    ("missing version (HTTP/0.9)", b"GET /\r\n"),
    ("request line 10000 bytes", req("GET /" + "a" * 10000 + " HTTP/1.1", H)),
    ("two leading CRLFs", b"\r\n\r\n" + req(G, H)),
    ("leading bare LF", b"\n" + req(G, H)),
    # --- field syntax -------------------------------------------------------------------
    ("space before colon (Host)", req(G, "Host : x")),
    ("space before colon (other)", req(G, H, "X-A : b")),
    ("empty field name", req(G, H, ": v")),
    ("non-token char in field name", req(G, H, "Bad[Name]: v")),
    ("field line without colon", req(G, H, "NoColonHere")),
    ("obs-fold", req(G, H, "X-A: a", " b")),
    ("whitespace before first field", req(G, " X-A: a", H)),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("bare LF ending one field", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"),
    ("bare CR in field value", req(G, H, "X-A: a\rb")),
    ("NUL in field value", req(G, H, "X-A: a\x00b")),
    ("CTL 0x01 in field value", req(G, H, "X-A: a\x01b")),
    ("DEL in field value", req(G, H, "X-A: a\x7fb")),
    ("field value 12000 bytes", req(G, H, "X-Long: " + "a" * 12000)),
    ("field value 40000 bytes", req(G, H, "X-Long: " + "a" * 40000)),
    ("120 fields", req(G, H, *many_fields(120))),
    # --- Host ---------------------------------------------------------------------------
    ("missing Host in HTTP/1.1", req(G, "Accept: */*")),
    ("duplicate Host identical", req(G, H, H)),
    ("duplicate Host differing", req(G, "Host: a", "Host: b")),
    ("empty Host", req(G, "Host:")),
    ("Host with space", req(G, "Host: a b")),
    ("Host with slash", req(G, "Host: a/b")),
    ("Host with userinfo", req(G, "Host: u@x")),
    ("Host with bad port", req(G, "Host: x:abc")),
    # --- Content-Length -----------------------------------------------------------------
    ("CL + TE", req(P, H, "Content-Length: 5", TE, body=CHUNKED_HELLO)),
    ("TE + CL", req(P, H, TE, "Content-Length: 5", body=CHUNKED_HELLO)),
    ("duplicate CL identical", req(P, H, "Content-Length: 5", "Content-Length: 5", body=b"hello")),
    ("duplicate CL differing", req(P, H, "Content-Length: 5", "Content-Length: 6", body=b"hello!")),
    ("CL list 5, 5", req(P, H, "Content-Length: 5, 5", body=b"hello")),
    ("CL list 5, 6", req(P, H, "Content-Length: 5, 6", body=b"hello!")),
    ("CL with plus sign", req(P, H, "Content-Length: +5", body=b"hello")),
    ("CL negative", req(P, H, "Content-Length: -5", body=b"hello")),
    ("CL with inner space", req(P, H, "Content-Length: 5 0", body=b"hello")),
    ("CL hex", req(P, H, "Content-Length: 0x5", body=b"hello")),
    ("CL leading zeros", req(P, H, "Content-Length: 005", body=b"hello")),
    ("CL empty", req(P, H, "Content-Length:", body=b"hello")),
    ("CL huge", req(P, H, "Content-Length: 99999999999999999999999", body=b"hello")),
    ("body shorter than CL", req(P, H, "Content-Length: 10", body=b"hello")),
    # --- Transfer-Encoding --------------------------------------------------------------
    ("TE chunked uppercase", req(P, H, "Transfer-Encoding: CHUNKED", body=CHUNKED_HELLO)),
    ("TE gzip, chunked", req(P, H, "Transfer-Encoding: gzip, chunked", body=CHUNKED_HELLO)),
    ("TE chunked, gzip", req(P, H, "Transfer-Encoding: chunked, gzip", body=CHUNKED_HELLO)),
    ("TE chunked, chunked", req(P, H, "Transfer-Encoding: chunked, chunked", body=CHUNKED_HELLO)),
    ("TE chunked in two fields", req(P, H, TE, TE, body=CHUNKED_HELLO)),
    ("TE in HTTP/1.0", req("POST / HTTP/1.0", H, TE, body=CHUNKED_HELLO)),
    ("TE identity", req(P, H, "Transfer-Encoding: identity", body=CHUNKED_HELLO)),
    ("TE unknown coding", req(P, H, "Transfer-Encoding: foo", body=CHUNKED_HELLO)),
    ("TE xchunked", req(P, H, "Transfer-Encoding: xchunked", body=CHUNKED_HELLO)),
    ("TE empty", req(P, H, "Transfer-Encoding:", body=CHUNKED_HELLO)),
    # --- chunked body -------------------------------------------------------------------
    ("chunk size with 0x prefix", req(P, H, TE, body=b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk size negative", req(P, H, TE, body=b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk size overflow", req(P, H, TE, body=b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
    ("chunk size zero-padded 20 digits", req(P, H, TE, body=b"00000000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk size uppercase hex", req(P, H, TE, body=b"A\r\nhellohello\r\n0\r\n\r\n")),
    ("chunk size then space", req(P, H, TE, body=b"5 \r\nhello\r\n0\r\n\r\n")),
    ("chunk extension token", req(P, H, TE, body=b"5;name=value\r\nhello\r\n0\r\n\r\n")),
    ("chunk extension quoted", req(P, H, TE, body=b'5;a="b c"\r\nhello\r\n0\r\n\r\n')),
    ("chunk extension with BWS", req(P, H, TE, body=b"5 ; a = b\r\nhello\r\n0\r\n\r\n")),
    ("chunk extension CTL", req(P, H, TE, body=b"5;a=\x01\r\nhello\r\n0\r\n\r\n")),
    ("chunk extension bare LF", req(P, H, TE, body=b"5;a\nhello\r\n0\r\n\r\n")),
    ("chunk data without CRLF", req(P, H, TE, body=b"5\r\nhelloXX\r\n0\r\n\r\n")),
    ("bare LF after chunk size", req(P, H, TE, body=b"5\nhello\r\n0\r\n\r\n")),
    ("bare LF after chunk data", req(P, H, TE, body=b"5\r\nhello\n0\r\n\r\n")),
    ("trailer field", req(P, H, TE, body=b"5\r\nhello\r\n0\r\nX-T: v\r\n\r\n")),
    ("trailer obs-fold", req(P, H, TE, body=b"5\r\nhello\r\n0\r\nX-T: v\r\n w\r\n\r\n")),
    ("trailer without colon", req(P, H, TE, body=b"5\r\nhello\r\n0\r\nX-T\r\n\r\n")),
    ("chunked without last chunk", req(P, H, TE, body=b"5\r\nhello\r\n")),
    # --- Expect -------------------------------------------------------------------------
    ("Expect 100-continue", req(P, H, "Expect: 100-continue", "Content-Length: 5", body=b"hello")),
    ("Expect 100-Continue mixed case", req(P, H, "Expect: 100-Continue", "Content-Length: 5", body=b"hello")),
    ("Expect 100-continue in HTTP/1.0", req("POST / HTTP/1.0", H, "Expect: 100-continue",
                                            "Content-Length: 5", body=b"hello")),
    ("Expect unknown", req(G, H, "Expect: foo")),
    # --- Connection and Upgrade ---------------------------------------------------------
    ("Connection close", req(G, H, "Connection: close")),
    ("Connection keep-alive in HTTP/1.0", req("GET / HTTP/1.0", H, "Connection: keep-alive")),
    ("Connection list with empty elements", req(G, H, "Connection: , close, ,keep-alive")),
    ("Connection not a token list", req(G, H, "Connection: a b")),
    ("Upgrade without Connection upgrade", req(G, H, "Upgrade: websocket")),
]


# Reasons shared by rows where both peers take the same lenient view.
LENIENT_SPACES = (
    "RFC 9112 3: request-line = method SP request-target SP HTTP-version, one SP each; a "
    "recipient MAY split on any whitespace instead, but the RFC warns that such lenience lets "
    "two recipients read one message differently (RFC 9112 11.2), and invalid request-lines "
    "SHOULD get 400. Atlas, an intermediary, takes the strict reading.")
BARE_LF = (
    "RFC 9112 2.2: CRLF ends the start-line and field lines; a recipient MAY also take a bare "
    "LF, not must. Atlas forwards to backends that may not, and a line-ending disagreement "
    "between hops is a request-smuggling shape (RFC 9112 11.2), so the message is refused.")
CTL_IN_VALUE = (
    "RFC 9110 5.5: field values with CTLs other than HTAB are invalid (only CR, LF and NUL "
    "must be rejected or replaced; others MAY be retained). Atlas rejects them all instead of "
    "forwarding invalid bytes to a backend.")
HOST_INVALID = (
    "RFC 9112 3.2: a server MUST answer 400 to a request whose Host field value is invalid "
    "(Host = uri-host [ \":\" port ], RFC 3986 reg-name/IP-literal and *DIGIT port).")
CHUNK_GRAMMAR = (
    "RFC 9112 7.1/7.1.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF, with BWS "
    "only before ';' or around '=' and chunk-ext-val a token or quoted-string; the bare-LF "
    "lenience of RFC 9112 2.2 covers the start-line and fields only. Chunk framing that "
    "hops read differently is request smuggling (RFC 9112 11.2): Atlas rejects any byte "
    "outside the grammar.")
TRAILER_FOLD = (
    "RFC 9112 7.1.2: trailer-section = *( field-line CRLF ), the field grammar of RFC "
    "9112 5, where obs-fold is rejected or replaced (RFC 9112 5.2); Atlas rejects it as "
    "in a head.")
EXPECT_417 = (
    "RFC 9110 10.1.1: a server that receives an expectation other than 100-continue MAY "
    "answer 417; Atlas does rather than forward an expectation nobody will meet.")
CONNECTION_TOKENS = (
    "RFC 9110 7.6.1: Connection = #connection-option, each a token, and a proxy MUST "
    "remove the fields it names before forwarding; \"a b\" names no fields, so the "
    "hop-by-hop set is unknown and Atlas refuses rather than guess.")

# Row name -> {peer: why Atlas's class is the right one}. Every disagreement between Atlas
# and a peer is listed here, and every entry must still occur.
EXPECTED_DISAGREEMENTS = {
    "OPTIONS asterisk-form": {
        "nginx": "RFC 9112 3.2.4: the asterisk-form is valid for OPTIONS, a request about the "
                 "server as a whole; Atlas answers it itself (200, RFC 9110 9.3.7), nginx does "
                 "not implement the form."},
    "absolute-form differing Host": {
        "haproxy": "RFC 9112 3.2.2: a server MUST accept the absolute-form and MUST ignore the "
                   "Host field when it gets one (a proxy replaces Host with the target's "
                   "authority), so a differing Host is not an error."},
    "two spaces after method": {"nginx": LENIENT_SPACES, "haproxy": LENIENT_SPACES},
    "two spaces before version": {"nginx": LENIENT_SPACES, "haproxy": LENIENT_SPACES},
    "space after version": {"nginx": LENIENT_SPACES},
    "tab as separator": {"haproxy": LENIENT_SPACES},
    "lowercase method": {
        "nginx": "RFC 9110 9.1 / RFC 9112 3.1: method = token, case-sensitive; \"get\" is a "
                 "valid method that is merely not GET, so a proxy forwards it and the origin "
                 "answers 501 if it does not know it (RFC 9110 9.1). nginx only takes "
                 "[A-Z_-] methods."},
    "token char ! in method": {
        "nginx": "RFC 9110 9.1 / 5.6.2: method = token and '!' is a tchar, so G!T is a valid "
                 "(unknown) method to forward. nginx only takes [A-Z_-] methods."},
    "high byte in target": {
        "nginx": "RFC 9112 3.2: the request-target is URI syntax (RFC 3986: ASCII only; other "
                 "octets are percent-encoded), and invalid request-lines SHOULD get 400 "
                 "(RFC 9112 3)."},
    "fragment in target": {
        "nginx": "RFC 9112 3.2.1: origin-form = absolute-path [ \"?\" query ]: no fragment, so "
                 "\"#\" makes the request-target invalid (400 per RFC 9112 3); nginx lets it through."},
    "absolute-form with userinfo": {
        "haproxy": "RFC 9110 4.2.4: a recipient of an http(s) URI from an untrusted source "
                   "SHOULD treat userinfo as an error (it is used to disguise the real host)."},
    "asterisk-form with GET": {
        "haproxy": "RFC 9112 3.2.4: the asterisk-form is only used for OPTIONS; with any other "
                   "method the request-target is invalid (400, RFC 9112 3)."},
    "CONNECT authority-form": {
        "nginx": "RFC 9112 3.2.3: authority-form is the valid target of CONNECT; Atlas parses "
                 "it and answers 405 because no route tunnels (RFC 9110 9.3.6), nginx "
                 "refuses the request line itself."},
    "HTTP/2.0": {
        "haproxy": "RFC 9110 2.5 / 15.6.6: a server that does not speak the message's major "
                   "version answers 505; an \"HTTP/2.0\" request line is not HTTP/1.1 "
                   "framing, so reading it as one is a guess."},
    "HTTP/1.10": {
        "nginx": "RFC 9112 2.3: HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT, one digit "
                 "each; \"1.10\" is not a version, the request-line is invalid (400, RFC 9112 3)."},
    "missing version (HTTP/0.9)": {
        "nginx": "RFC 9112 3: the request-line requires an HTTP-version; an HTTP/0.9 simple "
                 "request has no fields and no framing (RFC 9112 C.1), and answering it with a "
                 "bare body (as nginx does) is no longer HTTP/1.1. 400 per RFC 9112 3."},
    "request line 10000 bytes": {
        "haproxy": "RFC 9112 3 recommends supporting request-lines of at least 8000 octets, "
                   "and a server MUST answer 414 to a target longer than it wishes to parse "
                   "(RFC 9112 3, RFC 9110 15.5.15); Atlas's max_request_line is 8192 by "
                   "default (configurable), HAProxy's limit is its 16 KiB buffer."},
    "leading bare LF": {"nginx": BARE_LF, "haproxy": BARE_LF},
    "non-token char in field name": {
        "nginx": "RFC 9110 5.1: field-name = token; a field line outside the grammar makes the "
                 "message invalid and a server SHOULD answer 400 (RFC 9112 2.2). nginx drops "
                 "the line silently (ignore_invalid_headers), so it and the next hop no longer "
                 "see the same fields."},
    "field line without colon": {
        "nginx": "RFC 9112 5: field-line = field-name \":\" OWS field-value OWS; a line without "
                 "a colon is outside the grammar and SHOULD get 400 (RFC 9112 2.2). nginx drops "
                 "it silently."},
    "obs-fold": {
        "haproxy": "RFC 9112 5.2: a server MUST either reject obs-fold with 400 or replace it "
                   "with SP before interpreting or forwarding; Atlas takes the first choice, "
                   "HAProxy the second. Both are allowed; Atlas's is the one no downstream "
                   "parser can misread."},
    "bare LF line endings": {"nginx": BARE_LF, "haproxy": BARE_LF},
    "bare LF ending one field": {"nginx": BARE_LF, "haproxy": BARE_LF},
    "NUL in field value": {
        "haproxy": "RFC 9110 5.5: a recipient of NUL in a field value MUST either reject the "
                   "message or replace the NUL with SP before processing or forwarding it; "
                   "Atlas rejects."},
    "CTL 0x01 in field value": {"nginx": CTL_IN_VALUE, "haproxy": CTL_IN_VALUE},
    "DEL in field value": {"nginx": CTL_IN_VALUE, "haproxy": CTL_IN_VALUE},
    "field value 12000 bytes": {
        "nginx": "RFC 9110 5.4: field limits are the server's choice (an oversize field gets a "
                 "4xx). Atlas bounds the whole head (max_header_bytes, 16 KiB by default), "
                 "nginx each line (large_client_header_buffers, 8 KiB)."},
    "120 fields": {
        "nginx": "RFC 9110 5.4: a server that receives more fields than it wishes to process "
                 "MUST answer a 4xx; Atlas's max_headers (100 by default) gives 431. nginx has "
                 "no count limit and forwarded all 120."},
    "missing Host in HTTP/1.1": {
        "haproxy": "RFC 9112 3.2: a server MUST respond 400 to any HTTP/1.1 request that "
                   "lacks a Host header field."},
    "duplicate Host identical": {
        "haproxy": "RFC 9112 3.2: a server MUST respond 400 to any request with more than one "
                   "Host field line, identical or not."},
    "empty Host": {
        "haproxy": "RFC 9112 3.3: an empty Host leaves the target URI's authority to a "
                   "configured default name, which an Atlas proxy route does not have, and an "
                   "http URI with an empty host MUST be rejected as invalid by a recipient that "
                   "processes it (RFC 9110 4.2.1). nginx refuses it too."},
    "Host with space": {"haproxy": HOST_INVALID},
    "Host with slash": {"haproxy": HOST_INVALID},
    "Host with userinfo": {"nginx": HOST_INVALID, "haproxy": HOST_INVALID},
    "Host with bad port": {"nginx": HOST_INVALID, "haproxy": HOST_INVALID},
    "CL + TE": {
        "haproxy": "RFC 9112 6.1: a server MAY reject a request with both Content-Length and "
                   "Transfer-Encoding, or process it by Transfer-Encoding alone and close the "
                   "connection afterwards; it is the classic smuggling shape (RFC 9112 11.2), "
                   "so Atlas rejects it, as nginx does."},
    "TE + CL": {
        "haproxy": "RFC 9112 6.1: as for CL + TE, the order of the two fields does not matter; "
                   "a server MAY reject the request and Atlas does."},
    "duplicate CL identical": {
        "nginx": "RFC 9110 8.6: a recipient MAY accept repeated identical Content-Length "
                 "values as one (RFC 9112 6.3 only requires rejecting an invalid, e.g. "
                 "differing, value); the length is unambiguous, so Atlas accepts."},
    "CL list 5, 5": {
        "nginx": "RFC 9110 8.6: a Content-Length list of identical values MAY be replaced by "
                 "the single value; the length is unambiguous, so Atlas accepts (differing "
                 "values are rejected, see \"CL list 5, 6\")."},
    "TE in HTTP/1.0": {
        "haproxy": "RFC 9112 6.1: a server that receives an HTTP/1.0 message with "
                   "Transfer-Encoding MUST treat its framing as faulty; Atlas answers 400 and "
                   "closes instead of guessing a body length."},
    "chunk size then space": {"nginx": CHUNK_GRAMMAR, "haproxy": CHUNK_GRAMMAR},
    "chunk extension CTL": {"nginx": CHUNK_GRAMMAR, "haproxy": CHUNK_GRAMMAR},
    "chunk extension bare LF": {"nginx": CHUNK_GRAMMAR, "haproxy": CHUNK_GRAMMAR},
    "bare LF after chunk size": {"nginx": CHUNK_GRAMMAR, "haproxy": CHUNK_GRAMMAR},
    "bare LF after chunk data": {"nginx": CHUNK_GRAMMAR, "haproxy": CHUNK_GRAMMAR},
    "trailer obs-fold": {"nginx": TRAILER_FOLD, "haproxy": TRAILER_FOLD},
    "trailer without colon": {
        "nginx": "RFC 9112 7.1.2: trailer-section = *( field-line CRLF ) and a field-line "
                 "needs its colon (RFC 9112 5); nginx skips trailers unparsed."},
    "Expect unknown": {"nginx": EXPECT_417, "haproxy": EXPECT_417},
    "Connection not a token list": {"nginx": CONNECTION_TOKENS, "haproxy": CONNECTION_TOKENS},
}


# --------------------------------------------------------------------------- backend


class _AnyMethodHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request, whatever the method, after reading its body: 200 with
    X-Backend, so the client side can tell a forwarded request from the peer's own
    answer. Responses close the connection, so no peer reuses one we left dirty."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def end_headers(self):
        # Also on http.server's own error responses (say 431 for more than 100 fields):
        # the peer forwarded the request, which is what the test classifies.
        self.send_header("X-Backend", "diff")
        super().end_headers()

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(4096)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self.rfile.read(size)
                self.rfile.readline(4096)
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)

    def _answer(self):
        try:
            self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")
        self.close_connection = True


class _BackendServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


# --------------------------------------------------------------------------- peers


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
}}
"""

# option http-buffer-request: HAProxy waits for the whole body before it connects to
# the server, so a body framing error is answered (400) instead of cutting a forwarded
# request short.
HAPROXY_CFG = """\
global
    maxconn 512
defaults
    mode http
    option http-buffer-request
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 30s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s1 127.0.0.1:{backend}
"""

ATLAS_CONF = """\
[server]
workers = 1

[upstream.backend]
servers = ["127.0.0.1:{backend}"]

[[listener]]
name = "web"
listen = ["127.0.0.1:{{port}}"]

  [[listener.route]]
  path_prefix = "/"
  handler = {{ module = "proxy", upstream = "backend" }}
"""


class PeerError(AssertionError):
    pass


class Daemon:
    """One nginx or HAProxy in the foreground, started and stopped by PID."""

    def __init__(self, name, binary, package, make_argv, write_config):
        self.name, self.binary, self.package = name, binary, package
        self.make_argv, self.write_config = make_argv, write_config
        self.proc = None
        self.tmp = None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise PeerError("%s is missing (%s): install the Debian package %s "
                            "(`tools/dev test` does)" % (self.name, self.binary, self.package))
        attempt = 1
        while True:
            self.tmp = tempfile.mkdtemp(prefix="atlas-diff-%s-" % self.name)
            self.port = free_port()
            self.write_config(self.tmp, self.port)
            with open(os.path.join(self.tmp, "output.txt"), "wb") as log:
                self.proc = subprocess.Popen(self.make_argv(self.tmp), stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             cwd=self.tmp)
            deadline = time.monotonic() + READY_TIMEOUT
            while self.proc.poll() is None and not can_connect(self.port, timeout=0.5):
                if time.monotonic() > deadline:
                    text = self.output()
                    self.stop()
                    raise PeerError("%s did not listen on 127.0.0.1:%d within %.0fs\n%s"
                                    % (self.name, self.port, READY_TIMEOUT, text))
                time.sleep(0.05)
            if self.proc.poll() is None:
                return self
            text = self.output()
            self.stop()
            # The free port may have been taken in the meantime: two more tries with others.
            if "in use" not in text or attempt == 3:
                raise PeerError("%s exited with %s at start\n%s" % (self.name, self.proc.returncode, text))
            attempt += 1

    def output(self):
        parts = []
        for name in ("output.txt", "error.log"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    parts.append("--- %s %s ---\n%s" % (self.name, name,
                                                        tail(f.read().decode("utf-8", "replace"), 30)))
            except OSError:
                pass
        return "\n".join(parts)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        if self.tmp and os.environ.get("ATLAS_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


def nginx_daemon(backend_port):
    def write(tmp, port):
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=port, backend=backend_port))
    return Daemon("nginx", NGINX, "nginx",
                  lambda tmp: [NGINX, "-p", tmp, "-e", os.path.join(tmp, "error.log"),
                               "-c", os.path.join(tmp, "nginx.conf"),
                               "-g", "daemon off; master_process off;"],
                  write)


def haproxy_daemon(backend_port):
    def write(tmp, port):
        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write(HAPROXY_CFG.format(port=port, backend=backend_port))
    return Daemon("haproxy", HAPROXY, "haproxy",
                  lambda tmp: [HAPROXY, "-db", "-f", os.path.join(tmp, "haproxy.cfg")],
                  write)


# --------------------------------------------------------------------------- probing


class Answer:
    def __init__(self, cls, detail):
        self.cls = cls        # accept / reject / waits / other
        self.detail = detail  # the status, "closed", "0.9", ...

    def __str__(self):
        return "%s %s" % (self.cls, self.detail) if self.detail else self.cls


def classify_head(head):
    """Answer for one final response head (bytes up to the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return Answer("other", "bad status line %r" % lines[0][:40])
    from_backend = any(l.lower().startswith(b"x-backend:") for l in lines[1:])
    if from_backend or status < 400 or status in ACCEPT_STATUSES:
        return Answer("accept", str(status) + ("" if from_backend or status >= 400 else " (own)"))
    if status in REJECT_STATUSES:
        return Answer("reject", str(status))
    return Answer("other", str(status))


def probe(port, data, deadline_s):
    """Sends `data` on a fresh connection and classifies what comes back."""
    deadline = time.monotonic() + deadline_s
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the peer may answer and close before it has read everything
        buf = b""
        while True:
            if buf and not b"HTTP/".startswith(buf[:5]) and not buf.startswith(b"HTTP/"):
                return Answer("accept", "0.9")  # a bare body: an HTTP/0.9 reply
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head, buf = buf[:end], buf[end + 4:]
                if head[9:10] == b"1" and head[:5] == b"HTTP/":  # 1xx: the final one follows
                    continue
                return classify_head(head)
            left = deadline - time.monotonic()
            if left <= 0:
                return Answer("waits", "")
            s.settimeout(left)
            try:
                got = s.recv(65536)
            except socket.timeout:
                return Answer("waits", "")
            except ConnectionResetError:
                got = b""
            if not got:
                return Answer("reject", "closed" if not buf else "closed mid-response")
            buf += got


def run_table(ports):
    """{row name: {peer: Answer}} for every row and peer, probed concurrently."""
    results = {name: {} for name, _ in ROWS}
    jobs = [(name, data, peer) for name, data in ROWS for peer in PEERS]

    def one(job, deadline_s):
        name, data, peer = job
        return job, probe(ports[peer], data, deadline_s)

    with concurrent.futures.ThreadPoolExecutor(PROBES_AT_ONCE) as pool:
        for (name, _, peer), ans in pool.map(lambda j: one(j, READ_DEADLINE), jobs):
            results[name][peer] = ans
        # A busy machine (an ASan build, other tests) can be slow to answer: a "waits" is
        # only believed after a second, longer look.
        again = [j for j in jobs if results[j[0]][j[2]].cls == "waits"]
        for (name, _, peer), ans in pool.map(lambda j: one(j, RECHECK_DEADLINE), again):
            results[name][peer] = ans
    return results


def disagreements(results):
    """{row: {peer: (atlas answer, peer answer)}} where a peer's class differs."""
    out = {}
    for name, _ in ROWS:
        a = results[name]["atlas"]
        for peer in PEERS[1:]:
            if results[name][peer].cls != a.cls:
                out.setdefault(name, {})[peer] = (a, results[name][peer])
    return out


def format_table(results):
    width = max(len(name) for name, _ in ROWS)
    lines = ["%-*s  %-18s %-18s %-18s" % (width, "row", *PEERS)]
    for name, _ in ROWS:
        r = results[name]
        marks = [p for p in PEERS[1:] if r[p].cls != r["atlas"].cls]
        lines.append("%-*s  %-18s %-18s %-18s%s" % (width, name, r["atlas"], r["nginx"], r["haproxy"],
                                                   "  <- differs: " + ", ".join(marks) if marks else ""))
    diffs = disagreements(results)
    counts = {p: sum(1 for d in diffs.values() if p in d) for p in PEERS[1:]}
    lines.append("")
    lines.append("%d rows; all three agree on %d; disagreements: nginx %d, haproxy %d"
                 % (len(ROWS), len(ROWS) - len(diffs), counts["nginx"], counts["haproxy"]))
    lines.append("")
    lines.append("Disagreements and why Atlas's answer is the right one:")
    for name, _ in ROWS:
        for peer in PEERS[1:]:
            if peer in diffs.get(name, {}):
                a, p = diffs[name][peer]
                why = EXPECTED_DISAGREEMENTS.get(name, {}).get(peer, "NOT LISTED")
                lines.append("- %s / %s: atlas %s, %s %s. %s" % (name, peer, a, peer, p, why))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the test


class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.results = None
        backend = _BackendServer(("127.0.0.1", 0), _AnyMethodHandler)
        thread = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        bport = backend.server_address[1]
        nginx, haproxy = nginx_daemon(bport), haproxy_daemon(bport)
        try:
            nginx.start()
            haproxy.start()
            with Atlas(ATLAS_CONF.format(backend=bport)) as atlas:
                cls.results = run_table({"atlas": atlas.port, "nginx": nginx.port,
                                         "haproxy": haproxy.port})
                atlas.assert_alive()
            for d in (nginx, haproxy):
                if d.proc.poll() is not None:
                    raise PeerError("%s died during the test\n%s" % (d.name, d.output()))
        finally:
            haproxy.stop()
            nginx.stop()
            backend.shutdown()
            backend.server_close()
            thread.join(timeout=10)
        cls.table = format_table(cls.results)
        path = os.environ.get("ATLAS_DIFF_TABLE")
        if path:
            with open(path, "w") as f:
                f.write(cls.table + "\n")
        if "-v" in sys.argv or "--verbose" in sys.argv:
            sys.stderr.write("\n" + cls.table + "\n")

    def fail_with_table(self, msg):
        self.fail("%s\n\n%s" % (msg, self.table))

    def test_baselines_accepted_by_all(self):
        # The harness's own sanity: if these fail, a peer is misconfigured, not strict.
        bad = ["%s/%s: %s" % (name, p, self.results[name][p])
               for name in ("GET baseline", "POST with Content-Length", "POST chunked")
               for p in PEERS if self.results[name][p].cls != "accept"]
        if bad:
            self.fail_with_table("valid requests not accepted: " + "; ".join(bad))

    def test_every_disagreement_is_listed(self):
        diffs = disagreements(self.results)
        unlisted = ["%s / %s (atlas %s, %s %s)" % (name, peer, a, peer, p)
                    for name, by_peer in diffs.items() for peer, (a, p) in by_peer.items()
                    if peer not in EXPECTED_DISAGREEMENTS.get(name, {})]
        if unlisted:
            self.fail_with_table("disagreements not in EXPECTED_DISAGREEMENTS (fix Atlas, or "
                                 "justify them there citing RFC 9112/9110):\n  "
                                 + "\n  ".join(unlisted))

    def test_every_listed_disagreement_still_occurs(self):
        diffs = disagreements(self.results)
        stale = ["%s / %s" % (name, peer) for name, by_peer in EXPECTED_DISAGREEMENTS.items()
                 for peer in by_peer if peer not in diffs.get(name, {})]
        if stale:
            self.fail_with_table("listed disagreements that no longer occur (remove them):\n  "
                                 + "\n  ".join(stale))

    def test_expected_disagreements_are_well_formed(self):
        names = [name for name, _ in ROWS]
        self.assertEqual(len(names), len(set(names)), "row names must be unique")
        for name, by_peer in EXPECTED_DISAGREEMENTS.items():
            self.assertIn(name, names, "EXPECTED_DISAGREEMENTS names an unknown row")
            for peer, why in by_peer.items():
                self.assertIn(peer, PEERS[1:], "%s: unknown peer %r" % (name, peer))
                self.assertRegex(why, r"RFC 911[02] \d", "%s / %s: the reason must cite "
                                 "RFC 9112 or 9110 with a section" % (name, peer))


if __name__ == "__main__":
    unittest.main()
