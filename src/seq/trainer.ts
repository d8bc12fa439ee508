/**
 * Sequential training as a task of the one training loop (train/loop.ts) and the one contrastive step: every
 * epoch visits each user with ≥ 2 training items once, in shuffled batches of `batchSize` sequences; a step
 * trains every position of every sequence (SASRec) through the tower's EncoderPair (pair.ts: one sparse update
 * of the item table with input-side and output-side gradients together, Adam on the dense parameters).
 * Validation (full ranking on the second-last items, and for sampled softmax recipes the gap to the exact
 * full-catalogue loss) every `evalEvery` epochs with early stopping; the best epoch's weights are restored.
 */
import type { Backend } from '../compute/backend.ts';
import type { CollapseCheck } from '../train/collapse.ts';
import type { NoLearningCheck } from '../train/no-learning.ts';
import { runLoop, type LoopState } from '../train/loop.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST, readTensorDir, writeTensorDir } from '../model/tensor-file.ts';
import type { ProgressMode } from '../train/progress.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../util/errors.ts';
import type { SeqData } from './data.ts';
import { evaluateSeq, evaluateSeqPopularity } from './evaluate.ts';
import type { ContrastiveStep } from '../train/contrastive-step.ts';
import type { ScoreKind, SeqObjective } from './objectives.ts';
import { PackedBuilder, type PackedBatch } from './packed.ts';
import { SeqPair, seqBatch } from './pair.ts';
import type { SeqTower } from './tower.ts';

export interface SeqTrainConfig {
  epochs: number;
  /** Sequences per batch. */
  batchSize: number;
  seed: number;
  /** Validate every n epochs (0 = never). */
  evalEvery: number;
  /** Stop after n validations without improvement (0 = never). */
  patience: number;
  /** e.g. 'ndcg@10'. */
  valMetric: string;
  /** Validate on at most n users (a fixed seeded sample). */
  valUsers: number;
  progress: ProgressMode;
  /**
   * Linear learning-rate warm-up from ~0 to the model's rate over this many epochs' steps (0 = none). Adam's
   * first steps on a freshly initialised table are the largest relative updates of the run; a warm-up keeps a
   * high rate from blowing up the item embeddings before the softmax has any structure to follow.
   */
  warmupEpochs?: number;
  /** Write a checkpoint here after every epoch (weights, optimiser state, sources' state, loop state). */
  checkpointDir?: string | null;
  /** Continue from the checkpoint in checkpointDir (a resumed run draws what an uninterrupted one would). */
  resume?: boolean;
}

export const SEQ_CHECKPOINT_FORMAT = 'towerlab-seq-checkpoint';

export interface SeqTrainSummary {
  epochs: number;
  steps: number;
  trainSeconds: number;
  /** Sequences and (non-padding) positions trained per second. */
  sequencesPerSecond: number;
  positionsPerSecond: number;
  finalLoss: number;
  bestEpoch: number | null;
  best: number | null;
  stoppedEarly: boolean;
  /** Collapse check over the validation history (see train/collapse.ts); `collapse.collapsed` says it happened. */
  collapse: CollapseCheck;
  /** Never-learned check (train/no-learning.ts) against popularity on the same validation users; `noLearning.learned === false` says it happened. */
  noLearning: NoLearningCheck;
  /** Popularity's value of the validation metric on the validation users (null without validation). */
  valPopularity: number | null;
  history: Array<{
    epoch: number;
    loss: number;
    seconds: number;
    val?: Record<string, number>;
    /**
     * Sampled objectives: this recipe's loss and the exact full-catalogue softmax loss on the same validation
     * rows (the last position of up to 512 validation users, no dropout): how far the sampled loss is from
     * the quantity it approximates.
     */
    gap?: { sampled: number; full: number; rows: number };
  }>;
}

export interface SeqTrainInputs {
  backend: Backend;
  tower: SeqTower;
  objective: SeqObjective;
  data: SeqData;
  score: ScoreKind;
  excludeHistory: boolean;
  /** Called after every epoch (after validation), for diagnostics. */
  onEpochEnd?: (epoch: number, entry: SeqTrainSummary['history'][number]) => void;
}

