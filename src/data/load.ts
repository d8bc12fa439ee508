/**
 * Entry point for reading an interaction log: CSV/TSV, Parquet, JSONL (through embedded DuckDB), RecBole atomic
 * files, MovieLens u.data / ratings.dat, the `user item item ...` sequence format, or a `synthetic:` spec.
 *
 * Conventions (deterministic for a given file):
 * - user and item ids are text (trimmed); dense indices follow order of first appearance in the file;
 * - rows keep file order; rows with rating < minRating are dropped (and said so in `notes`);
 * - a categorical feature's value for an entity is its last non-missing value by (time, row) — by row when the file
 *   has no time — over all valid rows, including those below minRating;
 * - bad input is an InputError naming the file, the line (text formats, header included) or row (Parquet), and
 *   the column: a missing/empty id, a time that is neither a number nor a timestamp, a rating that is not a finite
 *   number, a wrong field count, a missing column. Nothing is skipped silently.
 */
import { InputError, UserError } from '../util/errors.ts';
import { withDuck, type Duck, type NumKind } from './duck.ts';
import { checkDense, denseAlias, denseExpr, denseFromQuery, featureAlias, featureFromValues, loadFeatureFile, presentExpr } from './features.ts';
import { COLUMN_CANDIDATES, DATA_FORMATS, detectFormat, pickColumn, type DataFormat } from './format.ts';
import { readSeq } from './seq.ts';
import { generateSynthetic, parseSyntheticSpec } from './synthetic.ts';
import { materialize, numberExpr, openSource, rawValue, requireColumn, textExpr, type Source } from './table.ts';
import { Vocab, type CategoricalFeature, type DenseFeature, type Interactions } from './types.ts';

export interface DataSpec {
  /** A file, or `synthetic:users=…,items=…,clusters=…,zipf=…,seed=…[,perUser=…][,noise=…]`. */
  path: string;
  /** Default: from the file name (see detectFormat). */
  format?: DataFormat;
  /** Default: user_id | userId | user | uid (first present, case-insensitive). */
  userCol?: string;
  /** Default: item_id | itemId | item | iid | movie_id | movieId | product_id | asin. */
  itemCol?: string;
  /** Default: timestamp | time | ts | datetime | date | unix_time when present; else no times. */
  timeCol?: string;
  /** Default: rating | ratings | score | stars when present; else no ratings. */
  ratingCol?: string;
  /** Keep only rows with rating >= minRating (needs a rating column). */
  minRating?: number;
  /** Categorical user features: columns of the interaction file, or of userFeaturesPath when that is given. */
  userFeatureCols?: string[];
  itemFeatureCols?: string[];
  /** A separate per-user file (e.g. ml-100k.user); keyed by userCol or a conventional user column. */
  userFeaturesPath?: string;
  itemFeaturesPath?: string;
  /**
   * Dense (numeric / vector) user / item features: columns of the interaction file, or of the features file when
   * that is given. A cell is a number, a list of numbers (Parquet/JSONL list or array columns) or text `[x, y, …]`;
   * every value of a column has the same width and finite numbers; an entity with no value gets zeros.
   */
  userDenseCols?: string[];
  itemDenseCols?: string[];
}

export async function loadInteractions(spec: DataSpec): Promise<Interactions> {
  if (spec.path.startsWith('synthetic:')) return generateSynthetic(parseSyntheticSpec(spec.path));
  if (spec.format !== undefined && !DATA_FORMATS.includes(spec.format)) {
    throw new UserError(`unknown data format '${spec.format}'; expected one of ${DATA_FORMATS.join(', ')}`);
  }
  const format = spec.format ?? detectFormat(spec.path);
  if (format === 'seq') return loadSeq(spec);
  return withDuck((duck) => loadTabular(duck, spec, format));
}

