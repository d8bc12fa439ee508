/** `towerlab recommend`: top-K items for one user of a saved model, excluding what the user has seen. */
import { getBackend } from '../compute/index.ts';
import { csrRow } from '../data/csr.ts';
import { UserError } from '../util/errors.ts';
import { seqModelDir } from '../seq/saved-model.ts';
import { openModel } from '../model/open.ts';
import { seqRecommendCommand } from './seq-model.ts';
import type { RecommendCommandOptions } from './options.ts';
import { printJsonLast } from './output.ts';
import { itemLine, itemNamesFrom, named } from './item-names-option.ts';
import { openTextModel, textModelDir } from '../bundle/text.ts';
import { TextModel } from '../api/text-model.ts';

/** The best documents for a query text (exact: every chunk scored, a document by its best chunk). */
async function textRecommend(o: RecommendCommandOptions, dir: string): Promise<void> {
  const k = Number(o.k);
  if (!Number.isInteger(k) || k <= 0) throw new UserError(`--k: must be a positive integer, got '${o.k}'`);
  if (o.user !== undefined || o.history !== undefined) throw new UserError(`${o.model}: a text dual encoder takes --query <text>, not --user or --history`);
  if (o.query === undefined || !o.query.trim()) throw new UserError('recommend: --query <text> is required for a text model');
  const m = openTextModel(dir, o.corpus);
  const model = new TextModel(m.encoder, m.corpus, await getBackend());
  if (!m.corpus.tokenizer.words(o.query).length) throw new UserError(`--query: '${o.query}' has no searchable words (after lowercasing and stop-word removal)`);
  const titles = m.corpus.data.titles;
  const index = new Map(m.corpus.data.docIds.map((id, i) => [id, i]));
  const docs = model.recommend(o.query, k).map((r) => {
    const title = titles[index.get(r.item)!];
    return title ? { item: r.item, name: title, score: r.score } : r;
  });
  if (o.json) printJsonLast({ query: o.query, k, documents: docs.map((d) => ({ id: d.item, ...('name' in d ? { title: d.name } : {}), score: d.score })) });
  else {
    process.stdout.write(`top ${docs.length} documents for '${o.query}':\n`);
    docs.forEach((d, r) => process.stdout.write(itemLine(r + 1, d)));
  }
}

export async function recommendCommand(o: RecommendCommandOptions): Promise<void> {
  const textDir = textModelDir(o.model);
  if (textDir) return textRecommend(o, textDir);
  if (o.query !== undefined || o.corpus !== undefined) throw new UserError(`--query/--corpus apply to text dual encoders (towerlab text --out) only; '${o.model}' is not one`);
  const seqDir = seqModelDir(o.model);
  if (seqDir) return seqRecommendCommand(o, seqDir);
  const k = Number(o.k);
  if (!Number.isInteger(k) || k <= 0) throw new UserError(`--k: must be a positive integer, got '${o.k}'`);
  if (o.history !== undefined) throw new UserError('--history applies to sequence models (towerlab seq --out) only; give --user');
  if (o.user === undefined) throw new UserError('recommend: --user <id> is required');
  const a = openModel(o.model);
  const u = a.userIds.indexOf(String(o.user));
  if (u < 0) throw new UserError(`unknown user '${o.user}': the model knows ${a.userIds.length} users (ids as in the training data)`);
  const backend = await getBackend();
  const m = a.model;
  const itemEmb = m.embedAllItems(backend);
  const q = new Float32Array(m.dim);
  m.user.embed(backend, Int32Array.of(u), q);
  const numItems = a.itemIds.length;
  const scores = new Float32Array(numItems);
  backend.gemm(false, true, 1, numItems, m.dim, 1, q, itemEmb, 0, scores);
  const seen = csrRow(a.seen, u);
  if (!o.includeSeen) for (const j of seen) scores[j] = -Infinity;
  const kk = Math.min(k, numItems);
  const idx = new Int32Array(kk);
  const val = new Float32Array(kk);
  backend.topkRows(scores, 1, numItems, kk, idx, val);
  const names = await itemNamesFrom(o, a.itemIds, a.meta?.data?.itemCol, a.itemNames);
  const items = named([...idx].filter((j) => j >= 0).map((j, r) => ({ item: a.itemIds[j], score: val[r] })), a.itemIds, names);
  if (o.json) printJsonLast({ user: String(o.user), k, excludedSeen: !o.includeSeen ? seen.length : 0, items });
  else {
    process.stdout.write(`top ${items.length} for user ${o.user} (${seen.length} training items ${o.includeSeen ? 'included' : 'excluded'}):\n`);
    items.forEach((it, r) => process.stdout.write(itemLine(r + 1, it)));
  }
}
