/**
 * Mutation check of the core (`npm run mutants`): a fixed list of hand-written mutants — sign flips and no-ops
 * in every recipe module, the batch samplers, the evaluator's exclusion and early stopping — each applied to a
 * copy of the repository under the system temp directory (the working tree is never touched), then the test
 * files that cover the mutated file run one after the other until one fails. A mutant is
 *   killed    — a covering test failed (named in the table) or the run timed out;
 *   survived  — every covering test passed: a hole in the tests;
 *   stale     — its snippet is no longer in the file (the code moved on: update the list, nothing was run);
 *   ambiguous — the snippet occurs more than once (make it longer).
 * Prints a table and writes docs/mutants.md. Not part of `npm test` (a bench-like command: minutes on 2 cores).
 *
 *   npm run mutants                      # every mutant
 *   npm run mutants -- --only logq-sign,queue-emb-noop   # some, by id (docs/mutants.md is then left alone)
 *   npm run mutants -- --list            # the list, nothing run
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../src/util/atomic.ts';

interface Mutant {
  id: string;
  file: string;
  /** Exact source text, which must occur once in the file. */
  find: string;
  replace: string;
  what: string;
}

const STEP_TESTS = ['test/step-reference.test.ts', 'test/loss.test.ts'];
/** Test files covering each mutated file, cheapest and strongest first. */
const COVER: Record<string, string[]> = {
  'src/sampling/uniform.ts': [...STEP_TESTS, 'test/sampling.test.ts'],
  'src/sampling/popularity.ts': STEP_TESTS,
  'src/sampling/stratified.ts': STEP_TESTS,
  'src/sampling/in-batch.ts': STEP_TESTS,
  'src/sampling/frequency.ts': [...STEP_TESTS, 'test/sampling.test.ts'],
  'src/sampling/queue.ts': STEP_TESTS,
  'src/sampling/build.ts': [...STEP_TESTS, 'test/cf-training.test.ts'],
  'src/sampling/neighbourhood.ts': [...STEP_TESTS, 'test/neighbourhood-sampler.test.ts'],
  'src/graph/neighbour-sampler.ts': ['test/neighbourhood-sampler.test.ts', 'test/step-reference.test.ts'],
  'src/sampling/mined.ts': STEP_TESTS,
  'src/sampling/assembler.ts': STEP_TESTS,
  'src/sampling/logq.ts': STEP_TESTS,
  'src/train/contrastive-step.ts': [...STEP_TESTS, 'test/cf-training.test.ts'],
  'src/loss/debiased.ts': STEP_TESTS,
  'src/loss/masked-logits.ts': STEP_TESTS,
  'src/loss/loss-function.ts': STEP_TESTS,
  'src/compute/js.ts': [...STEP_TESTS, 'test/full-softmax-bf16.test.ts'],
  'src/train/step.ts': STEP_TESTS,
  'src/model/momentum.ts': STEP_TESTS,
  'src/sampling/batch-order/no-duplicates.ts': ['test/batch-sampler.test.ts'],
  'src/sampling/batch-order/rwr.ts': ['test/batch-sampler.test.ts'],
  'src/eval/ranking.ts': ['test/eval-metrics.test.ts', 'test/pipeline.test.ts'],
  'src/data/prepare.ts': ['test/pipeline.test.ts'],
  'src/train/experiment.ts': ['test/pipeline.test.ts'],
  'src/train/trainer.ts': ['test/pipeline.test.ts'],
  'src/train/loop.ts': ['test/pipeline.test.ts', 'test/seq-train.test.ts'],
};

const M = (id: string, file: string, find: string, replace: string, what: string): Mutant => ({ id, file, find, replace, what });
const NONE = 'return { ids: this.ids.subarray(0, 0), logq: this.logq, userKey: null, embeddings: null };';
const RET = 'return { ids: this.ids, logq: this.logq, userKey: null, embeddings: null };';