export function trainSequential(inp: SeqTrainInputs, cfg: SeqTrainConfig): SeqTrainSummary {
  const { backend, tower, objective, data } = inp;
  const users: number[] = [];
  for (let u = 0; u < data.numUsers; u++) if (data.train.offsets[u + 1] - data.train.offsets[u] >= 2) users.push(u);
  if (!users.length) throw new UserError('no user has 2 or more training items: nothing to train a next-item model on');
  const order = Int32Array.from(users);
  const valUsers = sampleUsers(data.valItem, cfg.valUsers, cfg.seed);
  const stepsPerEpoch = Math.ceil(order.length / cfg.batchSize);
  const builder = new PackedBuilder(tower.maxLen);
  // The one contrastive step, on the tower as an encoder pair (rows = tokens, items = its own item table).
  const pair = new SeqPair(tower, inp.score);
  const stepper = objective.stepFor(backend, pair);
  const warmupSteps = Math.round((cfg.warmupEpochs ?? 0) * stepsPerEpoch);
  const gapUsers = valUsers.subarray(0, Math.min(512, valUsers.length));
  const ks = [...new Set([5, 10, 20, Number(cfg.valMetric.split('@')[1])])].filter((k) => k > 0);
  // Popularity under the validation's own protocol (same users, exclusions): the floor a run must clear to count
  // as having learnt anything (train/no-learning.ts).
  const valPopularity = cfg.evalEvery > 0 && valUsers.length > 0 ? (evaluateSeqPopularity(backend, data, 'val', { ks, excludeHistory: inp.excludeHistory, users: valUsers }).metrics[cfg.valMetric] ?? null) : null;
  let seqs = 0;
  let positions = 0;
  let history: SeqTrainSummary['history'] = [];
  let resumed: LoopState | undefined;
  if (cfg.resume) {
    const dir = cfg.checkpointDir;
    if (!dir || !existsSync(join(dir, MANIFEST))) throw new UserError(`--resume: no checkpoint found in ${dir ?? '(no output directory: give --out)'}`);
    let ck: ReturnType<typeof readTensorDir>;
    try {
      ck = readTensorDir(dir, SEQ_CHECKPOINT_FORMAT, 1);
    } catch (e) {
      // A finished run replaced its checkpoint with the model: nothing to continue.
      throw new UserError(`--resume: ${(e as Error).message} (a finished run keeps its model there, not a checkpoint)`);
    }
    try {
      pair.restoreState((n) => ck.arrays.get(n));
      stepper.restoreState((n) => ck.arrays.get(n));
    } catch (e) {
      throw new UserError(`--resume: ${(e as Error).message}`);
    }
    resumed = ck.manifest.trainer as LoopState;
    seqs = Number(resumed.sequences ?? 0);
    positions = Number(resumed.positions ?? 0);
    history = (resumed.seqHistory as SeqTrainSummary['history'] | undefined) ?? [];
  }
  // The one training loop (train/loop.ts): per-epoch seeds, sources' beginEpoch, warm-up, validation, early
  // stopping with the best epoch restored, collapse and never-learned detection.
  const out = runLoop<PackedBatch>(
    {
      step: stepper,
      stepsPerEpoch,
      // From the same starting order every epoch: the epoch's permutation depends on its seed alone (resume).
      beginEpoch: (_epoch, rng) => {
        order.set(users);
        rng.shuffle(order);
      },
      batch: (s) => {
        const batch = builder.training(data.train, order.subarray(s * cfg.batchSize, Math.min(order.length, (s + 1) * cfg.batchSize)));
        seqs += batch.n;
        positions += batch.tokens;
        return { batch: seqBatch(batch), examples: batch.n };
      },
      validate:
        cfg.evalEvery > 0 && valUsers.length > 0
          ? (epoch) => {
              const r = evaluateSeq(backend, tower, data, 'val', { ks, excludeHistory: inp.excludeHistory, score: inp.score, users: valUsers });
              const v = r.metrics[cfg.valMetric];
              if (v === undefined) throw new UserError(`--val-metric '${cfg.valMetric}': unknown metric (e.g. ndcg@10, hr@10)`);
              const gap = objective.name === 'softmax' && !objective.fullCatalogue && gapUsers.length ? sampledLossGap(backend, pair, stepper, data, gapUsers, new Rng(cfg.seed ^ 0x9a9)) : undefined;
              return {
                metrics: r.metrics,
                extra: gap ? { gap } : {},
                note: `epoch ${epoch}: validation ${cfg.valMetric} ${v.toFixed(4)}` + (gap ? `; validation-batch loss sampled ${gap.sampled.toFixed(4)} vs full softmax ${gap.full.toFixed(4)}` : ''),
              };
            }
          : undefined,
      checkpoint: cfg.checkpointDir
        ? (st) => {
            st.sequences = seqs;
            st.positions = positions;
            st.seqHistory = history;
            writeTensorDir(cfg.checkpointDir!, SEQ_CHECKPOINT_FORMAT, 1, { trainer: st }, [...pair.stateArrays(true), ...stepper.stateArrays()]);
          }
        : undefined,
      snapshot: () => tower.tensors().map(([, a]) => a.slice()),
      restore: (snap) => tower.tensors().forEach(([, a], i) => a.set(snap[i])),
      onEpochEnd: (e, v) => {
        const entry: SeqTrainSummary['history'][number] = { epoch: e.epoch, loss: e.loss, seconds: e.seconds };
        if (v) {
          entry.val = pick(v.metrics);
          if (v.gap) entry.gap = v.gap as { sampled: number; full: number; rows: number };
        }
        history.push(entry);
        inp.onEpochEnd?.(e.epoch, entry);
      },
    },
    {
      epochs: cfg.epochs,
      seed: cfg.seed,
      evalEvery: valUsers.length > 0 ? cfg.evalEvery : 0,
      patience: cfg.patience,
      valMetric: cfg.valMetric,
      progress: cfg.progress,
      lrFactor: warmupSteps > 0 ? (step) => Math.min(1, step / warmupSteps) : null,
      resume: resumed,
      baseline: valPopularity,
    },
  );
  const st = out.state;
  const trainSeconds = st.trainSeconds;
  return {
    epochs: st.epoch,
    steps: st.step,
    trainSeconds,
    sequencesPerSecond: seqs / Math.max(1e-9, trainSeconds),
    positionsPerSecond: positions / Math.max(1e-9, trainSeconds),
    finalLoss: out.lastLoss,
    bestEpoch: st.best === null ? null : st.bestEpoch,
    best: st.best,
    stoppedEarly: out.stoppedEarly,
    collapse: out.collapse,
    noLearning: out.noLearning,
    valPopularity,
    history,
  };
}

