/**
 * Loader for BEIR-format retrieval folders (Thakur et al. 2021):
 *   corpus.jsonl[.gz]   one {"_id", "title"?, "text"} per line
 *   queries.jsonl[.gz]  one {"_id", "text"} per line
 *   qrels/<split>.tsv   `query-id<TAB>corpus-id<TAB>score` with a header line
 * Documents and queries get dense indices in file order; qrels are kept per split as (query, doc, grade)
 * triples over those indices. Malformed input throws InputError naming file:line and the field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError, UserError } from '../util/errors.ts';

export interface Qrels {
  /** Triples, one entry per judged (query, doc) pair, in file order. */
  query: Int32Array;
  doc: Int32Array;
  grade: Int32Array;
}

export interface BeirData {
  dir: string;
  docIds: string[];
  titles: string[];
  texts: string[];
  queryIds: string[];
  queries: string[];
  /** Present splits only (e.g. train, dev, test). */
  qrels: Map<string, Qrels>;
}

function readMaybeGz(dir: string, name: string, required: boolean): { path: string; text: string } | null {
  for (const p of [join(dir, name), join(dir, `${name}.gz`)]) {
    if (!existsSync(p)) continue;
    const raw = readFileSync(p);
    return { path: p, text: p.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8') };
  }
  if (required) throw new UserError(`${join(dir, name)}: missing (nor ${name}.gz): not a BEIR folder`);
  return null;
}

/** Parses JSONL into objects with a string `_id` and `text` (and optional string `title`). */
function parseJsonl(path: string, text: string, withTitle: boolean): Array<{ id: string; title: string; text: string }> {
  const out: Array<{ id: string; title: string; text: string }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let o: any;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new InputError(path, i + 1, undefined, `not valid JSON: ${(e as Error).message}`);
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new InputError(path, i + 1, undefined, 'expected a JSON object');
    const id = o._id;
    if (typeof id !== 'string' && typeof id !== 'number') throw new InputError(path, i + 1, '_id', 'missing or not a string');
    if (typeof o.text !== 'string') throw new InputError(path, i + 1, 'text', 'missing or not a string');
    let title = '';
    if (withTitle && o.title !== undefined && o.title !== null) {
      if (typeof o.title !== 'string') throw new InputError(path, i + 1, 'title', 'not a string');
      title = o.title;
    }
    out.push({ id: String(id), title, text: o.text });
  }
  return out;
}

function indexIds(path: string, ids: string[]): Map<string, number> {
  const m = new Map<string, number>();
  ids.forEach((id, i) => {
    if (m.has(id)) throw new InputError(path, undefined, '_id', `duplicate id '${id}'`);
    m.set(id, i);
  });
  return m;
}

/** Parses one qrels TSV (header line first). Unknown query/doc ids are errors: they would silently lower recall. */
export function parseQrels(path: string, text: string, qIndex: Map<string, number>, dIndex: Map<string, number>): Qrels {
  const q: number[] = [];
  const d: number[] = [];
  const g: number[] = [];
  const lines = text.split('\n');
  if (lines.length && !/query/i.test(lines[0]) && lines[0].split('\t').length >= 3 && Number.isInteger(Number(lines[0].split('\t')[2]))) {
    throw new InputError(path, 1, undefined, "expected a header line ('query-id\tcorpus-id\tscore'), got data");
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (!line.trim()) continue;
    const f = line.split('\t');
    if (f.length < 3) throw new InputError(path, i + 1, undefined, `expected 3 tab-separated fields (query-id, corpus-id, score), got ${f.length}`);
    const qi = qIndex.get(f[0]);
    if (qi === undefined) throw new InputError(path, i + 1, 'query-id', `unknown query '${f[0]}'`);
    const di = dIndex.get(f[1]);
    if (di === undefined) throw new InputError(path, i + 1, 'corpus-id', `unknown document '${f[1]}'`);
    const s = Number(f[2]);
    if (f[2].trim() === '' || !Number.isInteger(s)) throw new InputError(path, i + 1, 'score', `not an integer: '${f[2]}'`);
    q.push(qi);
    d.push(di);
    g.push(s);
  }
  return { query: Int32Array.from(q), doc: Int32Array.from(d), grade: Int32Array.from(g) };
}

export function loadBeir(dir: string, splits: string[] = ['train', 'dev', 'test']): BeirData {
  if (!existsSync(dir)) throw new UserError(`${dir}: no such directory`);
  const c = readMaybeGz(dir, 'corpus.jsonl', true)!;
  const docs = parseJsonl(c.path, c.text, true);
  const qf = readMaybeGz(dir, 'queries.jsonl', true)!;
  const qs = parseJsonl(qf.path, qf.text, false);
  const dIndex = indexIds(c.path, docs.map((x) => x.id));
  const qIndex = indexIds(qf.path, qs.map((x) => x.id));
  const qrels = new Map<string, Qrels>();
  for (const s of splits) {
    const p = join(dir, 'qrels', `${s}.tsv`);
    if (existsSync(p)) qrels.set(s, parseQrels(p, readFileSync(p, 'utf8'), qIndex, dIndex));
  }
  if (!qrels.size) throw new UserError(`${join(dir, 'qrels')}: no qrels file (${splits.map((s) => `${s}.tsv`).join(', ')})`);
  return {
    dir,
    docIds: docs.map((x) => x.id),
    titles: docs.map((x) => x.title),
    texts: docs.map((x) => x.text),
    queryIds: qs.map((x) => x.id),
    queries: qs.map((x) => x.text),
    qrels,
  };
}

/** Per query: its judged docs with grade > 0 (relevant), as a Map doc → grade. Queries without any are absent. */
export function relevantByQuery(q: Qrels): Map<number, Map<number, number>> {
  const m = new Map<number, Map<number, number>>();
  for (let i = 0; i < q.query.length; i++) {
    if (q.grade[i] <= 0) continue;
    let r = m.get(q.query[i]);
    if (!r) m.set(q.query[i], (r = new Map()));
    r.set(q.doc[i], q.grade[i]);
  }
  return m;
}
