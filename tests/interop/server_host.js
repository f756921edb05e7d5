// Hosts the unmodified `@krmx/server` npm package, for tests/interop_npm_server.rs.
//
// usage: node server_host.js [--port N] [--no-new-users] [--metadata]
//
// Listens on 127.0.0.1 (port N, or a free port when N is 0 or absent), with the package's
// defaults otherwise (`--no-new-users` sets `acceptNewUsers: false`, `--metadata` sets
// `metadata: true`: every message the server sends gets an extra top-level `metadata` field).
//
// Every line on stdout is one JSON object, in the order things happened:
//   {"event":"listen","port":N}                             listening (always the first line)
//   {"event":"authenticate","username":U,"isNewUser":B,"auth":A|null}   a link request
//   {"event":"join"|"link"|"unlink"|"leave","username":U}   the server's own events
//   {"event":"message","username":U,"message":M}            a custom message, as the server got it
//   {"event":"users","users":[{username,isLinked},...]}     the answer to the users command
//   {"event":"ok","cmd":C}                                  the answer to a command without events
//   {"event":"error","cmd":C,"error":TEXT}                  a command threw (or was not understood)
//   {"event":"log","severity":S,"text":T}                   the package logged a warning or error
//   {"event":"close"}                                       the server closed; the process exits 0
//
// Commands, one JSON object per line on stdin:
//   {"cmd":"send","username":U,"message":M}   server.send(U, M)
//   {"cmd":"broadcast","message":M,"skip":U}  server.broadcast(M, U); skip is optional
//   {"cmd":"join"|"kick"|"unlink","username":U}
//   {"cmd":"deny","username":U,"reason":R}    from now on, links to U are rejected with R by the
//                                             authenticate hook (R null: accepted again); answers ok
//   {"cmd":"users"}                           prints the users event
//   {"cmd":"close"}                           server.close(): every user leaves, then close
// When stdin ends, the process exits at once (so a test that dies leaves nothing running).
'use strict';

const http = require('node:http');
const readline = require('node:readline');
const { createServer } = require('@krmx/server');

// Writes to a pipe are synchronous on POSIX, so lines are never lost or reordered.
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const args = process.argv.slice(2);
let port = 0;
let acceptNewUsers = true;
let metadata = false;
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--port' && /^\d+$/.test(args[i + 1] ?? '')) {
    port = Number(args[i + 1]);
    i += 1;
  } else if (args[i] === '--no-new-users') {
    acceptNewUsers = false;
  } else if (args[i] === '--metadata') {
    metadata = true;
  } else {
    console.error('usage: node server_host.js [--port N] [--no-new-users] [--metadata]');
    process.exit(2);
  }
}

// The package's own listen(port) listens on every interface; the test only needs loopback, so the
// package gets an http server (its `http.server` prop) that already listens there.
const httpServer = http.createServer();
httpServer.once('error', (e) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${e.message}`);
  process.exit(1);
});
httpServer.listen(port, '127.0.0.1', () => {
  const denied = new Map();
  const server = createServer({
    http: { server: httpServer },
    acceptNewUsers,
    metadata,
    // Debug and info lines narrate every join and link; a warning or error means a peer did
    // something the server did not expect, so it is reported.
    logger: (severity, ...parts) => {
      if (severity === 'warn' || severity === 'error') {
        print({ event: 'log', severity, text: parts.map(String).join(' ') });
      }
    },
  });

  server.on('listen', (boundPort) => print({ event: 'listen', port: boundPort }));
  server.on('authenticate', (username, info, reject) => {
    print({ event: 'authenticate', username, isNewUser: info.isNewUser, auth: info.auth ?? null });
    if (denied.has(username)) {
      reject(denied.get(username));
    }
  });
  for (const event of ['join', 'link', 'unlink', 'leave']) {
    server.on(event, (username) => print({ event, username }));
  }
  server.on('message', (username, message) => print({ event: 'message', username, message }));
  server.on('close', () => {
    print({ event: 'close' });
    process.exit(0);
  });

  const commands = {
    send: (c) => server.send(c.username, c.message),
    broadcast: (c) => server.broadcast(c.message, c.skip),
    join: (c) => server.join(c.username),
    kick: (c) => server.kick(c.username),
    unlink: (c) => server.unlink(c.username),
    deny: (c) => {
      if (c.reason === null || c.reason === undefined) denied.delete(c.username);
      else denied.set(c.username, c.reason);
      print({ event: 'ok', cmd: 'deny' });
    },
    users: () => print({ event: 'users', users: server.getUsers() }),
    // close() throws inside its promise when the server is not listening.
    close: (c) => server.close().catch((e) => print({ event: 'error', cmd: c.cmd, error: e.message })),
  };

  const input = readline.createInterface({ input: process.stdin });
  input.on('line', (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch (e) {
      print({ event: 'error', cmd: null, error: `not JSON: ${line}` });
      return;
    }
    const run = command && Object.hasOwn(commands, command.cmd) ? commands[command.cmd] : undefined;
    if (!run) {
      print({ event: 'error', cmd: command && command.cmd, error: 'unknown command' });
      return;
    }
    try {
      run(command);
    } catch (e) {
      print({ event: 'error', cmd: command.cmd, error: e.message });
    }
  });
  input.on('close', () => process.exit(0));

  server.listen().catch((e) => {
    console.error(`cannot start the krmx server: ${e.message}`);
    process.exit(1);
  });
});