/**
 * The objective's (sampled) loss and the exact full-catalogue loss on the last position of `users`' training
 * sequences against their validation items, without dropout and without training.
 */
function sampledLossGap(backend: Backend, pair: SeqPair, step: ContrastiveStep<PackedBatch>, data: SeqData, users: Int32Array, rng: Rng): { sampled: number; full: number; rows: number } {
  const d = pair.dim;
  const builder = new PackedBuilder(pair.tower.maxLen);
  const batch = builder.inference(users, (u) => data.train.cols.subarray(data.train.offsets[u], data.train.offsets[u + 1]));
  const Q = pair.inferQueries(backend, batch, rng);
  const rowsUsers: number[] = [];
  const q: number[] = [];
  for (let k = 0; k < users.length; k++) {
    const hi = batch.offsets[k + 1];
    if (hi === batch.offsets[k] || data.valItem[users[k]] < 0) continue;
    rowsUsers.push(users[k]);
    for (let z = 0; z < d; z++) q.push(Q[(hi - 1) * d + z]);
  }
  const R = rowsUsers.length;
  const qr = Float32Array.from(q);
  const targets = Int32Array.from(rowsUsers, (u) => data.valItem[u]);
  const full = step.fullLoss(qr, targets);
  const sampled = step.sampledLoss(qr, Int32Array.from(rowsUsers), targets, rng);
  return { sampled, full, rows: R };
}

function pick(m: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (k.startsWith('hr@') || k.startsWith('ndcg@')) out[k] = v;
  return out;
}

/** Up to `max` users with a target, a fixed seeded sample (all when there are fewer). */
function sampleUsers(targets: Int32Array, max: number, seed: number): Int32Array {
  const all: number[] = [];
  targets.forEach((j, u) => j >= 0 && all.push(u));
  const arr = Int32Array.from(all);
  if (arr.length <= max) return arr;
  new Rng(seed ^ 0x5eed).shuffle(arr);
  return arr.subarray(0, max).sort();
}
