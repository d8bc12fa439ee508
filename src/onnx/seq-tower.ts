/**
 * ONNX graphs of the sequence query towers (src/seq/sasrec.ts, src/seq/mean-pool.ts) at inference (dropout
 * off), answering what the server's history query answers (bundle/seq.ts SeqHistoryQuery): the tower output
 * after the history's known items, the last maxLen of them, L2-normalised.
 * Input: item_ids int64 [batch, len], oldest first; any value outside [0, items) — padding (−1) or an item
 * the model does not know — is skipped, as the server skips unknown items, so rows may be padded on either
 * side and len may exceed maxLen. Output: embedding [batch, dim] (a row with no known item is all zeros).
 *
 * Packed batches (seq/packed.ts) become a mask: with c_t = the number of kept tokens at or after t
 * (a reverse CumSum), token t is kept when it is known and c_t ≤ L, and sits at position L − c_t, exactly
 * the position packing gives it. Attention lets query i see key j when j is kept and pos_j ≤ pos_i, which for
 * kept tokens is j ≤ i (causal); masked scores are −1e9, whose exp is exactly 0 in float32. The output is
 * the hidden state of the token with c_t = 1 (the last kept one).
 */
import type { MeanPoolTower } from '../seq/mean-pool.ts';
import type { SasRecTower } from '../seq/sasrec.ts';
import type { SeqTower } from '../seq/tower.ts';
import { GraphBuilder } from './graph-builder.ts';
import { DT } from './proto.ts';

interface Kept {
  /** bool [N, W]: the token is used. */
  valid: string;
  /** int64 [N, W]: c_t (kept tokens at or after t, counting t). */
  count: string;
  /** int64 [N, W]: a safe item index (0 where not kept). */
  items: string;
}

function keptTokens(g: GraphBuilder, ids: string, numItems: number, maxLen: number): Kept {
  const known = g.inRange(ids, numItems);
  const count = g.op('CumSum', [g.op('Cast', [known], { to: DT.INT64 }), g.i64([1], [])], { reverse: 1 });
  const valid = g.op('And', [known, g.op('LessOrEqual', [count, g.i64([maxLen], [])])]);
  return { valid, count, items: g.safeIndex(ids, valid) };
}

export function seqTowerGraph(tower: SeqTower): GraphBuilder {
  if (tower.kind === 'sasrec') return sasrecGraph(tower as SasRecTower);
  if (tower.kind === 'meanpool') return meanPoolGraph(tower as MeanPoolTower);
  throw new Error(`onnx: no exporter for sequence tower '${tower.kind}'`);
}

function itemInput(g: GraphBuilder): string {
  return g.input({ name: 'item_ids', type: DT.INT64, shape: ['batch', 'len'], doc: 'history item indices, oldest first; values outside [0, items) are skipped (padding, unknown items)' });
}

