/**
 * Collapse diagnosis for sequential training with in-batch (+ neighbourhood) softmax on a large catalogue: per
 * epoch, validation NDCG@10 (history excluded), training loss, item-embedding norms (all / 100 most popular /
 * the rest), and the false-negative rates of the negatives the loss sees — the share of in-batch columns and of
 * neighbourhood draws that are items of the row's own user (training, validation or test: items the model
 * should rank high, pushed down as negatives).
 *
 *   npx tsx bench/seq-collapse.ts --data ../shared/data/amazon-video/Video.txt --recipe recipes/in-batch-neighbourhood.json --lr 0.005 --epochs 6 [--warmup-epochs 1] [--out file.json]
 */
import { getBackend } from '../src/compute/index.ts';
import { csrRow } from '../src/data/csr.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { buildTower, defaultSeqModel, loadSeqData } from '../src/seq/experiment.ts';
import { buildObjective, SoftmaxObjective } from '../src/seq/objectives.ts';
import { PackedBuilder } from '../src/seq/packed.ts';
import { trainSequential } from '../src/seq/trainer.ts';
import type { NeighbourhoodSource } from '../src/sampling/neighbourhood.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const backend = await getBackend();
const { data } = await loadSeqData({ path: arg('data', '../shared/data/amazon-video/Video.txt') });
const recipe = loadRecipe(arg('recipe', 'recipes/in-batch-neighbourhood.json'));
const lr = Number(arg('lr', '0.005'));
const model = { ...defaultSeqModel, lr, seed: Number(arg('seed', '1')) };
const tower = buildTower(model, data.numItems);
const objective = buildObjective({ kind: 'softmax', score: 'dot', recipe }, data, model.dim);
const d = model.dim;
// Each user's items anywhere in the log (train, validation, test).
const own = (u: number) => {
  const s = new Set<number>(csrRow(data.trainVal, u));
  if (data.testItem[u] >= 0) s.add(data.testItem[u]);
  return s;
};
const popOrder = Int32Array.from(data.itemCounts.keys()).sort((a, b) => data.itemCounts[b] - data.itemCounts[a]);
const head = new Set(popOrder.subarray(0, 100));
const rng = new Rng(7);
const probeUsers = Int32Array.from({ length: 128 }, () => rng.int(data.numUsers)).filter((u) => data.train.offsets[u + 1] - data.train.offsets[u] >= 2);
const rows: any[] = [];
const nbr = objective instanceof SoftmaxObjective ? (objective.sources.sources.find((s) => s.name === 'neighbourhood') as NeighbourhoodSource | undefined) : undefined;
const summary = trainSequential(
  {
    backend,
    tower,
    objective,
    data,
    score: 'dot',
    excludeHistory: true,
    onEpochEnd: (epoch, entry) => {
      const E = tower.items.data;
      let all = 0;
      let hd = 0;
      let tl = 0;
      let mx = 0;
      for (let j = 0; j < data.numItems; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += E[j * d + k] ** 2;
        const n = Math.sqrt(s);
        all += n;
        mx = Math.max(mx, n);
        if (head.has(j)) hd += n;
        else tl += n;
      }
      // In-batch false negatives on one probe batch: other rows' targets that are the row's user's own items.
      const batch = new PackedBuilder(tower.maxLen).training(data.train, probeUsers);
      let ibFn = 0;
      let ibAll = 0;
      const owned = Array.from(batch.users, (u) => own(u));
      for (let t = 0; t < batch.tokens; t++) {
        const mine = owned[batch.seqOf[t]];
        for (let c = 0; c < batch.tokens; c++) {
          const j = batch.targets[c];
          if (j === batch.targets[t]) continue; // masked as an accidental hit
          if (batch.seqOf[c] === batch.seqOf[t]) continue; // masked: same user
          ibAll++;
          if (mine.has(j)) ibFn++;
        }
      }
      let nbFn = 0;
      let nbAll = 0;
      let nbHead = 0;
      if (nbr) {
        nbr.epoch = epoch;
        nbr.hardnessFor({ users: batch.users, items: batch.targets, step: 1, rng });
        const out = new Int32Array(1);
        for (let t = 0; t < batch.tokens; t++) {
          nbr.sampler.sampleInto(batch.targets[t], 1, rng, out, 0);
          nbAll++;
          if (owned[batch.seqOf[t]].has(out[0])) nbFn++;
          if (head.has(out[0])) nbHead++;
        }
      }
      const row = {
        epoch,
        loss: entry.loss,
        val: entry.val?.['ndcg@10'],
        normMean: all / data.numItems,
        normMax: mx,
        normHead100: hd / 100,
        normTail: tl / (data.numItems - 100),
        inBatchFnRate: ibFn / Math.max(1, ibAll),
        neighbourFnRate: nbr ? nbFn / Math.max(1, nbAll) : null,
        neighbourHeadShare: nbr ? nbHead / Math.max(1, nbAll) : null,
        gap: entry.gap,
      };
      rows.push(row);
      process.stderr.write(JSON.stringify(row) + '\n');
    },
  },
  {
    epochs: Number(arg('epochs', '6')),
    batchSize: 128,
    seed: model.seed,
    evalEvery: 1,
    patience: 0,
    valMetric: 'ndcg@10',
    valUsers: 5000,
    progress: 'none',
    warmupEpochs: Number(arg('warmup-epochs', '0')),
  },
);
const out = arg('out', '');
const result = { data: arg('data', ''), recipe, lr, warmupEpochs: Number(arg('warmup-epochs', '0')), rows, collapse: summary.collapse, noLearning: summary.noLearning, valPopularity: summary.valPopularity };
if (out) writeResultJson(out, result);
console.log(JSON.stringify(result));
