/** Generated BEIR folders with planted structure for the text-retrieval tests. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/util/rng.ts';

const FILLER = Array.from({ length: 30 }, (_, i) => `filler${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`);

/** n docs; doc i: "key<i>" + fillers in 3 sentences; queries 2i (train) and 2i+1 (test): "syn<i>" + fillers. */
export function synonymSet(n: number, seed: number): string {
  const rng = new Rng(seed);
  const fill = (k: number) => Array.from({ length: k }, () => FILLER[rng.int(FILLER.length)]).join(' ');
  const dir = mkdtempSync(join(tmpdir(), 'beir-syn-'));
  mkdirSync(join(dir, 'qrels'));
  const docs: string[] = [];
  const qs: string[] = [];
  let train = 'query-id\tcorpus-id\tscore\n';
  let testQ = 'query-id\tcorpus-id\tscore\n';
  for (let i = 0; i < n; i++) {
    docs.push(JSON.stringify({ _id: `d${i}`, title: `key${i} ${fill(1)}`, text: `${fill(2)} key${i} ${fill(2)}. ${fill(2)} key${i}. ${fill(3)} key${i} ${fill(1)}.` }));
    qs.push(JSON.stringify({ _id: `q${2 * i}`, text: `syn${i} ${fill(1)}` }), JSON.stringify({ _id: `q${2 * i + 1}`, text: `${fill(1)} syn${i}` }));
    train += `q${2 * i}\td${i}\t1\n`;
    testQ += `q${2 * i + 1}\td${i}\t1\n`;
  }
  writeFileSync(join(dir, 'corpus.jsonl'), docs.join('\n') + '\n');
  writeFileSync(join(dir, 'queries.jsonl'), qs.join('\n') + '\n');
  writeFileSync(join(dir, 'qrels', 'train.tsv'), train);
  writeFileSync(join(dir, 'qrels', 'test.tsv'), testQ);
  return dir;
}

