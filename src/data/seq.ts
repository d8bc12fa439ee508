/**
 * The plain sequential text format used by SASRec-family datasets: one line per user, `user item item ...`,
 * items in time order. Parsed directly in JS (a line is a variable-length record, not a table); times are the
 * position of each item in its user's history, so temporal and leave-one-out splits work unchanged.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../util/errors.ts';
import { checkReadable } from './table.ts';
import { Vocab, type Interactions } from './types.ts';

/** An Int32Array that grows by doubling. */
class IntList {
  data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

export function readSeq(path: string): Interactions & { notes: string[] } {
  checkReadable(path);
  const text = readFileSync(path, 'utf8');
  const userVocab = new Vocab();
  const itemVocab = new Vocab();
  const users = new IntList();
  const items = new IntList();
  const pos = new IntList(); // position within the user's history
  const nextPos = new IntList(); // per user: next position (a user may span lines)
  let emptyLines = 0;
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let line = 1; start < text.length; line++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const s = text.slice(start, end).trim();
    start = end + 1;
    if (s === '') continue;
    const tokens = s.split(/\s+/);
    for (let k = 0; k < tokens.length; k++) {
      if (tokens[k].includes(',') || tokens[k].includes(';')) {
        throw new InputError(
          path,
          line,
          k === 0 ? 'user' : 'item',
          `unexpected separator in id '${tokens[k]}'; sequence files are 'user item item ...' separated by spaces (is this a CSV file? then give format 'csv')`,
        );
      }
    }
    if (tokens.length < 2) {
      emptyLines++;
      continue;
    }
    const u = userVocab.add(tokens[0]);
    if (u === nextPos.length) nextPos.push(0);
    let p = nextPos.data[u];
    for (let k = 1; k < tokens.length; k++) {
      users.push(u);
      items.push(itemVocab.add(tokens[k]));
      pos.push(p++);
    }
    nextPos.data[u] = p;
  }
  if (users.length === 0) throw new InputError(path, undefined, undefined, 'no data rows (no line has a user followed by items)');
  const notes: string[] = [];
  if (emptyLines > 0) notes.push(`${emptyLines} line(s) had a user but no items`);
  return {
    source: path,
    users: users.toArray(),
    items: items.toArray(),
    times: Float64Array.from(pos.toArray()),
    ratings: null,
    userVocab,
    itemVocab,
    userFeatures: [],
    itemFeatures: [],
    notes,
  };
}
