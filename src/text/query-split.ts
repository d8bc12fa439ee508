/**
 * A dev split carved out of a qrels split by query: SciFact (like several BEIR sets) ships train and test only,
 * so anything chosen or fitted beyond the retriever itself (a reranker, a held-out check) uses a seeded
 * fraction of the TRAIN queries instead of peeking at test. All judgments of a query go to the same side.
 */
import { Rng } from '../util/rng.ts';
import type { Qrels } from './beir.ts';

export interface QuerySplit {
  fit: Qrels;
  dev: Qrels;
  devQueries: Int32Array;
}

function subset(q: Qrels, keep: (query: number) => boolean): Qrels {
  const idx: number[] = [];
  for (let i = 0; i < q.query.length; i++) if (keep(q.query[i])) idx.push(i);
  return { query: Int32Array.from(idx, (i) => q.query[i]), doc: Int32Array.from(idx, (i) => q.doc[i]), grade: Int32Array.from(idx, (i) => q.grade[i]) };
}

/** round(fraction · #queries) queries (distinct, in sorted order) go to dev, drawn by `seed`. */
export function splitQrelsByQuery(q: Qrels, fraction: number, seed: number): QuerySplit {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`splitQrelsByQuery: fraction ${fraction} is not in (0, 1)`);
  const queries = [...new Set(q.query)].sort((a, b) => a - b);
  new Rng(seed).shuffle(queries);
  const dev = new Set(queries.slice(0, Math.round(fraction * queries.length)));
  return {
    fit: subset(q, (x) => !dev.has(x)),
    dev: subset(q, (x) => dev.has(x)),
    devQueries: Int32Array.from(dev).sort(),
  };
}
