/**
 * The in-memory shape of an interaction log after reading: dense integer ids per row, vocabularies that map
 * them back to the file's ids, and optional categorical side features per user and per item.
 */
export class Vocab {
  readonly ids: string[] = [];
  /** id -> index; built lazily for vocabularies made by fromUnique, which may never be searched. */
  private index: Map<string, number> | null = new Map<string, number>();

  /** Index of `id`, adding it if new. */
  add(id: string): number {
    const index = this.lookup();
    let i = index.get(id);
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(id);
      index.set(id, i);
    }
    return i;
  }

  /** Index of `id`, or undefined when unknown. */
  get(id: string): number | undefined {
    return this.lookup().get(id);
  }

  get size(): number {
    return this.ids.length;
  }

  static from(ids: Iterable<string>): Vocab {
    const v = new Vocab();
    for (const id of ids) v.add(id);
    return v;
  }

  /** A vocabulary over ids the caller guarantees distinct (e.g. generated ones); the lookup map is built on first use. */
  static fromUnique(ids: string[]): Vocab {
    const v = new Vocab();
    for (let k = 0; k < ids.length; k++) v.ids.push(ids[k]);
    v.index = null;
    return v;
  }

  private lookup(): Map<string, number> {
    if (this.index === null) {
      this.index = new Map();
      for (let i = 0; i < this.ids.length; i++) this.index.set(this.ids[i], i);
    }
    return this.index;
  }
}

/** One categorical feature of an entity (user or item): values[entity] is an index into vocab. */
export interface CategoricalFeature {
  name: string;
  vocab: Vocab;
  /** One value per entity (length = number of users or items); 0 is reserved for "missing". */
  values: Int32Array;
}

/**
 * One numeric or vector feature of an entity (e.g. a price, or a precomputed content embedding): values is
 * entities×width, row-major. Missing values should be filled by the caller (zeros are used when absent).
 */
export interface DenseFeature {
  name: string;
  width: number;
  values: Float32Array;
}

export interface Interactions {
  /** Where it came from, for messages and reports. */
  source: string;
  users: Int32Array;
  items: Int32Array;
  /** Event time (any monotone unit, e.g. seconds), or null when the source has none. */
  times: Float64Array | null;
  /** Rating / weight per row, or null. */
  ratings: Float32Array | null;
  userVocab: Vocab;
  itemVocab: Vocab;
  userFeatures: CategoricalFeature[];
  itemFeatures: CategoricalFeature[];
  /** Dense (numeric / vector) side features; absent = none. */
  userDense?: DenseFeature[];
  itemDense?: DenseFeature[];
  /** What the loader decided on the reader's behalf (auto-detected columns, dropped rows), for logs. */
  notes?: string[];
  /** Column names of a tabular source (so files of one fixed split can be checked to agree); absent otherwise. */
  columns?: string[];
}

/** Row indices (into Interactions arrays) of each part of a split. */
export interface Split {
  train: Int32Array;
  val: Int32Array;
  test: Int32Array;
  /** How it was made, e.g. "temporal(val=0.1,test=0.1)", for reports. */
  description: string;
}
