/**
 * One sequential-recommendation experiment: load a log, leave-last-one-out split, build the sequence tower
 * (SASRec or mean pooling) and the objective (SASRec BCE, BPR with uniform/neighbourhood negatives, or the
 * recipe's sampled softmax), train with validation and early stopping, then evaluate on the test items with
 * full ranking. Used by `towerlab seq` and bench/sequential.ts.
 */
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { loadInteractions, type DataSpec } from '../data/load.ts';
import { splitInteractions } from '../data/split.ts';
import type { Interactions } from '../data/types.ts';
import type { NeighbourhoodStats } from '../graph/build.ts';
import { UserError } from '../util/errors.ts';
import { seqDataFrom, type SeqData } from './data.ts';
import { evaluateSeq, evaluateSeqPopularity } from './evaluate.ts';
import { MeanPoolTower } from './mean-pool.ts';
import { BprObjective, buildObjective, SoftmaxObjective, type ObjectiveSpec, type ScoreKind } from './objectives.ts';
import { SasRecTower } from './sasrec.ts';
import type { SeqTower } from './tower.ts';
import { trainSequential, type SeqTrainConfig, type SeqTrainSummary } from './trainer.ts';
import { NeighbourhoodSource } from '../sampling/neighbourhood.ts';

export interface SeqModelOptions {
  tower: 'sasrec' | 'meanpool';
  dim: number;
  maxLen: number;
  blocks: number;
  heads: number;
  dropout: number;
  lr: number;
  beta2: number;
  seed: number;
}

export const defaultSeqModel: SeqModelOptions = { tower: 'sasrec', dim: 64, maxLen: 50, blocks: 2, heads: 1, dropout: 0.2, lr: 0.001, beta2: 0.98, seed: 1 };

export interface SeqExperimentOptions {
  /** A path/spec to load, or already loaded interactions. */
  data: DataSpec | Interactions;
  model: SeqModelOptions;
  objective: ObjectiveSpec;
  train: SeqTrainConfig;
  ks: number[];
  excludeHistory: boolean;
  backend?: BackendChoice;
}

export interface SeqExperimentResult {
  metrics: Record<string, number>;
  /** The most-popular baseline under the same protocol (test part). */
  popularity: Record<string, number>;
  train: SeqTrainSummary;
  evalSeconds: number;
  /** Graph build statistics when the objective uses neighbourhood negatives. */
  graph: NeighbourhoodStats | null;
  data: { source: string; users: number; items: number; interactions: number; trainSequences: number; testUsers: number };
  protocol: string;
  backend: string;
  /** The trained tower (best validation epoch) and the data, for further evaluation. */
  tower: SeqTower;
  seqData: SeqData;
  /** The loaded log (its vocabularies map indices back to the data's ids). */
  raw: Interactions;
}

/** `inference`: a tower to load weights into, with the smallest sparse-optimizer state (Adagrad: one float per row). */
export function buildTower(m: SeqModelOptions, numItems: number, inference = false): SeqTower {
  const sparse = { kind: inference ? ('adagrad' as const) : ('lazyadam' as const), lr: m.lr, beta1: 0.9, beta2: m.beta2, eps: 1e-8 };
  const optim = { lr: m.lr, beta1: 0.9, beta2: m.beta2 };
  if (m.tower === 'meanpool') return new MeanPoolTower({ numItems, dim: m.dim, maxLen: m.maxLen, seed: m.seed }, sparse, optim);
  if (m.dim % m.heads !== 0) throw new UserError(`--heads ${m.heads} must divide --dim ${m.dim}`);
  return new SasRecTower({ numItems, dim: m.dim, maxLen: m.maxLen, blocks: m.blocks, heads: m.heads, dropout: m.dropout, seed: m.seed }, sparse, optim);
}

export function scoreOf(o: ObjectiveSpec): ScoreKind {
  return o.kind === 'softmax' ? o.score : 'dot';
}

export function protocolText(excludeHistory: boolean, items: number): string {
  return `leave-last-one-out (last item test, second-last validation), full ranking over all ${items} items, ${excludeHistory ? "the user's history items excluded" : 'nothing excluded'}`;
}

export async function loadSeqData(spec: DataSpec | Interactions): Promise<{ raw: Interactions; data: SeqData }> {
  const raw = 'users' in spec ? spec : await loadInteractions(spec);
  const split = splitInteractions(raw, { kind: 'loo' });
  return { raw, data: seqDataFrom(raw, split) };
}

export async function runSeqExperiment(o: SeqExperimentOptions, loaded?: { raw: Interactions; data: SeqData }): Promise<SeqExperimentResult> {
  const backend = await getBackend(o.backend);
  const { raw, data } = loaded ?? (await loadSeqData(o.data));
  const tower = buildTower(o.model, data.numItems);
  const objective = buildObjective(o.objective, data, o.model.dim);
  const score = scoreOf(o.objective);
  const train = trainSequential({ backend, tower, objective, data, score, excludeHistory: o.excludeHistory }, o.train);
  const t0 = performance.now();
  const r = evaluateSeq(backend, tower, data, 'test', { ks: o.ks, excludeHistory: o.excludeHistory, score });
  const evalSeconds = (performance.now() - t0) / 1000;
  const popularity = evaluateSeqPopularity(backend, data, 'test', { ks: o.ks, excludeHistory: o.excludeHistory }).metrics;
  let graph: NeighbourhoodStats | null = null;
  if (objective instanceof BprObjective) graph = objective.hard?.graph ?? null;
  if (objective instanceof SoftmaxObjective) {
    const s = objective.sources.sources.find((x): x is NeighbourhoodSource => x instanceof NeighbourhoodSource);
    graph = s?.graph ?? null;
  }
  let trainSequences = 0;
  for (let u = 0; u < data.numUsers; u++) if (data.train.offsets[u + 1] - data.train.offsets[u] >= 2) trainSequences++;
  return {
    metrics: r.metrics,
    popularity,
    train,
    evalSeconds,
    graph,
    data: { source: raw.source, users: data.numUsers, items: data.numItems, interactions: raw.users.length, trainSequences, testUsers: r.users },
    protocol: protocolText(o.excludeHistory, data.numItems),
    backend: backend.name,
    tower,
    seqData: data,
    raw,
  };
}
