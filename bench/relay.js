// The reference relay for bench/compare.sh: the unmodified `@krmx/server` npm package, listening
// on 127.0.0.1:PORT, broadcasting every custom message to every linked user (its sender too).
// Prints `listening on port N` once; logs nothing else, so the process only relays.
//
// usage: node relay.js [PORT]      (default 8082; 0 picks a free port)
'use strict';

const http = require('node:http');
const { createServer } = require('@krmx/server');

const port = Number(process.argv[2] ?? 8082);
// The package's own listen(port) listens on every interface; the benchmark stays on loopback.
const httpServer = http.createServer();
httpServer.listen(port, '127.0.0.1', () => {
  const server = createServer({ http: { server: httpServer }, logger: () => {} });
  server.on('listen', (boundPort) => console.log(`listening on port ${boundPort}`));
  server.on('message', (username, message) => server.broadcast(message));
  server.listen().catch((e) => {
    console.error(`cannot start the krmx server: ${e.message}`);
    process.exit(1);
  });
});
