/**
 * Collapse detection: a run whose validation metric peaks early and then keeps falling while the training loss
 * keeps falling has learnt something that no longer ranks (e.g. embeddings blown up by hard false negatives).
 * Early stopping hides it behind the peak epoch's weights; this says it happened, so a result is never
 * reported, or averaged, as a normal one.
 *
 * Rule: with the validations v_1 … v_m in order, the first peak p is the first validation followed by a
 * lower one. The run collapsed when (a) the `window` validations after p each fall below their predecessor,
 * (b) the training loss at the last of them is below the loss at p, (c) v_{p+window} is at least `minDrop`
 * (relative) below v_p, and (d) no later validation exceeds v_p (the run never recovered).
 * (c) separates a collapse from the few-percent drift of ordinary over-fitting at the end of a healthy run.
 */
export interface CollapseCheck {
  collapsed: boolean;
  /** Epoch and value of the first validation peak (null without validations). */
  peakEpoch: number | null;
  peak: number | null;
  /** Validation value and training loss at the end of the fall (when collapsed). */
  fallenTo?: number;
  lossAtPeak?: number;
  lossAfter?: number;
}

export const COLLAPSE_MIN_DROP = 0.2;

export function detectCollapse(history: Array<{ epoch: number; loss: number; val?: number }>, window: number, minDrop = COLLAPSE_MIN_DROP): CollapseCheck {
  const v = history.filter((h) => h.val !== undefined && Number.isFinite(h.val)) as Array<{ epoch: number; loss: number; val: number }>;
  if (!v.length) return { collapsed: false, peakEpoch: null, peak: null };
  let p = 0;
  while (p + 1 < v.length && v[p + 1].val >= v[p].val) p++;
  const peak = v[p];
  const w = Math.max(1, window);
  const none = { collapsed: false, peakEpoch: peak.epoch, peak: peak.val };
  if (p + w >= v.length) return none;
  for (let k = p + 1; k <= p + w; k++) if (!(v[k].val < v[k - 1].val)) return none;
  const end = v[p + w];
  if (!(end.loss < peak.loss)) return none;
  if (!(end.val <= (1 - minDrop) * peak.val)) return none;
  for (let k = p + w + 1; k < v.length; k++) if (v[k].val > peak.val) return none;
  return { collapsed: true, peakEpoch: peak.epoch, peak: peak.val, fallenTo: end.val, lossAtPeak: peak.loss, lossAfter: end.loss };
}

/** The one stderr line that reports a collapse. */
export function collapseLine(c: CollapseCheck, metric: string, window: number): string {
  return (
    `warning: training collapsed: validation ${metric} peaked at epoch ${c.peakEpoch} (${c.peak?.toFixed(4)}) and fell for ${window} validations to ` +
    `${c.fallenTo?.toFixed(4)} while the training loss fell (${c.lossAtPeak?.toFixed(4)} → ${c.lossAfter?.toFixed(4)}); the reported model is the peak epoch's`
  );
}
