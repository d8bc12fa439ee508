/**
 * The latency floor of this machine for the serving bench: an empty fastify route (a fixed 10-item answer, no
 * model, no search) in its own process, hit by the same load generator (autocannon, in this process) at 1, 16 and
 * 100 clients. Whatever /recommend measures in bench/serve.ts cannot beat these rows on the same machine.
 *   npm run bench:serve-floor [-- --duration 8]   → bench/results/serve-floor.json
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { mkdirSync } from 'node:fs';
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';
import { writeResultJson } from './result-paths.ts';

const i = process.argv.indexOf('--duration');
const DURATION = i > 0 ? Number(process.argv[i + 1]) : 8;
const SERVER = `
import Fastify from 'fastify';
const app = Fastify();
const answer = { items: [1,2,3,4,5,6,7,8,9,10].map((i) => ({ item: 'i' + i, score: 1 / i })), fallback: false };
app.post('/recommend', async () => answer);
await app.listen({ host: '127.0.0.1', port: 0 });
console.log(app.server.address().port);
`;

async function main(): Promise<void> {
  const p = spawn(process.execPath, ['--input-type=module', '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    p.stdout.once('data', (b: Buffer) => res(Number(String(b).trim())));
    p.once('exit', (c) => rej(new Error(`empty server exited with ${c}`)));
  });
  const rows = [];
  for (const connections of [1, 16, 100]) {
    const loadAverage1m = loadavg()[0];
    const lat: number[] = [];
    const inst = (autocannon as unknown as (o: autocannon.Options) => Promise<autocannon.Result> & EventEmitter)({
      url: `http://127.0.0.1:${port}/recommend`,
      connections,
      duration: DURATION,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'u1', k: 10 }),
    });
    inst.on('response', (_c: unknown, status: number, _b: number, ms: number) => status < 300 && lat.push(ms));
    const r = await inst;
    lat.sort((a, b) => a - b);
    const pct = (q: number) => lat[Math.min(lat.length - 1, Math.ceil((q / 100) * lat.length) - 1)];
    rows.push({ connections, requestsPerSec: r.requests.total / DURATION, p50ms: pct(50), p99ms: pct(99), maxMs: lat[lat.length - 1], loadAverage1m });
    console.log(`empty route, ${connections} clients: ${(r.requests.total / DURATION).toFixed(0)} req/s, p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms (load ${loadAverage1m.toFixed(1)})`);
  }
  p.kill();
  mkdirSync('bench/results', { recursive: true });
  const out = { date: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, durationSeconds: DURATION, what: 'empty fastify POST /recommend route in its own process; autocannon in the bench process, same machine', rows };
  writeResultJson('bench/results/serve-floor.json', out);
}

await main();
