/**
 * Runs the never-learned rule (src/train/no-learning.ts) and the collapse rule over every per-epoch validation
 * history recorded in bench/results/*.json, to check that the rule stays silent on the benches' healthy runs.
 * Seconds, no training. The recorded files hold the popularity baseline on the TEST users only, so it stands in
 * for the validation one (the trainers measure it on the validation users themselves); histories without a
 * recorded popularity are checked by rules 1, 2 and 4 alone. The recorded loss is the epoch's mean loss and the
 * loss of the first steps is not recorded: the first validation's loss stands in for it.
 *
 *   npx tsx bench/no-learning-history.ts [--metric ndcg@10] [--dir bench/results]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectCollapse } from '../src/train/collapse.ts';
import { detectNoLearning } from '../src/train/no-learning.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const metric = arg('metric', 'ndcg@10');
const dir = arg('dir', 'bench/results');

type Rec = Record<string, unknown>;
const num = (x: unknown): number | undefined => (typeof x === 'number' ? x : undefined);

/** The metric of one recorded epoch: flat (`ndcg@10`), nested (`val: {ndcg@10}`) or a bare `val` number. */
function valOf(e: Rec): number | undefined {
  if (num(e[metric]) !== undefined) return num(e[metric]);
  const v = e.val;
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object') return num((v as Rec)[metric]);
  return undefined;
}

/** The popularity value of the metric in the nearest enclosing object that records one (history excluded first). */
function popularityOf(stack: Rec[]): number | null {
  for (let i = stack.length - 1; i >= 0; i--) {
    const p = stack[i].popularity as Rec | undefined;
    if (!p || typeof p !== 'object') continue;
    const he = p.historyExcluded as Rec | undefined;
    const x = num(he?.[metric]) ?? num(p[metric]);
    if (x !== undefined) return x;
  }
  return null;
}

interface Row {
  file: string;
  path: string;
  n: number;
  first: number;
  best: number;
  popularity: number | null;
  collapsed: boolean;
  learned: boolean | null;
  reason: string | null;
}
const rows: Row[] = [];
for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
  let root: unknown;
  try {
    root = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  } catch {
    continue; // not JSON (a log kept under .json)
  }
  const walk = (x: unknown, path: string, stack: Rec[]) => {
    if (Array.isArray(x)) {
      if (x.length && x.every((e) => e && typeof e === 'object' && typeof (e as Rec).epoch === 'number') && x.some((e) => valOf(e as Rec) !== undefined)) {
        const hist = (x as Rec[]).filter((e) => valOf(e) !== undefined).map((e) => ({ epoch: e.epoch as number, loss: num(e.loss), val: valOf(e)! }));
        const popularity = popularityOf(stack);
        const collapse = detectCollapse(hist.map((h) => ({ ...h, loss: h.loss ?? NaN })), 3);
        const nl = detectNoLearning({ history: hist, baseline: popularity, collapsed: collapse.collapsed });
        rows.push({ file: f, path, n: hist.length, first: hist[0].val, best: Math.max(...hist.map((h) => h.val)), popularity, collapsed: collapse.collapsed, learned: nl.learned, reason: nl.reason });
        return;
      }
      x.forEach((e, i) => walk(e, `${path}[${i}]`, stack));
    } else if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x as Rec)) walk(v, `${path}.${k}`, [...stack, x as Rec]);
    }
  };
  walk(root, '', []);
}

const f4 = (x: number | null) => (x === null ? '-' : x.toFixed(4));
console.log(`| file | history | validations | first ${metric} | best | popularity (test) | best / popularity | collapse | learned |`);
console.log('|---|---|---:|---:|---:|---:|---:|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.file} | ${r.path} | ${r.n} | ${f4(r.first)} | ${f4(r.best)} | ${f4(r.popularity)} | ${r.popularity ? (r.best / r.popularity).toFixed(2) + '×' : '-'} | ${r.collapsed ? 'yes' : 'no'} | ${r.learned === false ? `NO (${r.reason})` : String(r.learned)} |`,
  );
}
const flagged = rows.filter((r) => r.learned === false);
const ratios = rows.filter((r) => r.popularity).map((r) => r.best / r.popularity!);
console.log(
  `\n${rows.length} histories, ${rows.filter((r) => r.popularity !== null).length} with a popularity baseline (lowest best/popularity ${ratios.length ? Math.min(...ratios).toFixed(2) : '-'}×), ${rows.filter((r) => r.collapsed).length} collapsed; flagged as not learned: ${flagged.length}` +
    (flagged.length ? ` (${flagged.map((r) => `${r.file} ${r.path}: ${r.reason}`).join('; ')})` : ''),
);