async function loadSeq(spec: DataSpec): Promise<Interactions> {
  for (const [key, value] of Object.entries(spec)) {
    const inFile = key === 'userFeatureCols' || key === 'userDenseCols' ? !spec.userFeaturesPath : key === 'itemFeatureCols' || key === 'itemDenseCols' ? !spec.itemFeaturesPath : false;
    if (value !== undefined && (['timeCol', 'ratingCol', 'minRating'].includes(key) || inFile)) {
      throw new UserError(`${spec.path}: '${key}' does not apply to a sequence file (it has only users and items in order)`);
    }
  }
  const data = readSeq(spec.path);
  if (spec.userFeaturesPath || spec.itemFeaturesPath) {
    await withDuck(async (duck) => {
      await attachFeatureFiles(duck, spec, data);
    });
  }
  return data;
}

export async function attachFeatureFiles(duck: Duck, spec: DataSpec, data: Interactions): Promise<void> {
  if (spec.userFeaturesPath) {
    const fs = await loadFeatureFile(
      duck,
      { path: spec.userFeaturesPath, entity: 'user', keyCol: spec.userCol, cols: spec.userFeatureCols, denseCols: spec.userDenseCols },
      data.userVocab,
      'user_features',
    );
    data.userFeatures.push(...fs.categorical);
    if (fs.dense.length) data.userDense = [...(data.userDense ?? []), ...fs.dense];
  }
  if (spec.itemFeaturesPath) {
    const fs = await loadFeatureFile(
      duck,
      { path: spec.itemFeaturesPath, entity: 'item', keyCol: spec.itemCol, cols: spec.itemFeatureCols, denseCols: spec.itemDenseCols },
      data.itemVocab,
      'item_features',
    );
    data.itemFeatures.push(...fs.categorical);
    if (fs.dense.length) data.itemDense = [...(data.itemDense ?? []), ...fs.dense];
  }
}

/** The column to use for `role`: the one named in the spec (must exist), else a conventional one (may be absent). */
function resolveColumn(t: Source, named: string | undefined, role: keyof typeof COLUMN_CANDIDATES, picked: string[]): string | undefined {
  if (named !== undefined) return requireColumn(t, named, role);
  const c = pickColumn(t.columns, COLUMN_CANDIDATES[role]);
  if (c !== undefined) picked.push(`${role}='${c}'`);
  return c;
}

