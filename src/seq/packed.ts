/**
 * Variable-length ("packed") sequence batches: the tokens of all sequences of a batch are stored back to back,
 * no padding. Sequence s has tokens [offsets[s], offsets[s+1]). A model of maximum length L sees the last
 * min(L, |history|) items of each history, and token t of a sequence of length T sits at position
 * L − T + t — the positions a left-padded batch of width L gives it (SASRec: the last item is at L − 1).
 * With causal attention that masks padding, a packed batch computes exactly what the padded one does.
 */
import type { Csr } from '../data/csr.ts';

export interface PackedBatch {
  /** Number of sequences. */
  n: number;
  /** n + 1 token offsets. */
  offsets: Int32Array;
  /** Input item per token. */
  items: Int32Array;
  /** Position index (0 … L − 1) per token. */
  positions: Int32Array;
  /** Next item per token (training targets; −1 when unused). */
  targets: Int32Array;
  /** Which sequence (index into the batch) each token belongs to. */
  seqOf: Int32Array;
  /** The user of each sequence. */
  users: Int32Array;
  /** Total tokens. */
  tokens: number;
}

/** Grow-only storage for packed batches. */
export class PackedBuilder {
  private offsets = new Int32Array(1);
  private items = new Int32Array(0);
  private positions = new Int32Array(0);
  private targets = new Int32Array(0);
  private seqOf = new Int32Array(0);
  private users = new Int32Array(0);

  constructor(readonly maxLen: number) {}

  /**
   * Training batch: for each user u, history h = seqs[u]; inputs h[0..n−2], targets h[1..n−1], truncated to the
   * last maxLen input positions (SASRec's next-item-at-every-position objective). Users with < 2 items add nothing.
   */
  training(seqs: Csr, users: Int32Array): PackedBatch {
    const L = this.maxLen;
    let total = 0;
    for (const u of users) total += Math.min(L, Math.max(0, seqs.offsets[u + 1] - seqs.offsets[u] - 1));
    this.ensure(users.length, total);
    let t = 0;
    let s = 0;
    for (let k = 0; k < users.length; k++) {
      const u = users[k];
      const lo = seqs.offsets[u];
      const hi = seqs.offsets[u + 1];
      const T = Math.min(L, Math.max(0, hi - lo - 1));
      if (T === 0) continue;
      this.users[s] = u;
      this.offsets[s] = t;
      const start = hi - 1 - T; // first input index
      for (let i = 0; i < T; i++) {
        this.items[t] = seqs.cols[start + i];
        this.targets[t] = seqs.cols[start + i + 1];
        this.positions[t] = L - T + i;
        this.seqOf[t] = s;
        t++;
      }
      s++;
    }
    this.offsets[s] = t;
    return this.view(s, t);
  }

  /**
   * Inference batch: the last maxLen items of `history(u)` for each user (the model's output at the last token
   * is the user's embedding). `history` returns the items in time order; empty histories get no tokens.
   */
  inference(users: Int32Array, history: (u: number) => Int32Array): PackedBatch {
    const L = this.maxLen;
    let total = 0;
    for (const u of users) total += Math.min(L, history(u).length);
    this.ensure(users.length, total);
    let t = 0;
    for (let k = 0; k < users.length; k++) {
      const h = history(users[k]);
      const T = Math.min(L, h.length);
      this.users[k] = users[k];
      this.offsets[k] = t;
      for (let i = 0; i < T; i++) {
        this.items[t] = h[h.length - T + i];
        this.targets[t] = -1;
        this.positions[t] = L - T + i;
        this.seqOf[t] = k;
        t++;
      }
    }
    this.offsets[users.length] = t;
    return this.view(users.length, t);
  }

  private ensure(n: number, tokens: number): void {
    if (this.offsets.length < n + 1) {
      this.offsets = new Int32Array(n + 1);
      this.users = new Int32Array(n);
    }
    if (this.items.length < tokens) {
      const cap = Math.ceil(tokens * 1.25);
      this.items = new Int32Array(cap);
      this.positions = new Int32Array(cap);
      this.targets = new Int32Array(cap);
      this.seqOf = new Int32Array(cap);
    }
  }

  private view(n: number, tokens: number): PackedBatch {
    return {
      n,
      offsets: this.offsets.subarray(0, n + 1),
      items: this.items.subarray(0, tokens),
      positions: this.positions.subarray(0, tokens),
      targets: this.targets.subarray(0, tokens),
      seqOf: this.seqOf.subarray(0, tokens),
      users: this.users.subarray(0, n),
      tokens,
    };
  }
}

/** A packed batch from explicit item lists (tests, benches): every list is one sequence, targets −1. */
export function packLists(lists: number[][], maxLen: number): PackedBatch {
  const b = new PackedBuilder(maxLen);
  const arrs = lists.map((l) => Int32Array.from(l));
  return b.inference(Int32Array.from(lists.keys()), (u) => arrs[u]);
}