export const MUTANTS: Mutant[] = [
  // Sources: each one's draws (no-op) and its log expected count (sign / wrong formula).
  M('uniform-noop', 'src/sampling/uniform.ts', RET, NONE, 'uniform source draws nothing'),
  M('uniform-logq-sign', 'src/sampling/uniform.ts', 'Math.log(n / numItems)', 'Math.log(numItems / n)', 'uniform log expected count sign-flipped'),
  M('popularity-noop', 'src/sampling/popularity.ts', RET, NONE, 'popularity source draws nothing'),
  M('popularity-alpha', 'src/sampling/popularity.ts', 'Math.pow(itemCounts[j] + 1, alpha)', 'Math.pow(itemCounts[j] + 1, 1)', 'popularity ignores alpha'),
  M('popularity-logq-sign', 'src/sampling/popularity.ts', 'Math.log((n * w[j]) / total)', 'Math.log(total / (n * w[j]))', 'popularity log expected count sign-flipped'),
  M('stratified-noop', 'src/sampling/stratified.ts', RET, NONE, 'stratified source draws nothing'),
  M('stratified-logq', 'src/sampling/stratified.ts', 'Math.log(n / m.length)', 'Math.log(n)', 'stratified logq ignores the stratum size'),
  M('inbatch-logq-noop', 'src/sampling/in-batch.ts', 'this.freq.logExpectedCount(ids, batchSize, out);', 'out.fill(0, 0, ids.length);', 'in-batch adds no expected count to the mixture'),
  M('trainfreq-sign', 'src/sampling/frequency.ts', 'out[r] = lb + this.logp[items[r]];', 'out[r] = lb - this.logp[items[r]];', 'train-frequency log p sign-flipped'),
  M('streaming-noop', 'src/sampling/frequency.ts', '      this.A[h] = step;\n', '\n', 'streaming estimator never records a hit (stays at its prior)'),
  M('streaming-sign', 'src/sampling/frequency.ts', 'out[r] = -Math.log(this.B[this.slot(items[r])]);', 'out[r] = Math.log(this.B[this.slot(items[r])]);', 'streaming log Q sign-flipped'),
  M('queue-logq', 'src/sampling/queue.ts', 'this.freq.logExpectedCount(ids, this.size, out);', 'this.freq.logExpectedCount(ids, 1, out);', 'queue expected count ignores its size'),
  M('queue-emb-noop', 'src/sampling/queue.ts', 'this.emb.set(emb.subarray(r * d, r * d + d), h * d);', '', 'queue keeps zero embeddings'),
  M('queue-users', 'src/sampling/queue.ts', 'this.users[h] = users[r];', 'this.users[h] = -1;', 'queue forgets its users (same-user mask off)'),
  M('momentum-off', 'src/sampling/queue.ts', 'this.momentumCopy = this.momentum > 0 ? encoder.momentumItems(this.momentum) : null;', 'this.momentumCopy = null;', 'momentum ignored (queue embedded by the online tower)'),
  M('momentum-formula', 'src/model/momentum.ts', 'dst[o + j] = f * dst[o + j] + (1 - f) * src[o + j];', 'dst[o + j] = (1 - f) * dst[o + j] + f * src[o + j];', 'momentum EMA with m and 1−m swapped'),
  M('neighbourhood-noop', 'src/sampling/neighbourhood.ts', '      ids: this.ids,\n', '      ids: this.ids.subarray(0, 0),\n', 'neighbourhood source draws nothing'),
  M('neighbourhood-logq', 'src/sampling/neighbourhood.ts', 'this.sampler.logExpectedCounts(this.targets, this.n, ids, out);', 'out.fill(0, 0, ids.length);', 'neighbourhood expected count constant'),
  M('neighbourhood-temperature', 'src/graph/neighbour-sampler.ts', 'if (J <= h && J < cut) s += Math.exp(J * invT);', 'if (J <= h && J < cut) s += Math.exp(-J * invT);', 'GNNO weight exp(−J/τ) instead of exp(J/τ)'),
  M('neighbourhood-cap', 'src/graph/neighbour-sampler.ts', 'if (J <= h && J < cut)', 'if (J < cut)', 'GNNO hardness cap ignored'),
  M('mined-noop', 'src/sampling/mined.ts', 'w = this.take(g, n, ctx, w);', '', 'mined source draws nothing'),
  M('mined-fixed-logq', 'src/sampling/mined.ts', 'fixedLogQ: !this.rate', 'fixedLogQ: false', "mined columns get the mixture logQ under correction 'none'"),
  M('mined-frequency', 'src/sampling/mined.ts', 'Math.log(batchSize * r)', 'Math.log(r)', "mined 'frequency' expected count not per batch"),
  M('build-sametower', 'src/sampling/build.ts', 'sameTower = true;', 'sameTower = false;', 'same-tower source ignored'),
  // logQ: the mixture, the sign, the switch, mined columns' own logq.
  M('mixture-first-only', 'src/sampling/logq.ts', 'm + Math.log(Math.exp(a - m) + Math.exp(b - m))', 'a', 'logQ mixture keeps only the first source'),
  M('logq-sign', 'src/sampling/assembler.ts', 'colBias[j] = -cols.logq[j];', 'colBias[j] = cols.logq[j];', 'logQ added instead of subtracted'),
  M('logq-off', 'src/sampling/assembler.ts', 'this.withLogQ = recipe.corrections.logQ !== false;', 'this.withLogQ = false;', 'logQ correction never applied'),
  M('mined-logq-overwritten', 'src/sampling/logq.ts', 'for (const [at, lq, len] of fixed) out.set(lq.subarray(0, len), at);', '', 'mined columns keep the mixture logq'),
  // Masks.
  M('mask-same-item-off', 'src/sampling/assembler.ts', 'if (corr.maskSameItem) key.set(cols.ids);', 'if (corr.maskSameItem) key.fill(-1, 0, cols.N);', 'maskSameItem a no-op'),
  M('mask-same-user-off', 'src/sampling/assembler.ts', '} else if (corr.maskSameUser) {', '} else if (false) {', 'maskSameUser a no-op'),
  M('mask-block-off', 'src/sampling/assembler.ts', 'blockKey.fill(0, 0, B);', 'blockKey.fill(-1, 0, B);', 'without in-batch, other rows’ positives serve as negatives'),
  M('mask-own-query-off', 'src/sampling/assembler.ts', 'if (same) key.set(items, cols.N);', '', 'same-tower: the row’s own query is not masked'),
  // False-negative mask.
  M('fnmask-off', 'src/sampling/assembler.ts', 'fnMask: corr.fnMask ? { absThreshold: corr.fnMask.threshold, margin: corr.fnMask.margin } : null,', 'fnMask: null,', 'fnMask a no-op (user→item)'),
  M('fnmask-sign', 'src/compute/js.ts', 'if (raw > absT ||', 'if (raw < absT ||', 'fnMask threshold comparison flipped (JS kernel)'),
  M('fnmask-margin-off', 'src/loss/masked-logits.ts', '(margin !== Infinity && s > sPos - margin)', 'false', 'fnMask margin ignored (debiased path)'),
  // Debiased loss.
  M('debiased-off', 'src/loss/loss-function.ts', "if (recipe.loss.type === 'debiased') {", 'if (false) {', 'debiased loss replaced by InfoNCE'),
  M('debiased-sign', 'src/loss/debiased.ts', 'const raw = (S - tp * M * P) / (1 - tp);', 'const raw = (S + tp * M * P) / (1 - tp);', 'debiased correction added instead of subtracted'),
  M('debiased-grad', 'src/loss/debiased.ts', 'g[o + p] = wi * (-1 + (P - (tp * M * P) / (1 - tp)) / D);', 'g[o + p] = wi * (-1 + P / D);', 'debiased positive gradient misses the τ⁺ term'),
  // Symmetric loss.
  M('symmetric-sign', 'src/train/contrastive-step.ts', 'loss = 0.5 * (loss + this.loss(b, r));', 'loss = 0.5 * (loss - this.loss(b, r));', 'reverse term subtracted'),
  M('symmetric-dq', 'src/train/contrastive-step.ts', 'addInto(dq, dc2.subarray(0, B * d));', '', 'reverse gradient not added to the queries'),
  M('symmetric-ditem', 'src/train/contrastive-step.ts', 'addInto(dct.subarray(0, B * d), dPos);', '', 'reverse gradient not added to the positives'),
  M('symmetric-half', 'src/train/contrastive-step.ts', 'scaleInPlace(dq, 0.5);', '', 'symmetric query gradient not halved'),
  M('symmetric-user-mask', 'src/sampling/assembler.ts', '{ rowKey: users, colKey: userKey },', '', 'reverse direction: same-user columns not masked'),
  // Same-tower.
  M('sametower-grad', 'src/train/contrastive-step.ts', 'if (spec.sameTower) addInto(dq, dcAll.subarray(cols.N * d, (cols.N + B) * d));', '', 'same-tower column gradient dropped'),
  M('sametower-cols', 'src/sampling/assembler.ts', 'if (same) c.set(q.subarray(0, B * d), cols.N * d);', '', 'same-tower columns left empty'),
  M('sametower-symmetric-grad', 'src/train/contrastive-step.ts', 'if (spec.sameTower) addInto(dct.subarray(0, B * d), dc2.subarray(B * d, 2 * B * d));', '', 'symmetric same-tower item gradient dropped'),
  // Batch composition.
  M('noduplicates-off', 'src/sampling/batch-order/no-duplicates.ts', 'if (stamp[items[row]] === id) this.defer(row);', 'if (false) this.defer(row);', 'no-duplicates lets an item in twice'),
  M('rwr-walk-off', 'src/sampling/batch-order/rwr.ts', 'if (next >= 0) {', 'if (false) {', 'rwr walks never move (batches of random starts)'),
  M('rwr-restart-off', 'src/sampling/batch-order/rwr.ts', 'if (rng.next() < p) {', 'if (rng.next() < 0) {', 'rwr never restarts'),
  // Evaluation: exclusion of seen items, validation items in the test exclusion.
  M('eval-exclusion-off', 'src/eval/ranking.ts', 'if (stamp[j] !== epoch) scores[row + j] = -Infinity;', '', 'evaluator excludes nothing'),
  M('prepare-val-not-excluded', 'src/data/prepare.ts', 'seenWithVal: csrFromPairs(numUsers, both(trainUsers, valUsers), both(trainItems, valItems), true),', 'seenWithVal: csrFromPairs(numUsers, trainUsers, trainItems, true),', 'validation items not excluded from test rankings'),
  M('experiment-exclude-train-only', 'src/train/experiment.ts', 'test: prep.test, exclude: prep.seenWithVal, ks, itemPopularity', 'test: prep.test, exclude: prep.seen, ks, itemPopularity', 'test ranking excludes train items only'),
  // Early stopping.
  M('restore-off', 'src/train/loop.ts', 'if (best) task.restore(best);', '', 'best weights not restored'),
  M('snapshot-off', 'src/train/loop.ts', '        best = task.snapshot();\n', '\n', 'best weights never snapshotted'),
  // bf16 products of the full-catalogue softmax: the portable backend's rounding, and the recipe's precision on its way to the kernel.
  M('bf16-js-noop', 'src/compute/js.ts', "const bf16 = a.precision === 'bf16';", 'const bf16 = false;', 'portable bf16 softmax computes in fp32'),
  M('bf16-build-dropped', 'src/sampling/build.ts', "spec?.type === 'full-catalogue' ? spec.precision : 'fp32'", "'fp32'", "recipe's precision dropped by the sources builder"),
  M('bf16-step-dropped', 'src/train/contrastive-step.ts', "const precision = this.sources.fullCataloguePrecision ?? 'fp32';", "const precision = 'fp32' as const;", "step ignores the source's precision"),
  M('patience-off', 'src/train/loop.ts', 'if (cfg.patience > 0 && st.badEvals >= cfg.patience) stoppedEarly = true;', '', 'patience ignored (never stops early)'),
];

