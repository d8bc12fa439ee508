/**
 * The batch assembler: everything between "a batch of rows" and "a logits spec the loss consumes".
 *  1. columns(): lays out the item columns — the B positives first (column i is row i's positive), then the
 *     candidates of sources embedded by the encoder's item side, then those that bring fixed embeddings (a
 *     queue) — so the item side runs once over columns [0, Nt) and only those carry gradient; per column the
 *     keys the masks compare and the logQ mixture (logq.ts).
 *  2. logits(): given the queries and the item-side embeddings of [0, Nt), the spec of the loss: columns
 *     [items (N) ; the batch's own queries (B) with same-tower negatives (SamToNe: s(q_i, q_j) joins the
 *     denominator — a query-side correction, not a source)], the −logQ column bias, the masks (accidental hits,
 *     same user, the positives block when no in-batch source, the row's own query with same-tower) and the
 *     false-negative threshold; with `loss.symmetric`, also the item→user direction.
 * Buffers are reused across batches.
 */
import type { ContrastiveArgs } from '../compute/backend.ts';
import type { Recipe } from '../recipe/schema.ts';
import type { SourceSet } from './build.ts';
import { mixtureLogQ } from './logq.ts';
import type { BatchContext } from './source.ts';

export interface Columns {
  /** Item columns in all. */
  N: number;
  /** Columns [0, Nt) are embedded by the item side; [Nt, N) come with `fixed` embeddings. */
  Nt: number;
  /** Fixed embeddings of columns [Nt, N), (N − Nt)×d, or null when there are none. */
  fixed: Float32Array | null;
  ids: Int32Array;
  /** User whose positive the column is (in-batch block), else −1. */
  userKey: Int32Array;
  /** 0 for the positives block when it must not serve as negatives (no in-batch source), else −1. */
  blockKey: Int32Array | null;
  /** Mixture log expected count per column (0 without logQ). */
  logq: Float32Array;
}

/** A ready logits spec: the user→item direction, and the item→user one when the loss is symmetric. */
export interface LogitsSpec {
  cols: Columns;
  /** Columns [0, cols.N) are items; [cols.N, forward.N) the batch's queries (same-tower). */
  forward: ContrastiveArgs;
  /** Rows = the positives' item embeddings; columns [queries (B) ; positives (B) with same-tower]. */
  reverse: ContrastiveArgs | null;
  /** Same-tower query block present (forward columns cols.N … cols.N + B − 1; reverse columns B … 2B − 1). */
  sameTower: boolean;
}

/** Grow-only scratch buffers. */
export class Scratch {
  private readonly f = new Map<string, Float32Array>();
  private readonly i = new Map<string, Int32Array>();
  f32(name: string, n: number): Float32Array {
    let a = this.f.get(name);
    if (!a || a.length < n) this.f.set(name, (a = new Float32Array(Math.max(n, Math.ceil((a?.length ?? 0) * 1.5)))));
    return a.subarray(0, n);
  }
  i32(name: string, n: number): Int32Array {
    let a = this.i.get(name);
    if (!a || a.length < n) this.i.set(name, (a = new Int32Array(Math.max(n, Math.ceil((a?.length ?? 0) * 1.5)))));
    return a.subarray(0, n);
  }
}

export class BatchAssembler {
  readonly inBatch: boolean;
  readonly withLogQ: boolean;
  readonly sameTower: boolean;
  readonly symmetric: boolean;
  private readonly s = new Scratch();

  constructor(
    private readonly set: SourceSet,
    private readonly recipe: Recipe,
    private readonly dim: number,
  ) {
    this.inBatch = set.sources.some((s) => s.usesPositives);
    this.withLogQ = recipe.corrections.logQ !== false;
    this.sameTower = set.sameTower;
    this.symmetric = recipe.loss.symmetric;
  }

  /** The item columns of one batch (see the header). `tag` keeps a second layout's buffers apart. */
  columns(ctx: BatchContext, tag = ''): Columns {
    const B = ctx.items.length;
    const sources = this.set.sources;
    const sampled = sources.flatMap((s) => (!s.usesPositives && s.sample ? [s.sample(ctx)] : []));
    // Item-side candidates first, fixed-embedding ones last.
    const extra = [...sampled.filter((c) => !c.embeddings), ...sampled.filter((c) => c.embeddings)];
    const N = B + extra.reduce((n, c) => n + c.ids.length, 0);
    const Nt = B + extra.filter((c) => !c.embeddings).reduce((n, c) => n + c.ids.length, 0);
    const d = this.dim;
    let fixed: Float32Array | null = null;
    if (N > Nt) {
      fixed = this.s.f32(tag + 'fixed', (N - Nt) * d);
      let o = 0;
      for (const c of extra) if (c.embeddings) {
        fixed.set(c.embeddings.subarray(0, c.ids.length * d), o);
        o += c.ids.length * d;
      }
    }
    const ids = this.s.i32(tag + 'ids', N);
    const userKey = this.s.i32(tag + 'userKey', N);
    ids.set(ctx.items, 0);
    userKey.set(ctx.users, 0);
    let o = B;
    const fixedLogQ: Array<[number, Float32Array, number]> = [];
    for (const c of extra) {
      if (c.fixedLogQ) fixedLogQ.push([o, c.logq, c.ids.length]);
      ids.set(c.ids, o);
      if (c.userKey) userKey.set(c.userKey, o);
      else userKey.fill(-1, o, o + c.ids.length);
      o += c.ids.length;
    }
    let blockKey: Int32Array | null = null;
    if (!this.inBatch) {
      blockKey = this.s.i32(tag + 'block', N);
      blockKey.fill(0, 0, B);
      blockKey.fill(-1, B, N);
    }
    const logq = this.s.f32(tag + 'logq', N);
    if (this.withLogQ) mixtureLogQ(sources, ids, B, logq, this.s.f32(tag + 'tmp', N), fixedLogQ);
    else logq.fill(0);
    return { N, Nt, fixed, ids, userKey, blockKey, logq };
  }

