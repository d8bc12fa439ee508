/**
 * BatchSampler (Yang et al. KDD 2023): batches drawn by random walk with restart on a proximity graph of the
 * training instances, so that a batch holds instances that are hard to tell apart and the in-batch negatives
 * are hard negatives at no extra forward cost.
 *
 * A batch starts at a random instance not yet used this epoch; each walk step goes back to the start with
 * probability p (higher p = the batch stays near its start = harder negatives, and more false negatives), else to
 * a uniformly random graph neighbour (or, when that one is used, the next unused neighbour); unused instances join
 * the batch. A walk that stops finding unused instances, or has added `walkLength` rows, hands over to a new random
 * unused start. Unlike the official code (which lets later batches revisit instances and trains the remainder at
 * the end), every instance is used at most once per epoch and epochs keep shuffling's step count, so progress,
 * checkpoints and comparisons are unchanged; the share of rows reached by walks is in stats().
 *
 * Instance similarity of (user, item) rows: 'cross' (default) links rows i, j by uᵢ·vⱼ + uⱼ·vᵢ, the sum of the two
 * in-batch logits they would give each other; 'item' by vᵢ·vⱼ (similar items share a batch). Warm-up epochs use
 * item co-occurrence (cooccurrence-sketch.ts), or plain shuffling as the official code's random_epochs.
 * The graph is rebuilt at the start of every post-warm-up epoch and every refreshEvery steps within it, so a
 * resumed run rebuilds exactly the graphs of an uninterrupted one. Restart decays linearly per epoch
 * (the official code: p₀ − 0.02·epoch, floored at 0.05).
 */
import { Rng } from '../../util/rng.ts';
import type { BatchComposer, ComposerContext } from './composer.ts';
import { cooccurrenceSketch } from './cooccurrence-sketch.ts';
import { buildProximityGraph, type ProximityGraph } from './proximity-graph.ts';

export interface RwrOptions {
  /** M: random candidates scored per instance. */
  candidates: number;
  /** K: neighbours kept per instance. */
  neighbours: number;
  /** Restart probability at epoch 1. */
  restart: number;
  /** Subtracted from the restart probability per epoch. */
  restartDecay: number;
  /** Floor of the decayed restart probability. */
  restartMin: number;
  /** Rebuild the model graph every this many steps (0 = only at epoch starts). */
  refreshEvery: number;
  /** Rebuild at the start of every this-many-th post-warm-up epoch only (1 = every epoch; > 1 also skips refreshEvery). */
  rebuildEpochs: number;
  /** Epochs composed before the model's embeddings are used... */
  warmupEpochs: number;
  /** ...on the item co-occurrence graph, or shuffled (the official code's random_epochs). */
  warmup: 'cooccurrence' | 'shuffle';
  similarity: 'cross' | 'item';
  /** Width of the co-occurrence sketch. */
  sketchDim: number;
  /** Rank graph candidates by similarity minus their mean similarity to random instances (proximity-graph.ts). */
  hubCorrection: boolean;
  /** Rows one walk may add before the batch jumps to a new random start (0 = the whole batch, as the paper). */
  walkLength: number;
}

export class RwrComposer implements BatchComposer {
  readonly type = 'rwr';
  private readonly n: number;
  private readonly out: Int32Array;
  private readonly perm: Int32Array;
  private readonly used: Int32Array;
  private ptr = 0;
  private epoch = 0;
  private p = 0;
  private rng = new Rng(0);
  private graph: ProximityGraph | null = null;
  private warmGraph: ProximityGraph | null = null;
  private modelGraph: ProximityGraph | null = null;
  private readonly counters = { graphBuilds: 0, graphSeconds: 0, walkRows: 0, startRows: 0, restart: 0 };

  constructor(
    private readonly o: RwrOptions,
    private readonly ctx: ComposerContext,
  ) {
    this.n = ctx.trainUsers.length;
    this.out = new Int32Array(ctx.batchSize);
    this.perm = new Int32Array(this.n);
    this.used = new Int32Array(this.n);
  }

  /** The graph batches are currently drawn from (for tests and diagnostics). */
  get currentGraph(): ProximityGraph | null {
    return this.graph;
  }

  beginEpoch(epoch: number, rng: Rng): void {
    this.epoch = epoch;
    this.rng = rng.fork();
    for (let i = 0; i < this.n; i++) this.perm[i] = i;
    this.rng.shuffle(this.perm);
    this.ptr = 0;
    const { restart, restartDecay, restartMin } = this.o;
    this.p = Math.max(Math.min(restart, restartMin), restart - restartDecay * (epoch - 1));
    this.counters.restart = this.p;
    if (epoch > this.o.warmupEpochs) {
      // A resumed run that starts between two rebuilds rebuilds at once (from the restored model), so it matches an
      // uninterrupted run exactly only when rebuildEpochs = 1.
      const due = (epoch - this.o.warmupEpochs - 1) % this.o.rebuildEpochs === 0;
      if (due || !this.modelGraph) this.graph = this.modelGraph = this.build('model', 0);
      else this.graph = this.modelGraph;
    }
    else if (this.o.warmup === 'cooccurrence') this.graph = this.warmGraph ??= this.build('cooccurrence', 0);
    else this.graph = null; // shuffled warm-up epochs, as the official code's random_epochs

  }

