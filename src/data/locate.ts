/**
 * Turning DuckDB's positions and failures into "FILE:LINE: field 'F': problem". These scans only run after
 * something went wrong, so they favour simplicity over speed.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../util/errors.ts';

/**
 * File line (1-based) of data row `row` (0-based) in a line-per-row file with `headerLines` header lines,
 * skipping blank lines as DuckDB's readers do.
 */
export function lineOfDataRow(path: string, row: number, headerLines: number): number {
  const text = readFileSync(path, 'utf8');
  let line = 0;
  let seen = -1;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    if (line > headerLines && text.slice(start, end).trim() !== '') {
      seen++;
      if (seen === row) return line;
    }
    start = end + 1;
  }
  return row + 1 + headerLines;
}

/** The first line of a JSONL file that is not a JSON object, with the parser's complaint. */
export function firstBadJsonLine(path: string): { line: number; problem: string } | undefined {
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    if (t === '') continue;
    try {
      const v: unknown = JSON.parse(t);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return { line: i + 1, problem: 'not a JSON object' };
    } catch (e) {
      return { line: i + 1, problem: `invalid JSON: ${(e as Error).message}` };
    }
  }
  return undefined;
}

/**
 * Wraps a DuckDB read failure with the file's context. CSV errors carry the file line and a field count,
 * which we keep; anything else becomes "could not parse: <first line of DuckDB's message>".
 */
export function readFailure(file: string, err: unknown, columns: readonly string[] = [], jsonl = false): InputError {
  const msg = err instanceof Error ? err.message : String(err);
  const first = msg.split('\n')[0].replace(/^[A-Za-z ]*Error: /, '');
  const line = /CSV Error on Line: (\d+)/.exec(msg);
  const counts = /Expected Number of Columns: (\d+) Found: (\d+)/.exec(msg);
  if (line && counts) {
    const expected = Number(counts[1]);
    const found = Number(counts[2]);
    const field = found < expected ? columns[found] : undefined;
    return new InputError(file, Number(line[1]), field, `expected ${expected} fields, found ${found}`);
  }
  if (line) return new InputError(file, Number(line[1]), undefined, `could not parse: ${csvReason(msg) ?? first}`);
  if (jsonl) {
    const bad = firstBadJsonLine(file);
    if (bad) return new InputError(file, bad.line, undefined, bad.problem);
  }
  return new InputError(file, undefined, undefined, `could not parse: ${first}`);
}

/** DuckDB's one-line reason in a CSV error: the last non-empty line before "Possible fixes:". */
function csvReason(msg: string): string | undefined {
  const lines = msg.split('\n');
  const fixes = lines.findIndex((l) => l.startsWith('Possible fixes'));
  for (let k = (fixes < 0 ? lines.length : fixes) - 1; k > 0; k--) {
    const l = lines[k].trim();
    if (l === '') continue;
    return /^(Original Line|CSV Error)/.test(l) ? undefined : l;
  }
  return undefined;
}