  /**
   * The loss spec of a batch: `q` the rows' queries (B×d), `ct` the item-side embeddings of columns [0, Nt).
   * `fresh` allocates new arrays (for inspection outside the step, which must not alias the step's buffers).
   */
  logits(q: Float32Array, ct: Float32Array, cols: Columns, users: Int32Array, items: Int32Array, fresh = false): LogitsSpec {
    return {
      cols,
      forward: this.forwardArgs(q, ct, cols, users, items, fresh),
      reverse: this.symmetric ? this.reverseArgs(q, ct, users, items) : null,
      sameTower: this.sameTower,
    };
  }

  private forwardArgs(q: Float32Array, ct: Float32Array, cols: Columns, users: Int32Array, items: Int32Array, fresh: boolean): ContrastiveArgs {
    const d = this.dim;
    const B = users.length;
    const same = this.sameTower;
    const N = cols.N + (same ? B : 0);
    const tag = fresh ? 'i.' : '';
    const c = fresh ? new Float32Array(N * d) : this.s.f32('c', N * d);
    c.set(ct.subarray(0, cols.Nt * d));
    if (cols.fixed) c.set(cols.fixed, cols.Nt * d);
    if (same) c.set(q.subarray(0, B * d), cols.N * d);
    const corr = this.recipe.corrections;
    const masks: ContrastiveArgs['masks'] = [];
    // Item key: accidental hits among item columns; always on for the query block (it masks the row's own query).
    if (corr.maskSameItem || same) {
      const key = this.s.i32(tag + 'itemKey', N);
      if (corr.maskSameItem) key.set(cols.ids);
      else key.fill(-1, 0, cols.N);
      if (same) key.set(items, cols.N);
      masks.push({ rowKey: items, colKey: key });
    }
    if (cols.blockKey) {
      const key = this.s.i32(tag + 'blockKey', N);
      key.set(cols.blockKey);
      key.fill(-1, cols.N, N);
      masks.push({ rowKey: this.s.i32('zeros', B).fill(0), colKey: key });
    } else if (corr.maskSameUser) {
      const key = this.s.i32(tag + 'sameUserKey', N);
      key.set(cols.userKey);
      if (same) key.set(users, cols.N);
      masks.push({ rowKey: users, colKey: key });
    }
    let colBias: Float32Array | null = null;
    if (this.withLogQ) {
      colBias = this.s.f32(tag + 'bias', N);
      for (let j = 0; j < cols.N; j++) colBias[j] = -cols.logq[j];
      colBias.fill(0, cols.N, N); // queries are not sampled items: no logQ term
    }
    return {
      q,
      c,
      B,
      N,
      d,
      pos: this.positions(B),
      scale: 1 / this.recipe.temperature,
      colBias,
      masks,
      fnMask: corr.fnMask ? { absThreshold: corr.fnMask.threshold, margin: corr.fnMask.margin } : null,
      rowWeight: null,
      dq: null,
      dc: null,
      maskedCount: this.s.i32(tag + 'masked', B),
    };
  }

  private reverseArgs(q: Float32Array, ct: Float32Array, users: Int32Array, items: Int32Array): ContrastiveArgs {
    const d = this.dim;
    const B = users.length;
    const same = this.sameTower;
    const N = same ? 2 * B : B;
    const c = this.s.f32('c2', N * d);
    c.set(q.subarray(0, B * d));
    if (same) c.set(ct.subarray(0, B * d), B * d);
    const itemKey = this.s.i32('r.itemKey', N);
    const userKey = this.s.i32('r.userKey', N);
    itemKey.set(items);
    userKey.set(users);
    if (same) {
      itemKey.set(items, B);
      userKey.set(users, B);
    }
    const fn = this.recipe.corrections.fnMask;
    return {
      q: ct.subarray(0, B * d),
      c,
      B,
      N,
      d,
      pos: this.positions(B),
      scale: 1 / this.recipe.temperature,
      colBias: null,
      // Another row with the same item or the same user is a positive pair in this direction too.
      masks: [
        { rowKey: items, colKey: itemKey },
        { rowKey: users, colKey: userKey },
      ],
      fnMask: fn ? { absThreshold: fn.threshold, margin: fn.margin } : null,
      rowWeight: null,
      dq: null,
      dc: null,
      maskedCount: null,
    };
  }

  private positions(B: number): Int32Array {
    const p = this.s.i32('pos', B);
    if (p[B - 1] !== B - 1 || p[0] !== 0) for (let i = 0; i < B; i++) p[i] = i;
    return p;
  }
}
