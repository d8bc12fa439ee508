/**
 * ONNX graph of the id + feature query tower (src/model/tower.ts, as served by bundle/query-tower.ts):
 *   x = [id row ‖ feature rows ‖ projected dense features] → MLP (ReLU between layers) → L2 normalisation.
 * Inputs (int64, batch dimension dynamic):
 *   user_index [batch]      the user's row in the vocabulary; outside [0, users) = a user the model does not
 *                           know, who gets the mean id row (QueryTower.embedFeatures);
 *   feature_<k> [batch]     one per user feature: the value index (0 = missing), or −1 for the user's stored
 *                           value (a known user; an unknown user has none: 0). Out-of-range values count as 0.
 * Float32 inputs, one per dense (numeric / vector) user feature, after the categorical ones:
 *   dense_<k> [batch, width] the feature's values; a NaN element takes the known user's stored value (0 for an
 *                           unknown user), so all-NaN rows ask for the stored vector, like −1 does for feature_<k>.
 *                           The values go through the feature's linear projection (src/model/tower.ts).
 * Output: embedding [batch, dim], float32, unit rows.
 */
import type { QueryTowerWeights } from '../bundle/query-tower.ts';
import { GraphBuilder } from './graph-builder.ts';
import { DT } from './proto.ts';

export function idTowerGraph(q: QueryTowerWeights, name = 'user'): GraphBuilder {
  const { config, featTables, featValues, layers } = q;
  const V = config.vocabSize;
  const g = new GraphBuilder(`towerlab-${name}-tower`);
  const idx = g.input({ name: 'user_index', type: DT.INT64, shape: ['batch'], doc: 'user row in the vocabulary; out of range = unknown user (mean id embedding)' });
  const knownFlat = g.inRange(idx, V);
  const known = g.op('Unsqueeze', [knownFlat, g.i64([1])]);
  const safe = g.safeIndex(idx, knownFlat);
  const idRow = g.op('Gather', [g.f32(`${name}.id.emb`, q.idTable.subarray(0, V * config.idDim), [V, config.idDim]), safe], { axis: 0 });
  const parts = [g.op('Where', [known, idRow, g.f32(`${name}.id.mean`, q.idMean, [1, config.idDim])])];
  config.features.forEach((f, k) => {
    const v = g.input({ name: `feature_${k}`, type: DT.INT64, shape: ['batch'], doc: `feature '${f.name}': value index (0 = missing), or -1 for the stored value of a known user` });
    // The stored value of a known user (0 for an unknown one); −1 asks for it, anything else is used as given.
    const table = g.tensor(`${name}.feature${k}.values`, DT.INT32, [V], featValues[k].subarray(0, V));
    const stored = g.op('Where', [knownFlat, g.op('Cast', [g.op('Gather', [table, safe], { axis: 0 })], { to: DT.INT64 }), g.i64([0], [])]);
    const val = g.op('Where', [g.op('Equal', [v, g.i64([-1], [])]), stored, v]);
    const ok = g.safeIndex(val, g.inRange(val, f.cardinality));
    parts.push(g.op('Gather', [g.f32(`${name}.feature${k}.emb`, featTables[k], [f.cardinality, f.dim]), ok], { axis: 0 }));
  });
  (q.dense ?? []).forEach((f, k) => {
    const v = g.input({ name: `dense_${k}`, type: DT.FLOAT, shape: ['batch', f.width], doc: `dense feature '${f.name}' (${f.width} values); NaN = the stored value of a known user (0 for an unknown one)` });
    const table = g.f32(`${name}.dense${k}.values`, f.values.subarray(0, V * f.width), [V, f.width]);
    const stored = g.op('Where', [known, g.op('Gather', [table, safe], { axis: 0 }), g.scalarF32(0)]);
    const x = g.op('Where', [g.op('IsNaN', [v]), stored, v]);
    parts.push(g.linear(x, `${name}.dense${k}`, f.w, f.b, f.width, f.dim));
  });
  let x = parts.length > 1 ? g.op('Concat', parts, { axis: 1 }) : parts[0];
  layers.forEach((l, i) => (x = g.linear(x, `${name}.mlp${i}`, l.w, l.b, l.inDim, l.outDim, l.relu)));
  g.output(g.l2norm(x), { name: 'embedding', type: DT.FLOAT, shape: ['batch', q.outDim] });
  return g;
}
