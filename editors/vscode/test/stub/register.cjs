// Preloaded by `npm test` (node --require): `require('vscode')` gets the stub in out/test/stub.
const Module = require('node:module');
const path = require('node:path');

const stub = path.join(__dirname, '../../out/test/stub/vscode.js');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === 'vscode' ? stub : resolve.call(this, request, ...rest);
};
