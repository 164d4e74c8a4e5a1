// What a Node.js process (libuv) sees: one line per check, in the format the e2e tests parse.
// Plain CommonJS, no dependencies. Usage: node probe.js CHECK...
//
//   file:PATH          file PATH: <first line> | file PATH: ERR <code>
//   env:NAME           env NAME: <value> | env NAME: MISSING
//   dns:NAME           dns NAME: <first IPv4 address> | dns NAME: ERR <code>   (dns.lookup = getaddrinfo)
//   tcp:HOST:PORT      tcp HOST:PORT: <echoed text> | tcp HOST:PORT: ERR <code>
//   udp:HOST:PORT      udp HOST:PORT: <echoed text> | udp HOST:PORT: ERR <code>
//   write:PATH=TEXT    write PATH: ok | write PATH: ERR <code>
//   hostname           hostname: <name>
//
// Every network operation gives up after 2 seconds.
'use strict';

const dgram = require('dgram');
const dns = require('dns');
const fs = require('fs');
const net = require('net');
const os = require('os');

const TIMEOUT_MS = 2000;
const ECHO_PAYLOAD = 'mirrord-e2e-ping';

function withTimeout(promise) {
  let timer;
  const expired = new Promise((resolve) => {
    timer = setTimeout(() => resolve('ERR timeout'), TIMEOUT_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function errorText(error) {
  return `ERR ${error.code || error.message}`;
}

function firstLine(path) {
  try {
    return fs.readFileSync(path, 'utf8').split('\n')[0];
  } catch (error) {
    return errorText(error);
  }
}

function resolve(name) {
  return withTimeout(
    dns.promises.lookup(name, { family: 4 }).then(
      (answer) => answer.address,
      (error) => errorText(error),
    ),
  );
}

function splitHostPort(target) {
  const colon = target.lastIndexOf(':');
  return [target.slice(0, colon), Number(target.slice(colon + 1))];
}

async function tcpEcho(target) {
  const [host, port] = splitHostPort(target);
  const address = await resolve(host);
  if (address.startsWith('ERR')) return address;
  let socket;
  const exchange = new Promise((resolveEcho) => {
    let received = '';
    socket = net.createConnection({ host: address, port }, () => socket.write(ECHO_PAYLOAD));
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      received += chunk;
      if (received.length >= ECHO_PAYLOAD.length) resolveEcho(received);
    });
    socket.on('end', () => resolveEcho(received || 'ERR closed'));
    socket.on('error', (error) => resolveEcho(errorText(error)));
  });
  const outcome = await withTimeout(exchange);
  socket.destroy();
  return outcome;
}

async function udpEcho(target) {
  const [host, port] = splitHostPort(target);
  const address = await resolve(host);
  if (address.startsWith('ERR')) return address;
  const socket = dgram.createSocket('udp4');
  const exchange = new Promise((resolveEcho) => {
    socket.on('message', (message) => resolveEcho(message.toString('utf8')));
    socket.on('error', (error) => resolveEcho(errorText(error)));
    socket.send(ECHO_PAYLOAD, port, address, (error) => {
      if (error) resolveEcho(errorText(error));
    });
  });
  const outcome = await withTimeout(exchange);
  socket.close();
  return outcome;
}

function writeFile(spec) {
  const equals = spec.indexOf('=');
  const path = spec.slice(0, equals);
  try {
    fs.writeFileSync(path, spec.slice(equals + 1));
    return [path, 'ok'];
  } catch (error) {
    return [path, errorText(error)];
  }
}

async function check(spec) {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const argument = colon < 0 ? '' : spec.slice(colon + 1);
  switch (kind) {
    case 'file':
      return `file ${argument}: ${firstLine(argument)}`;
    case 'env':
      return `env ${argument}: ${process.env[argument] ?? 'MISSING'}`;
    case 'dns':
      return `dns ${argument}: ${await resolve(argument)}`;
    case 'tcp':
      return `tcp ${argument}: ${await tcpEcho(argument)}`;
    case 'udp':
      return `udp ${argument}: ${await udpEcho(argument)}`;
    case 'write': {
      const [path, outcome] = writeFile(argument);
      return `write ${path}: ${outcome}`;
    }
    case 'hostname':
      return `hostname: ${os.hostname()}`;
    default:
      return `unknown check: ${spec}`;
  }
}

async function main() {
  for (const spec of process.argv.slice(2)) {
    process.stdout.write(`${await check(spec)}\n`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`probe.js failed: ${error.stack}\n`);
    process.exit(1);
  },
);