interface Outcome {
  m: Mutant;
  status: 'killed' | 'survived' | 'stale' | 'ambiguous';
  by: string;
  seconds: number;
}

function occurrences(text: string, s: string): number {
  let n = 0;
  for (let at = text.indexOf(s); at >= 0; at = text.indexOf(s, at + 1)) n++;
  return n;
}

/** Runs one test file in the copy; returns null when it passes, else the first failing test's name. */
function runTest(copy: string, file: string, timeoutS: number): string | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], {
    cwd: copy,
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return `${file} (timed out after ${timeoutS} s)`;
  if (r.status === 0) return null;
  const failed = (r.stdout ?? '').split('\n').find((l) => /^\s*not ok \d+ - /.test(l));
  const name = failed ? failed.replace(/^\s*not ok \d+ - /, '').replace(/ # .*$/, '') : `exit ${r.status ?? r.signal}`;
  return `${file}: ${name}`;
}

function main(): void {
  const args = process.argv.slice(2);
  const onlyArg = args.find((a) => a.startsWith('--only'));
  const only = onlyArg ? (onlyArg.includes('=') ? onlyArg.split('=')[1] : args[args.indexOf(onlyArg) + 1]).split(',') : null;
  const timeoutS = Number(process.env.MUTANT_TIMEOUT_S ?? 300);
  const root = resolve(import.meta.dirname, '..');
  const list = only ? MUTANTS.filter((m) => only.includes(m.id)) : MUTANTS;
  if (only && list.length !== only.length) {
    console.error(`unknown mutant id(s): ${only.filter((id) => !MUTANTS.some((m) => m.id === id)).join(', ')}`);
    process.exit(2);
  }
  if (args.includes('--list')) {
    for (const m of list) {
      const n = occurrences(readFileSync(join(root, m.file), 'utf8'), m.find);
      const state = n === 1 ? '' : n === 0 ? '  [STALE]' : `  [AMBIGUOUS: ${n}]`;
      console.log(`${m.id.padEnd(30)} ${m.file.padEnd(44)} ${m.what}${state}`);
    }
    return;
  }
  for (const m of list) if (!COVER[m.file]) throw new Error(`mutant ${m.id}: no covering tests listed for ${m.file}`);

  // A private copy: other processes may read the working tree while mutants are applied.
  const copy = mkdtempSync(join(tmpdir(), 'towerlab-mutants-'));
  const cleanup = () => rmSync(copy, { recursive: true, force: true });
  process.on('SIGINT', () => (cleanup(), process.exit(130)));
  process.on('SIGTERM', () => (cleanup(), process.exit(143)));
  try {
    const skip = new Set(['node_modules', 'build', '.git', 'runs', 'docs']);
    for (const e of readdirSync(root)) if (!skip.has(e)) cpSync(join(root, e), join(copy, e), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
    if (existsSync(join(root, 'build'))) symlinkSync(join(root, 'build'), join(copy, 'build'), 'dir');

    // The covering tests must pass unmutated, or a "kill" would mean nothing.
    const files = [...new Set(list.flatMap((m) => COVER[m.file]))];
    for (const f of files) {
      const fail = runTest(copy, f, timeoutS);
      if (fail) throw new Error(`baseline: ${fail} fails without any mutant; fix it first`);
      console.error(`baseline ok: ${f}`);
    }

    const outcomes: Outcome[] = [];
    for (const m of list) {
      const path = join(copy, m.file);
      const original = readFileSync(path, 'utf8');
      const n = occurrences(original, m.find);
      if (n !== 1) {
        outcomes.push({ m, status: n === 0 ? 'stale' : 'ambiguous', by: n === 0 ? 'snippet not found' : `${n} occurrences`, seconds: 0 });
        console.error(`${m.id}: ${n === 0 ? 'STALE' : 'AMBIGUOUS'}`);
        continue;
      }
      const t0 = performance.now();
      writeFileSync(path, original.replace(m.find, () => m.replace));
      let by: string | null = null;
      try {
        for (const f of COVER[m.file]) {
          by = runTest(copy, f, timeoutS);
          if (by) break;
        }
      } finally {
        writeFileSync(path, original);
      }
      const o: Outcome = { m, status: by ? 'killed' : 'survived', by: by ?? '', seconds: (performance.now() - t0) / 1000 };
      outcomes.push(o);
      console.error(`${m.id}: ${o.status.toUpperCase()} ${o.by} (${o.seconds.toFixed(0)} s)`);
    }
    const table = render(outcomes);
    console.log(table);
    if (!only) {
      mkdirSync(join(root, 'docs'), { recursive: true });
      writeFileAtomic(join(root, 'docs', 'mutants.md'), doc(table, outcomes));
    }
    if (outcomes.some((o) => o.status !== 'killed')) process.exitCode = 1;
  } finally {
    cleanup();
  }
}

function render(outcomes: Outcome[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = outcomes.map((o) => `| ${o.m.id} | ${o.m.file} | ${esc(o.m.what)} | ${o.status} | ${esc(o.by)} |`);
  const count = (s: Outcome['status']) => outcomes.filter((o) => o.status === s).length;
  return [
    `${outcomes.length} mutants: ${count('killed')} killed, ${count('survived')} survived, ${count('stale')} stale, ${count('ambiguous')} ambiguous`,
    '',
    '| mutant | file | mutation | result | killed by (first failing test) |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function doc(table: string, outcomes: Outcome[]): string {
  const secs = outcomes.reduce((s, o) => s + o.seconds, 0);
  return `# Mutation check of the core

Each mutant below is a small deliberate bug — a sign flip or a no-op in a recipe module (every negative source,
logQ and its mixture, the masks, the false-negative mask, the debiased and symmetric losses, same-tower
negatives, the queue and its momentum, GNNO neighbourhood negatives, mined negatives), in the batch samplers
(no-duplicates, BatchSampler's random walk), in the evaluator's exclusion of seen items, and in early stopping.
\`npm run mutants\` (scripts/mutants.ts) applies each one to a copy of the repository in the temp directory, runs the
test files that cover the mutated file (the \`COVER\` map in the script) until one fails, and records which test
killed it. A mutant whose snippet is no longer in the source is reported as *stale*, never skipped silently.
Not part of \`npm test\`; this run took ${Math.max(1, Math.round(secs / 60))} minutes on the 2-core machine (load average ${loadavg()[0].toFixed(1)} at the end).

Command: \`npm run mutants\` (one mutant or a few: \`npm run mutants -- --only logq-sign,queue-emb-noop\`; the list:
\`npm run mutants -- --list\`).

${table}
`;
}

main();