async function loadTabular(duck: Duck, spec: DataSpec, format: DataFormat): Promise<Interactions> {
  const file = spec.path;
  const t = await openSource(duck, file, format);

  const picked: string[] = [];
  const userCol = resolveColumn(t, spec.userCol, 'user', picked) ?? requireColumn(t, 'user_id', 'user');
  const itemCol = resolveColumn(t, spec.itemCol, 'item', picked) ?? requireColumn(t, 'item_id', 'item');
  const timeCol = resolveColumn(t, spec.timeCol, 'time', picked);
  const ratingCol = resolveColumn(t, spec.ratingCol, 'rating', picked);
  if (spec.minRating !== undefined && ratingCol === undefined) {
    throw new InputError(file, undefined, undefined, `minRating needs a rating column (set ratingCol); available: ${t.columns.join(', ')}`);
  }
  if (spec.minRating !== undefined && !Number.isFinite(spec.minRating)) {
    throw new UserError(`minRating must be a finite number, got ${spec.minRating}`);
  }
  const userFeat = spec.userFeaturesPath ? [] : (spec.userFeatureCols ?? []).map((c) => requireColumn(t, c, 'user feature'));
  const itemFeat = spec.itemFeaturesPath ? [] : (spec.itemFeatureCols ?? []).map((c) => requireColumn(t, c, 'item feature'));
  const userDense = spec.userFeaturesPath ? [] : (spec.userDenseCols ?? []).map((c) => requireColumn(t, c, 'user dense feature'));
  const itemDense = spec.itemFeaturesPath ? [] : (spec.itemDenseCols ?? []).map((c) => requireColumn(t, c, 'item dense feature'));
  const notes: string[] = [];
  if (picked.length > 0) notes.push(`auto-detected columns: ${picked.join(', ')}`);

  // One typed pass over the file into `ev`; its rowid is the data row, so every later problem can be located.
  const select = [
    `${textExpr(t, userCol)} AS u`,
    `${textExpr(t, itemCol)} AS i`,
    `${timeCol ? numberExpr(t, timeCol, true) : 'NULL::DOUBLE'} AS t`,
    `${ratingCol ? numberExpr(t, ratingCol, false) : 'NULL::DOUBLE'} AS r`,
    ...userFeat.map((c, f) => `${textExpr(t, c)} AS ${featureAlias('user', f)}`),
    ...itemFeat.map((c, f) => `${textExpr(t, c)} AS ${featureAlias('item', f)}`),
    ...userDense.flatMap((c, f) => [`${denseExpr(t, c)} AS ${denseAlias('user', f)}`, `${presentExpr(t, c)} AS ${denseAlias('user', f, true)}`]),
    ...itemDense.flatMap((c, f) => [`${denseExpr(t, c)} AS ${denseAlias('item', f)}`, `${presentExpr(t, c)} AS ${denseAlias('item', f, true)}`]),
  ];
  const total = await materialize(duck, t, 'ev', select);
  if (total === 0) throw new InputError(file, undefined, undefined, 'no data rows');
  await validate(duck, t, { userCol, itemCol, timeCol, ratingCol });
  const denseWidths: Record<'user' | 'item', number[]> = { user: [], item: [] };
  for (const [entity, dcols] of [['user', userDense], ['item', itemDense]] as const) {
    for (let f = 0; f < dcols.length; f++) denseWidths[entity].push(await checkDense(duck, t, 'ev', denseAlias(entity, f), denseAlias(entity, f, true), dcols[f]));
  }

  // `kept` holds the rows we return, in file order: its rowid is the output position.
  let n = total;
  let kept = 'ev';
  if (spec.minRating !== undefined) {
    kept = 'kept';
    await duck.run(`CREATE TEMP TABLE kept AS SELECT u, i, t, r FROM ev WHERE r >= ${spec.minRating} ORDER BY rowid`);
    n = Number(await duck.scalar('SELECT count(*) FROM kept'));
    if (n === 0) throw new InputError(file, undefined, ratingCol, `no rows left with rating >= ${spec.minRating}`);
    notes.push(`minRating ${spec.minRating} kept ${n} of ${total} rows`);
  }

  // Dense ids in order of first appearance.
  for (const [tab, col, idx] of [['uv', 'u', 'ux'], ['iv', 'i', 'ix']]) {
    await duck.run(
      `CREATE TEMP TABLE ${tab} AS SELECT ${col}, (row_number() OVER (ORDER BY min(rowid)) - 1)::INTEGER AS ${idx} FROM ${kept} GROUP BY ${col}`,
    );
  }
  const userVocab = Vocab.fromUnique((await duck.stringColumns('SELECT u FROM uv ORDER BY ux'))[0] as string[]);
  const itemVocab = Vocab.fromUnique((await duck.stringColumns('SELECT i FROM iv ORDER BY ix'))[0] as string[]);

  const kinds: NumKind[] = ['i32', 'i32'];
  const cols = ['k.rowid::INTEGER', 'uv.ux', 'iv.ix'];
  if (timeCol) {
    kinds.push('f64');
    cols.push('k.t');
  }
  if (ratingCol) {
    kinds.push('f32');
    cols.push('k.r::FLOAT');
  }
  // Unordered join; rows are put back in file order by position (cheaper than ORDER BY).
  const arrays = await duck.numericColumns(
    `SELECT ${cols.join(', ')} FROM ${kept} k JOIN uv USING (u) JOIN iv USING (i)`,
    n,
    kinds,
    true,
  );
  let k = 2;
  const times = timeCol ? (arrays[k++] as Float64Array) : null;
  const ratings = ratingCol ? (arrays[k++] as Float32Array) : null;

  const data: Interactions = {
    source: file,
    users: arrays[0] as Int32Array,
    items: arrays[1] as Int32Array,
    times,
    ratings,
    userVocab,
    itemVocab,
    userFeatures: await inFileFeatures(duck, 'user', userFeat, userVocab.size, timeCol !== undefined),
    itemFeatures: await inFileFeatures(duck, 'item', itemFeat, itemVocab.size, timeCol !== undefined),
    ...(userDense.length ? { userDense: await inFileDense(duck, 'user', userDense, denseWidths.user, userVocab.size, timeCol !== undefined, file) } : {}),
    ...(itemDense.length ? { itemDense: await inFileDense(duck, 'item', itemDense, denseWidths.item, itemVocab.size, timeCol !== undefined, file) } : {}),
    notes,
    columns: t.columns,
  };
  await attachFeatureFiles(duck, spec, data);
  return data;
}

