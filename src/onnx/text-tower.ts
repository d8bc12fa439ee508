/**
 * ONNX graph of the bag-of-embeddings text query tower (src/text/boe-tower.ts):
 *   p = Σ_t E[id_t] / z  (z = count for 'mean', √count for 'sqrt', 1 for an empty bag),  h = p W + b (optional),
 *   y = h / ‖h‖.
 * Tokenisation stays outside the graph: the caller hashes the query into feature ids with the tokenizer whose
 * parameters travel beside the model (see docs/onnx.md) and pads rows to a common length.
 * Input: token_ids int64 [batch, len]; values outside [0, buckets) are padding (use −1).
 * Output: embedding [batch, dim] (an empty bag gives a zero row, or the normalised bias with a dense layer).
 */
import type { BoeTower } from '../text/boe-tower.ts';
import { GraphBuilder } from './graph-builder.ts';
import { DT } from './proto.ts';

export function boeTowerGraph(t: BoeTower): GraphBuilder {
  const { buckets: B, dim: d, pooling } = t.config;
  const g = new GraphBuilder('towerlab-text-boe-tower');
  const ids = g.input({ name: 'token_ids', type: DT.INT64, shape: ['batch', 'len'], doc: 'hashed feature ids of each query, padded with -1' });
  const valid = g.inRange(ids, B);
  const E = g.op('Gather', [g.f32('emb', t.table.data, [B, d]), g.safeIndex(ids, valid)], { axis: 0 });
  const sum = g.op('ReduceSum', [g.op('Where', [g.op('Unsqueeze', [valid, g.i64([2])]), E, g.scalarF32(0)]), g.i64([1])], { keepdims: 0 });
  const n = g.op('Max', [g.op('ReduceSum', [g.op('Cast', [valid], { to: DT.FLOAT }), g.i64([1])], { keepdims: 1 }), g.scalarF32(1)]);
  let h = g.op('Div', [sum, pooling === 'mean' ? n : g.op('Sqrt', [n])]);
  if (t.dense) h = g.linear(h, 'dense', t.dense.w, t.dense.b, d, t.outDim);
  g.output(g.l2norm(h), { name: 'embedding', type: DT.FLOAT, shape: ['batch', t.outDim] });
  return g;
}
