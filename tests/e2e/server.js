// A user's HTTP server for the incoming-traffic tests, run unchanged under `mirrord exec`:
// `node server.js PORT`. Prints `LISTENING {"address": [host, port]}` once it listens, then
// `REQUEST {...}` for every request (method, path, the x-mirrord-user header, the socket's remote and local
// address), and answers `local app: {same JSON}`.
'use strict';

const http = require('node:http');

const port = Number(process.argv[2]);
const server = http.createServer((request, response) => {
  const report = JSON.stringify({
    method: request.method,
    path: request.url,
    user: request.headers['x-mirrord-user'] ?? null,
    peer: [request.socket.remoteAddress, request.socket.remotePort],
    local: [request.socket.localAddress, request.socket.localPort],
  });
  process.stdout.write(`REQUEST ${report}\n`);
  const body = `local app: ${report}\n`;
  response.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
});
server.listen(port, '0.0.0.0', () => {
  const address = server.address();
  process.stdout.write(`LISTENING ${JSON.stringify({ address: [address.address, address.port] })}\n`);
});