/** Finds the first row with a bad id, time or rating and reports it with the file's own value. */
async function validate(
  duck: Duck,
  t: Source,
  c: { userCol: string; itemCol: string; timeCol?: string; ratingCol?: string },
): Promise<void> {
  const checks: { col: string; cond: string; problem: (raw: string | null) => string }[] = [
    { col: c.userCol, cond: 'u IS NULL', problem: () => 'missing user id' },
    { col: c.itemCol, cond: 'i IS NULL', problem: () => 'missing item id' },
  ];
  if (c.timeCol) {
    checks.push({
      col: c.timeCol,
      cond: 't IS NULL OR NOT isfinite(t)',
      problem: (raw) => (raw === null || raw.trim() === '' ? 'missing time' : `not a number or a timestamp: '${raw}'`),
    });
  }
  if (c.ratingCol) {
    checks.push({
      col: c.ratingCol,
      cond: 'r IS NULL OR NOT isfinite(r)',
      problem: (raw) => (raw === null || raw.trim() === '' ? 'missing rating' : `not a finite number: '${raw}'`),
    });
  }
  const firsts = (await duck.rows(`SELECT ${checks.map((k) => `min(rowid) FILTER (WHERE ${k.cond})`).join(', ')} FROM ev`))[0];
  let worst = -1;
  for (let k = 0; k < checks.length; k++) {
    const row = firsts[k];
    if (row !== null && (worst < 0 || (row as number) < (firsts[worst] as number))) worst = k;
  }
  if (worst < 0) return;
  const row = firsts[worst] as number;
  const check = checks[worst];
  throw new InputError(t.file, t.locate(row), check.col, check.problem(await rawValue(duck, t, check.col, row)));
}

/** Per-entity features from columns of the interaction file: the last non-missing value by (time, row). */
async function inFileFeatures(duck: Duck, entity: 'user' | 'item', cols: string[], size: number, hasTime: boolean): Promise<CategoricalFeature[]> {
  const [vocabTab, key, idx] = entity === 'user' ? ['uv', 'u', 'ux'] : ['iv', 'i', 'ix'];
  const order = hasTime ? '(e.t, e.rowid)' : 'e.rowid';
  const out: CategoricalFeature[] = [];
  for (let f = 0; f < cols.length; f++) {
    const a = `e.${featureAlias(entity, f)}`;
    const [ids, vals] = await duck.stringColumns(
      `SELECT v.${idx}, arg_max(${a}, ${order}) FILTER (WHERE ${a} IS NOT NULL) FROM ev e JOIN ${vocabTab} v USING (${key}) GROUP BY v.${idx}`,
    );
    const perEntity = new Array<string | null>(size).fill(null);
    for (let r = 0; r < ids.length; r++) perEntity[Number(ids[r])] = vals[r];
    out.push(featureFromValues(cols[f], perEntity));
  }
  return out;
}

/** Per-entity dense features from columns of the interaction file: the last present value by (time, row). */
async function inFileDense(duck: Duck, entity: 'user' | 'item', cols: string[], widths: number[], size: number, hasTime: boolean, file: string): Promise<DenseFeature[]> {
  const [vocabTab, key, idx] = entity === 'user' ? ['uv', 'u', 'ux'] : ['iv', 'i', 'ix'];
  const order = hasTime ? '(e.t, e.rowid)' : 'e.rowid';
  const out: DenseFeature[] = [];
  for (let f = 0; f < cols.length; f++) {
    const a = `e.${denseAlias(entity, f)}`;
    const sql = `SELECT v.${idx}, arg_max(${a}, ${order}) FILTER (WHERE ${a} IS NOT NULL) FROM ev e JOIN ${vocabTab} v USING (${key}) GROUP BY v.${idx}`;
    out.push(await denseFromQuery(duck, sql, cols[f], size, widths[f], file));
  }
  return out;
}
