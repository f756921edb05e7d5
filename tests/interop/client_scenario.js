// Drives the unmodified `@krmx/client` npm package against a Krmx server, for
// tests/interop_npm_client.rs.
//
// usage: node client_scenario.js PORT [main|auth]
//
// Every line on stdout is one JSON object:
//   {"client":C,"event":E,"args":[...]}  an event the client C emitted (via client.all)
//   {"client":C,"state":{status,username,users}}  what C reports about itself at that moment
//   {"client":C,"rejected":REASON}        a link() promise of C rejected with REASON
//   {"client":C,"log":SEVERITY,"text":T}  the client library logged something (never expected)
//   {"step":NAME}                         a request to the server host; the script then blocks
//                                         until one line {"ack":NAME} arrives on stdin
//   {"done":true} / {"error":TEXT}        the scenario finished / failed
//
// The script never sleeps: before every step it awaits each client event the previous actions
// must cause, so what every client has logged at each step is deterministic. The order in which
// lines of *different* clients interleave is not, which is why the Rust side compares each
// client's lines separately.
'use strict';

// Node 20 has no global WebSocket, and the client library uses `globalThis.WebSocket`.
globalThis.WebSocket = require('ws');
const { createClient } = require('@krmx/client');
const readline = require('node:readline');

const [port, scenario = 'main'] = process.argv.slice(2);
if (!/^\d+$/.test(port ?? '')) {
  console.error('usage: node client_scenario.js PORT [main|auth]');
  process.exit(2);
}
const url = `ws://127.0.0.1:${port}`;

// Writes to a pipe are synchronous on POSIX, so lines are never lost or reordered.
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

// --- the step handshake with the test on stdin -------------------------------------------------

const stdinLines = [];
const stdinWaiters = [];
let stdinClosed = false;
const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  const waiter = stdinWaiters.shift();
  if (waiter) waiter.resolve(line);
  else stdinLines.push(line);
});
input.on('close', () => {
  stdinClosed = true;
  stdinWaiters.splice(0).forEach((waiter) => waiter.reject(new Error('stdin closed')));
});

const nextStdinLine = () => new Promise((resolve, reject) => {
  if (stdinLines.length > 0) resolve(stdinLines.shift());
  else if (stdinClosed) reject(new Error('stdin closed'));
  else stdinWaiters.push({ resolve, reject });
});

/** Asks the test to do its part of step `name` and waits until it says it has. */
async function step(name) {
  print({ step: name });
  const line = await nextStdinLine();
  const ack = JSON.parse(line).ack;
  if (ack !== name) {
    throw new Error(`expected the ack of step ${name}, got ${line}`);
  }
}

// --- observed clients --------------------------------------------------------------------------

/** A client whose every event and log line is printed, tagged with `name`. */
function observedClient(name) {
  const client = createClient({
    // Debug lines are chatty implementation detail; anything above debug (e.g. "unexpected krmx
    // message") means the server sent something the client did not expect, so it is reported.
    logger: (severity, ...args) => {
      if (severity !== 'debug') print({ client: name, log: severity, text: args.map(String).join(' ') });
    },
  });
  client.all((event, ...args) => print({ client: name, event, args }));
  client.tag = name;
  return client;
}

function printState(client) {
  print({
    client: client.tag,
    state: { status: client.getStatus(), username: client.getUsername() ?? null, users: client.getUsers() },
  });
}

/**
 * Resolves once `client` emits `event` with a first argument matching `match`: a username, or for
 * 'message' a message type. Must be called before the action that causes the event.
 */
function until(client, event, match) {
  const matches = event === 'message' ? (message) => message.type === match : (username) => username === match;
  return client.waitFor(event, matches);
}

/** Links `client` as `username` (with `auth`), expecting a rejection, and prints its reason. */
async function linkRejected(client, username, auth, beforeAnswer = async () => {}) {
  const linking = client.link(username, auth);
  // Keep an early rejection from counting as unhandled while `beforeAnswer` runs.
  linking.catch(() => {});
  await beforeAnswer();
  try {
    await linking;
  } catch (e) {
    print({ client: client.tag, rejected: e.message });
    return;
  }
  throw new Error(`${client.tag} linking as ${username} was not rejected`);
}