  batch(step: number): Int32Array {
    if (this.epoch > this.o.warmupEpochs && this.o.rebuildEpochs === 1 && this.o.refreshEvery > 0 && step > 0 && step % this.o.refreshEvery === 0) {
      this.graph = this.modelGraph = this.build('model', step);
    }
    if (!this.graph) return this.perm.subarray(step * this.out.length, (step + 1) * this.out.length);
    const { out, used, rng, p } = this;
    const { nbr, deg, k: K } = this.graph;
    const ep = this.epoch;
    const B = out.length;
    // Give up on a walk after this many steps without a new instance (restarts included). Late in an epoch
    // most instances are used and walks stall, so this bound is most of the walking cost there.
    const maxStale = p >= 1 ? 0 : Math.ceil(16 / (1 - p));
    let f = 0;
    while (f < B) {
      const start = this.nextStart();
      used[start] = ep;
      out[f++] = start;
      this.counters.startRows++;
      let cur = start;
      let stale = 0;
      const stop = this.o.walkLength > 0 ? Math.min(B, f + this.o.walkLength - 1) : B;
      while (f < stop && stale < maxStale) {
        if (rng.next() < p) {
          cur = start;
          stale++;
          continue;
        }
        const d = deg[cur];
        if (d === 0) break;
        // A uniformly random neighbour; if it is already used, the first unused one after it (cyclically)
        // instead, so walks spend their steps adding instances rather than crossing exhausted hubs.
        const base = cur * K;
        const first = rng.int(d);
        let next = -1;
        for (let t = 0; t < d; t++) {
          const cand = nbr[base + ((first + t) % d)];
          if (used[cand] !== ep) {
            next = cand;
            break;
          }
        }
        if (next >= 0) {
          cur = next;
          used[cur] = ep;
          out[f++] = cur;
          this.counters.walkRows++;
          stale = 0;
        } else {
          cur = nbr[base + first];
          stale++;
        }
      }
    }
    return out;
  }

  stats(): Record<string, number> {
    const c = this.counters;
    return { ...c, walkFraction: c.walkRows / Math.max(1, c.walkRows + c.startRows) };
  }

  /** A random instance not used this epoch (the permutation's next unused entry). */
  private nextStart(): number {
    while (this.ptr < this.n) {
      const r = this.perm[this.ptr++];
      if (this.used[r] !== this.epoch) return r;
    }
    // stepsPerEpoch·batchSize ≤ n, so an epoch never runs out of unused instances.
    throw new Error('rwr batch composer: no unused instance left in the epoch');
  }

  private build(source: 'cooccurrence' | 'model', step: number): ProximityGraph {
    const t0 = performance.now();
    const { trainUsers: users, trainItems: items, backend } = this.ctx;
    const common = { backend, users, items, candidates: this.o.candidates, neighbours: this.o.neighbours, centerCandidates: this.o.hubCorrection };
    let g: ProximityGraph;
    if (source === 'cooccurrence') {
      const D = this.o.sketchDim;
      const sk = cooccurrenceSketch(users, items, this.ctx.numItems, D, this.ctx.seed * 7919 + 17);
      const parts = [{ dim: D, anchorTable: sk, anchorIds: items, candTable: sk, candIds: items }];
      g = buildProximityGraph({ ...common, parts, rng: new Rng(this.ctx.seed * 7919 + 29) });
    } else {
      if (!this.ctx.embed) throw new Error('rwr batch composer: no embeddings callback');
      const { users: U, items: V, dim } = this.ctx.embed();
      const parts =
        this.o.similarity === 'item'
          ? [{ dim, anchorTable: V, anchorIds: items, candTable: V, candIds: items }]
          : [
              { dim, anchorTable: U, anchorIds: users, candTable: V, candIds: items },
              { dim, anchorTable: V, anchorIds: items, candTable: U, candIds: users },
            ];
      g = buildProximityGraph({ ...common, parts, rng: this.rng });
    }
    const seconds = (performance.now() - t0) / 1000;
    this.counters.graphBuilds++;
    this.counters.graphSeconds += seconds;
    this.ctx.onGraph?.({ epoch: this.epoch, step, source, seconds });
    return g;
  }
}
