/**
 * A momentum (EMA) copy of a tower, as MoCo's key encoder: θ_m ← m·θ_m + (1−m)·θ after every step.
 * Dense layers are averaged every step. Embedding tables are averaged lazily, when a row is read: a row last
 * synchronised k steps ago becomes m^k·row_m + (1−m^k)·row (exact if the online row did not move since;
 * otherwise a close approximation) — so a step costs O(rows read), not O(table size).
 */
import type { Backend } from '../compute/backend.ts';
import { restoreInto, type StateArrays, type Stateful } from '../train/training-state.ts';
import type { NamedArray } from './tensor-file.ts';
import { Tower } from './tower.ts';

export class MomentumTower implements Stateful {
  readonly shadow: Tower;
  private readonly lastSync: Int32Array[];
  private step = 0;

  constructor(
    private readonly online: Tower,
    readonly m: number,
  ) {
    this.shadow = new Tower(`${online.name}.momentum`, online.config, online.optim, online.featureValues, online.denseValues);
    const src = [online.idTable, ...online.featTables];
    [this.shadow.idTable, ...this.shadow.featTables].forEach((t, i) => t.data.set(src[i].data));
    const onlineDense = online.denseLayers;
    this.shadow.denseLayers.forEach((l, i) => {
      l.w.set(onlineDense[i].w);
      l.b.set(onlineDense[i].b);
    });
    this.lastSync = src.map((t) => new Int32Array(t.rows));
  }

  stateArrays(): StateArrays {
    const out: StateArrays = [['momentum.step', Int32Array.of(this.step)]];
    [this.shadow.idTable, ...this.shadow.featTables].forEach((t, i) => out.push([`momentum.table${i}`, t.data], [`momentum.sync${i}`, this.lastSync[i]]));
    this.shadow.denseLayers.forEach((l, i) => out.push([`momentum.layer${i}.w`, l.w], [`momentum.layer${i}.b`, l.b]));
    return out;
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    const step = new Int32Array(1);
    restoreInto(get, 'momentum.step', step);
    this.step = step[0];
    [this.shadow.idTable, ...this.shadow.featTables].forEach((t, i) => {
      restoreInto(get, `momentum.table${i}`, t.data);
      restoreInto(get, `momentum.sync${i}`, this.lastSync[i]);
    });
    this.shadow.denseLayers.forEach((l, i) => {
      restoreInto(get, `momentum.layer${i}.w`, l.w);
      restoreInto(get, `momentum.layer${i}.b`, l.b);
    });
  }

  /** One EMA step of the dense layers (tables catch up lazily in embed). */
  update(): void {
    this.step++;
    const m = this.m;
    const online = this.online.denseLayers;
    this.shadow.denseLayers.forEach((l, i) => {
      const o = online[i];
      for (let k = 0; k < l.w.length; k++) l.w[k] = m * l.w[k] + (1 - m) * o.w[k];
      for (let k = 0; k < l.b.length; k++) l.b[k] = m * l.b[k] + (1 - m) * o.b[k];
    });
  }

  /** Embeds `ids` with the momentum weights (n×outDim into out). */
  embed(backend: Backend, ids: Int32Array, out: Float32Array): void {
    const tables = [this.shadow.idTable, ...this.shadow.featTables];
    const online = [this.online.idTable, ...this.online.featTables];
    for (let t = 0; t < tables.length; t++) {
      const rowsOf = t === 0 ? null : this.shadow.featureValues[t - 1];
      const last = this.lastSync[t];
      const d = tables[t].dim;
      const dst = tables[t].data;
      const src = online[t].data;
      for (let r = 0; r < ids.length; r++) {
        const row = rowsOf ? rowsOf[ids[r]] : ids[r];
        const k = this.step - last[row];
        if (k <= 0) continue;
        const f = Math.pow(this.m, k);
        const o = row * d;
        for (let j = 0; j < d; j++) dst[o + j] = f * dst[o + j] + (1 - f) * src[o + j];
        last[row] = this.step;
      }
    }
    this.shadow.embed(backend, ids, out);
  }
}