/**
 * Links `client` as `username` and waits until every message of the link has arrived.
 * `link()` resolves on the first 'link' event, which for a client joining others is an earlier
 * user's, so the test also waits for the client's own link, which the server sends after all
 * users that joined before it, and for `others` to see the link.
 */
async function linkFully(client, username, others, auth, beforeAnswer = async () => {}) {
  const seen = [until(client, 'link', username), ...others.map((other) => until(other, 'link', username))];
  const linking = client.link(username, auth);
  await beforeAnswer();
  await linking;
  await Promise.all(seen);
}

// --- scenarios ---------------------------------------------------------------------------------

async function mainScenario() {
  const alice = observedClient('alice');
  const bob = observedClient('bob');
  const carol = observedClient('carol');
  for (const client of [alice, bob, carol]) {
    await client.connect(url);
    printState(client);
  }
  await step('connected');

  // The first user: its table is just itself.
  await linkFully(alice, 'alice', []);
  printState(alice);
  await step('alice-linked');

  // A second user: alice sees it join and link; bob receives the whole table.
  await linkFully(bob, 'bob', [alice]);
  printState(alice);
  printState(bob);
  await step('bob-linked');

  // Custom messages to the server, one at a time since two sockets are not ordered together.
  alice.send({ type: 'chat/say', payload: { text: 'héllo from alice ✓', n: 1, nested: [true, null, { x: 1.5 }] } });
  await step('alice-sent');
  bob.send({ type: 'ping' });
  await step('bob-sent');

  // The host broadcasts to all, broadcasts skipping bob, then sends to bob only.
  const received = [
    until(alice, 'message', 'news'),
    until(bob, 'message', 'news'),
    until(alice, 'message', 'whisper'),
    until(bob, 'message', 'direct'),
  ];
  await step('host-messages');
  await Promise.all(received);

  // Rejected links keep the connection open and change nothing for anyone; an unlinked connection
  // that goes away produces no server event.
  await linkRejected(carol, 'alice');
  await linkRejected(carol, '1nvalid');
  await linkRejected(carol, 'x');
  printState(carol);
  await carol.disconnect();
  printState(carol);
  await step('carol-rejected');

  // Unlink: bob is back to connected with an empty table; alice sees bob unlinked.
  const aliceSeesUnlink = until(alice, 'unlink', 'bob');
  await bob.unlink();
  await aliceSeesUnlink;
  printState(bob);
  printState(alice);
  await step('bob-unlinked');

  // Linking again as an existing user: no join anywhere, a full table for bob.
  await linkFully(bob, 'bob', [alice]);
  printState(bob);
  printState(alice);
  await step('bob-relinked');

  // Leave: alice sees unlink then leave; bob's socket gets its own unlinked, then its left.
  const leaveSeen = [until(alice, 'unlink', 'bob'), until(alice, 'leave', 'bob'), until(bob, 'leave', 'bob')];
  await bob.leave();
  await Promise.all(leaveSeen);
  printState(bob);
  printState(alice);
  await step('bob-left');

  // Disconnect: bob (no longer linked) plainly, alice (still linked) by force, which unlinks her.
  await bob.disconnect();
  printState(bob);
  await alice.disconnect(true);
  printState(alice);
  await step('disconnected');
}

async function authScenario() {
  const dave = observedClient('dave');
  await dave.connect(url);

  // Each attempt: the link request reaches the server, the test decides on stdin.
  await linkRejected(dave, 'dave', undefined, () => step('auth-without-token'));
  await linkRejected(dave, 'dave', 'wrong-token', () => step('auth-wrong-token'));
  await linkFully(dave, 'dave', [], 's3cret-token', () => step('auth-good-token'));
  printState(dave);
  await step('dave-linked');

  // An existing user is authenticated too, with isNewUser false.
  await dave.unlink();
  await linkFully(dave, 'dave', [], 's3cret-token', () => step('auth-existing-user'));
  printState(dave);
  await step('dave-relinked');

  await dave.disconnect(true);
  printState(dave);
  await step('disconnected');
}

const scenarios = { main: mainScenario, auth: authScenario };

(async () => {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  print({ done: true });
  input.close();
})().catch((e) => {
  print({ error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
