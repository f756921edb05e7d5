// Prints the table of bench/compare.sh from its JSON lines: per scenario and figure, the median
// over rounds with min and max, for each server, and the ratio ours/reference of the medians.
//
// usage: node bench/summarize.js bench/results/RUN.jsonl
'use strict';

const fs = require('node:fs');

const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

// Figures per kind of scenario: [label, path in the JSON line, unit scale, decimals, no ratio].
// Shares of one core over the measured part: CPU used, and time ready to run but waiting for a CPU.
// They explain the other figures; a ratio of them means nothing.
const cpu = [['server CPU', 'server_cpu', 1, 2, true], ['server waiting for CPU', 'server_wait', 1, 2, true],
  ['generator CPU', 'bench_cpu', 1, 2, true], ['generator waiting for CPU', 'bench_wait', 1, 2, true]];
const figures = {
  echo: [['msgs/s', 'msgs_per_s'], ['RTT p50 µs', 'rtt_p50_us'], ['RTT p99 µs', 'rtt_p99_us'],
    ...cpu],
  fanout: [['deliveries/s', 'deliveries_per_s'], ['latency p50 ms', 'latency_p50_us', 1e-3, 1],
    ['latency p99 ms', 'latency_p99_us', 1e-3, 1], ...cpu],
  storm: [['tables complete s', 'complete_s', 1, 2], ['all linked s', 'linked_s', 1, 2],
    ['peak RSS MiB', 'rss_peak_kib', 1 / 1024, 1], ['RSS/conn KiB', 'rss_per_conn_kib', 1, 1],
    ...cpu],
  host: [['server poll ns/event', 'server_poll.ns_per_event', 1, 0], ['server poll events/s', 'server_poll.events_per_s'],
    ['client poll ns/event', 'client_poll.ns_per_event', 1, 0], ['client poll events/s', 'client_poll.events_per_s']],
};
const servers = ['c-relay', 'krmx-serve', 'reference'];
const hosts = ['c-host', 'rust-host'];

const get = (line, path) => path.split('.').reduce((v, k) => (v == null ? undefined : v[k]), line);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, decimals) => (decimals === undefined ? Math.round(x).toLocaleString('en-US') : x.toFixed(decimals));

const names = [...new Set(lines.filter((l) => !l.error).map((l) => l.name))];
const table = (columns, ratios) => {
  const header = ['scenario', 'figure', ...columns, ...ratios.map(([a]) => `${a}/ref`)];
  const rows = [header, header.map(() => '---')];
  for (const name of names) {
    const runs = lines.filter((l) => l.name === name && !l.error && columns.includes(l.server));
    if (runs.length === 0) continue;
    for (const [label, path, scale = 1, decimals, noRatio] of figures[runs[0].scenario]) {
      const medians = {};
      const cells = columns.map((server) => {
        const xs = runs.filter((l) => l.server === server).map((l) => get(l, path)).filter((x) => typeof x === 'number');
        if (xs.length === 0) return '–';
        medians[server] = median(xs) * scale;
        const range = xs.length > 1 ? ` (${fmt(Math.min(...xs) * scale, decimals)}–${fmt(Math.max(...xs) * scale, decimals)})` : '';
        return `${fmt(medians[server], decimals)}${range}`;
      });
      const ratioCells = ratios.map(([a]) => (!noRatio && medians[a] !== undefined && medians.reference ? (medians[a] / medians.reference).toFixed(2) : ''));
      rows.push([name, label, ...cells, ...ratioCells]);
    }
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
};

const rounds = Math.max(...lines.map((l) => l.round || 0));
console.log(`${rounds} round(s); median (min–max) over rounds; ratio = ours/reference of the medians.\n`);
console.log(table(servers, [['c-relay'], ['krmx-serve']]));
console.log('\nHost API cost (one thread draining already-queued events; no reference):\n');
console.log(table(hosts, []));
const errors = lines.filter((l) => l.error);
if (errors.length) {
  console.log('\nFailed runs:');
  for (const e of errors) console.log(`- round ${e.round} ${e.name} ${e.server || ''}: ${e.error}`);
}
