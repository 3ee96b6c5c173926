// A plain HTTP/1.1 keep-alive upstream in a process of its own, for tests that kill a
// backend under load (SIGKILL resets every connection it holds) and start it again.
//
//   node http_peer.js NAME PORT
//       Listens on 127.0.0.1:PORT (0 = any free port) and prints {"port": N} once it does.
//       Every response carries X-Backend: NAME.
//         /status/S     status S, empty body
//         /health       200 "ok"
//         anything else 200 with body NAME
//       The file named by $HTTP_PEER_FAIL, when it exists and holds a status (e.g. "500"),
//       makes every request except /health answer that status: a test flips a live
//       backend into failing and back without restarting it.
'use strict';

const fs = require('fs');
const http = require('http');

const [name, portText] = process.argv.slice(2);
const failFile = process.env.HTTP_PEER_FAIL || '';

function forcedStatus() {
    if (!failFile) return 0;
    try {
        return parseInt(fs.readFileSync(failFile, 'utf8'), 10) || 0;
    } catch (e) {
        return 0;
    }
}

const server = http.createServer((req, res) => {
    req.resume();  // read and drop any body
    req.on('end', () => {
        res.setHeader('X-Backend', name);
        const m = /^\/status\/(\d{3})$/.exec(req.url);
        const forced = req.url === '/health' ? 0 : forcedStatus();
        if (forced) {
            res.writeHead(forced);
            res.end();
        } else if (m) {
            res.writeHead(parseInt(m[1], 10));
            res.end();
        } else if (req.url === '/health') {
            res.end('ok');
        } else {
            res.end(name);
        }
    });
});
server.keepAliveTimeout = 60000;
server.listen(parseInt(portText || '0', 10), '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
