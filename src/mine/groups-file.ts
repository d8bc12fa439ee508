/**
 * Mined groups on disk: one record per training pair, `{user, positive, negatives: [...], scores: [...]}` with
 * the data's own ids, as JSON lines (`.jsonl`, what the `mined` source reads) or Parquet (`.parquet`, through
 * DuckDB's COPY, for other tools). Both written atomically (temporary sibling, then rename).
 */
import { renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { withDuck } from '../data/duck.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import type { MinedGroups } from './mine.ts';

export function groupsToJsonl(g: MinedGroups, users: Int32Array, positives: Int32Array, userIds: string[], itemIds: string[]): string {
  const n = g.negatives.k;
  const lines: string[] = [];
  for (let r = 0; r < users.length; r++) {
    const negs: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = g.negatives.ids[r * n + i];
      if (id < 0) break;
      negs.push(itemIds[id]);
      scores.push(Number(g.negatives.scores[r * n + i].toFixed(5)));
    }
    lines.push(JSON.stringify({ user: userIds[users[r]], positive: itemIds[positives[r]], negatives: negs, scores }));
  }
  return lines.join('\n') + '\n';
}

export async function writeGroups(path: string, jsonl: string): Promise<void> {
  if (path.endsWith('.jsonl') || path.endsWith('.json')) {
    writeFileAtomic(path, jsonl);
    return;
  }
  if (!path.endsWith('.parquet')) throw new UserError(`--out: '${path}' must end in .jsonl or .parquet`);
  const tmpJson = join(dirname(path), `.${basename(path)}.${process.pid}.jsonl`);
  const tmpParquet = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileAtomic(tmpJson, jsonl);
  try {
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    await withDuck(async (duck) => {
      await duck.run(
        `COPY (SELECT * FROM read_json(${q(tmpJson)}, format = 'newline_delimited', columns = {user: 'VARCHAR', positive: 'VARCHAR', negatives: 'VARCHAR[]', scores: 'FLOAT[]'})) TO ${q(tmpParquet)} (FORMAT parquet)`,
      );
    });
    renameSync(tmpParquet, path);
  } finally {
    rmSync(tmpJson, { force: true });
    rmSync(tmpParquet, { force: true });
  }
}