function sasrecGraph(t: SasRecTower): GraphBuilder {
  const { numItems, maxLen: L, heads: H } = t.config;
  const d = t.dim;
  const dh = d / H;
  const g = new GraphBuilder('towerlab-sasrec-tower');
  const k = keptTokens(g, itemInput(g), numItems, L);
  const pos = g.op('Where', [k.valid, g.op('Sub', [g.i64([L], []), k.count]), g.i64([0], [])]);
  const E = g.op('Gather', [g.f32('item.emb', t.items.data.subarray(0, numItems * d), [numItems, d]), k.items], { axis: 0 });
  const P = g.op('Gather', [g.f32('pos.emb', t.pos.p, [L, d]), pos], { axis: 0 });
  let x = g.op('Add', [g.op('Mul', [E, g.scalarF32(Math.sqrt(d))]), P]);
  // mask [N, 1, W(query), W(key)]: key kept and pos_key ≤ pos_query.
  const order = g.op('LessOrEqual', [g.op('Unsqueeze', [pos, g.i64([1])]), g.op('Unsqueeze', [pos, g.i64([2])])]);
  const mask = g.op('Unsqueeze', [g.op('And', [order, g.op('Unsqueeze', [k.valid, g.i64([1])])]), g.i64([1])]);
  const ln = (v: string, name: string, gamma: Float32Array, beta: Float32Array, eps: number) =>
    g.op('LayerNormalization', [v, g.f32(`${name}.gamma`, gamma, [d]), g.f32(`${name}.beta`, beta, [d])], { axis: -1, epsilon: { float: eps } });
  const heads = (v: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [v, g.i64([0, 0, H, dh])])], { perm });
  for (const blk of t.blocks) {
    const lin = (v: string, name: string, l: typeof blk.wq) => g.linear(v, `${blk.name}.${name}`, l.w, l.b, d, d, l.relu);
    const a = ln(x, blk.ln1.gamma.name.replace(/\.gamma$/, ''), blk.ln1.gamma.p, blk.ln1.beta.p, blk.ln1.eps);
    const Q = heads(lin(a, 'wq', blk.wq), [0, 2, 1, 3]); // [N, H, W, dh]
    const Kt = heads(lin(x, 'wk', blk.wk), [0, 2, 3, 1]); // [N, H, dh, W]
    const V = heads(lin(x, 'wv', blk.wv), [0, 2, 1, 3]);
    const S = g.op('Mul', [g.op('MatMul', [Q, Kt]), g.scalarF32(1 / Math.sqrt(dh))]);
    const Pr = g.op('Softmax', [g.op('Where', [mask, S, g.scalarF32(-1e9)])], { axis: -1 });
    const O = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [Pr, V])], { perm: [0, 2, 1, 3] }), g.i64([0, 0, d])]);
    const y1 = g.op('Add', [lin(O, 'wo', blk.wo), a]);
    const b = ln(y1, blk.ln2.gamma.name.replace(/\.gamma$/, ''), blk.ln2.gamma.p, blk.ln2.beta.p, blk.ln2.eps);
    x = g.op('Add', [b, lin(lin(b, 'ff1', blk.ff1), 'ff2', blk.ff2)]);
  }
  const h = ln(x, 'ln.final', t.lnFinal.gamma.p, t.lnFinal.beta.p, t.lnFinal.eps);
  const last = g.op('Unsqueeze', [g.op('And', [k.valid, g.op('Equal', [k.count, g.i64([1], [])])]), g.i64([2])]);
  const out = g.op('ReduceSum', [g.op('Where', [last, h, g.scalarF32(0)]), g.i64([1])], { keepdims: 0 });
  g.output(g.l2norm(out), { name: 'embedding', type: DT.FLOAT, shape: ['batch', d] });
  return g;
}

/** Mean-pool tower: the last position's running mean is the mean of all kept items, then the dense layer. */
function meanPoolGraph(t: MeanPoolTower): GraphBuilder {
  const { numItems, maxLen: L } = t.config;
  const d = t.dim;
  const g = new GraphBuilder('towerlab-meanpool-tower');
  const k = keptTokens(g, itemInput(g), numItems, L);
  const E = g.op('Gather', [g.f32('item.emb', t.items.data.subarray(0, numItems * d), [numItems, d]), k.items], { axis: 0 });
  const sum = g.op('ReduceSum', [g.op('Where', [g.op('Unsqueeze', [k.valid, g.i64([2])]), E, g.scalarF32(0)]), g.i64([1])], { keepdims: 0 });
  const n = g.op('ReduceSum', [g.op('Cast', [k.valid], { to: DT.FLOAT }), g.i64([1])], { keepdims: 1 });
  const c = g.op('Div', [sum, g.op('Max', [n, g.scalarF32(1)])]);
  // A row with no kept item: the tower gives it no token, the server a zero query; c = 0 would give the bias.
  const h = g.op('Where', [g.op('Greater', [n, g.scalarF32(0)]), g.linear(c, 'proj', t.proj.w, t.proj.b, d, d), g.scalarF32(0)]);
  g.output(g.l2norm(h), { name: 'embedding', type: DT.FLOAT, shape: ['batch', d] });
  return g;
}
