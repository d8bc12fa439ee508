/**
 * A new user (not in the training data) described by features: the checked inputs of the query tower for it.
 * One parser for every caller — the server's `/recommend` and `/embed` `{ features }` and the library's
 * `encodeUsers` / `recommend({ features })` — so both accept, refuse and embed the same values.
 *
 * Rules: a categorical feature takes a string (a boolean reads as its text, as in training data); an unknown
 * value is treated as missing, with a warning. A dense feature takes a number (width 1) or exactly `width`
 * finite numbers; one not given is zeros. A feature the model does not have, a wrong width or a non-finite
 * number is refused in one line naming `features.<name>` and why (`fail` makes the caller's error: a 400 for the
 * server, a UserError for the library). null / undefined = not given (only the library can pass them).
 */
import { isVector } from '../data/features.ts';

export type UserFeatureValue = string | number | boolean | readonly number[] | Float32Array | Float64Array | null | undefined;
/** A new user's features by name, e.g. `{ taste: [0.1, …], region: 'r1' }`. */
export type UserFeatures = Record<string, UserFeatureValue>;

export interface NewUserInput {
  /** Per categorical user feature, the value index (0 = missing). */
  values: number[];
  /** Per dense user feature, its values, or null when not given (zeros). */
  dense: Array<Float32Array | null>;
  /** How many given values the model knows; 0 = nothing to embed the user by. */
  known: number;
  /** One line per unknown categorical value (treated as missing). */
  warnings: string[];
}

export interface UserFeatureSchema {
  categorical: ReadonlyArray<{ name: string; index: ReadonlyMap<string, number> }>;
  dense: ReadonlyArray<{ name: string; width: number }>;
}

const plural = (n: number) => `${n} number${n === 1 ? '' : 's'}`;

function describe(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (isVector(v)) return plural(v.length);
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

export function newUserInput(given: UserFeatures, schema: UserFeatureSchema, fail: (message: string) => Error): NewUserInput {
  const { categorical: feats, dense } = schema;
  if (!feats.length && !dense.length) throw fail('features: this model has no user features; query by user or history instead');
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw fail(`features: expected an object of feature values by name, got ${describe(given)}`);
  const values = new Array<number>(feats.length).fill(0);
  const denseGiven = new Array<Float32Array | null>(dense.length).fill(null);
  const warnings: string[] = [];
  let known = 0;
  for (const [name, value] of Object.entries(given)) {
    const d = dense.findIndex((f) => f.name === name);
    const i = d >= 0 ? -1 : feats.findIndex((f) => f.name === name);
    if (d < 0 && i < 0) throw fail(`features.${name}: unknown user feature (the model has ${[...feats, ...dense].map((f) => `'${f.name}'`).join(', ')})`);
    if (value === undefined || value === null) continue;
    if (d >= 0) {
      const { width } = dense[d];
      const arr = typeof value === 'number' ? [value] : value;
      if (!isVector(arr) || arr.length !== width) throw fail(`features.${name}: a dense feature of ${plural(width)}, got ${describe(value)}`);
      for (let j = 0; j < width; j++) {
        if (typeof arr[j] !== 'number' || !Number.isFinite(arr[j])) throw fail(`features.${name}${typeof value === 'number' ? '' : `[${j}]`}: not a finite number (got ${String(arr[j])})`);
      }
      denseGiven[d] = Float32Array.from(arr);
      known++;
      continue;
    }
    if (typeof value !== 'string' && typeof value !== 'boolean') throw fail(`features.${name}: a categorical feature takes a string value`);
    const v = feats[i].index.get(String(value));
    if (v === undefined || v === 0) warnings.push(`features.${name}: unknown value '${value}', treated as missing`);
    else {
      values[i] = v;
      known++;
    }
  }
  return { values, dense: denseGiven, known, warnings };
}
