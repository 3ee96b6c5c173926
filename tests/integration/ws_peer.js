// WebSocket peers for test_websocket.py, on node's `ws` package (tests/integration/package.json).
//
//   node ws_peer.js server
//       An echo server on 127.0.0.1, port 0; prints {"port": N} once listening. Every message
//       comes back as it came (text as text, binary as binary). The text "close-from-server"
//       makes the server start the close handshake itself (code 4001, reason "server bye").
//       A plain request (no Upgrade) gets 426. Logs one JSON line per event on stdout.
//   node ws_peer.js client URL
//       Connects to URL, sends a short text, a 1 MiB text and a 1 MiB binary frame, checks
//       each echo byte for byte and in kind, then closes with 4000 "done" and waits for the
//       server's close frame. Prints one JSON line with what happened; exit status 0 when
//       everything matched.
//   node ws_peer.js client-server-close URL
//       Connects, asks the server to close, prints the close code and reason it saw.
'use strict';

const crypto = require('crypto');
const http = require('http');
const { WebSocket, WebSocketServer } = require('ws');

function out(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function server() {
    const httpServer = http.createServer((req, res) => {
        res.writeHead(426, { 'Content-Type': 'text/plain', 'Upgrade': 'websocket' });
        res.end('websocket only\n');
    });
    const wss = new WebSocketServer({ server: httpServer, maxPayload: 64 << 20 });
    wss.on('connection', (ws, req) => {
        out({ event: 'open', path: req.url, headers: req.headers });
        ws.on('message', (data, isBinary) => {
            if (!isBinary && data.toString() === 'close-from-server') {
                ws.close(4001, 'server bye');
                return;
            }
            ws.send(data, { binary: isBinary });
        });
        ws.on('close', (code, reason) => out({ event: 'close', code, reason: reason.toString() }));
    });
    httpServer.listen(0, '127.0.0.1', () => out({ port: httpServer.address().port }));
    process.on('SIGTERM', () => process.exit(0));
}

function sha(buf) {
    return crypto.createHash('sha256').update(buf).digest('hex');
}

function client(url) {
    const result = { opened: false, echoes: [], close: null, error: null };
    const ws = new WebSocket(url, { maxPayload: 64 << 20 });
    const sent = [
        { data: 'hello through atlas', binary: false },
        { data: crypto.randomBytes(1 << 19).toString('hex'), binary: false },  // 1 MiB of text
        { data: crypto.randomBytes(1 << 20), binary: true },
    ];
    let next = 0;
    const sendNext = () => {
        const m = sent[next];
        ws.send(m.data, { binary: m.binary });
    };
    ws.on('open', () => {
        result.opened = true;
        sendNext();
    });
    ws.on('message', (data, isBinary) => {
        const m = sent[next];
        const want = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data);
        result.echoes.push({ length: data.length, binary: isBinary, same: sha(data) === sha(want) && isBinary === m.binary });
        next += 1;
        if (next < sent.length) sendNext();
        else ws.close(4000, 'done');
    });
    ws.on('close', (code, reason) => {
        result.close = { code, reason: reason.toString() };
        const ok = result.opened && result.echoes.length === sent.length && result.echoes.every((e) => e.same) &&
            code === 4000 && result.close.reason === 'done';
        out(result);
        process.exit(ok ? 0 : 1);
    });
    ws.on('unexpected-response', (req, res) => {
        result.error = 'unexpected response ' + res.statusCode;
        out(result);
        process.exit(2);
    });
    ws.on('error', (e) => {
        result.error = String(e && e.message);
        out(result);
        process.exit(3);
    });
}

function clientServerClose(url) {
    const ws = new WebSocket(url);
    ws.on('open', () => ws.send('close-from-server'));
    ws.on('close', (code, reason) => {
        out({ code, reason: reason.toString() });
        process.exit(code === 4001 ? 0 : 1);
    });
    ws.on('error', (e) => {
        out({ error: String(e && e.message) });
        process.exit(3);
    });
}

const [mode, url] = process.argv.slice(2);
if (mode === 'server') server();
else if (mode === 'client') client(url);
else if (mode === 'client-server-close') clientServerClose(url);
else {
    process.stderr.write('usage: node ws_peer.js server | client URL | client-server-close URL\n');
    process.exit(64);
}
