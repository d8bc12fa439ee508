/**
 * State that training learns outside the model's weights and must survive --resume for a resumed run to match
 * an uninterrupted one: the memory queue's contents and the momentum tower. Saved as extra named arrays of the
 * checkpoint (prefix `train.`), so it is written atomically together with the weights it belongs to.
 */
/** A named array of a checkpoint (model/tensor-file.ts NamedArray; repeated here so util depends on nothing later). */
export type NamedArray = Float32Array | Int32Array;

export type StateArrays = Array<[string, NamedArray]>;

/** Something whose state is a set of named arrays. */
export interface Stateful {
  stateArrays(): StateArrays;
  /** Copies the arrays back; throws naming the array when a shape does not match. */
  restoreState(get: (name: string) => NamedArray | undefined): void;
}

/** Copies a saved array into `into`, checking that it exists and matches in length. */
export function restoreInto(get: (name: string) => NamedArray | undefined, name: string, into: NamedArray): void {
  const a = get(name);
  if (!a) throw new RangeError(`checkpoint has no '${name}' (it was written by a run with another recipe)`);
  if (a.length !== into.length) throw new RangeError(`checkpoint '${name}' has ${a.length} values, this run needs ${into.length}`);
  into.set(a as never);
}
