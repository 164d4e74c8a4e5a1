// Preloaded by `npm test` (node --require): `require('vscode')` gets the stub in out/test/stub.
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS preload: require is the only way in */
const Module = require('node:module');
const path = require('node:path');
/* eslint-enable @typescript-eslint/no-require-imports */

const stub = path.join(__dirname, '../../out/test/stub/vscode.js');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === 'vscode' ? stub : resolve.call(this, request, ...rest);
};
