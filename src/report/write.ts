/** Writes a comparison report directory: results.json and the self-contained index.html, each atomically. */
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { renderReport } from './html.ts';
import { resultsJson, type CompareResults } from './results.ts';

export interface ReportPaths {
  results: string;
  html: string;
}

export function reportPaths(dir: string): ReportPaths {
  return { results: join(dir, 'results.json'), html: join(dir, 'index.html') };
}

/** results.json only: cheap, rewritten after every run so a crash keeps the runs already done. */
export function writeResults(dir: string, r: CompareResults): ReportPaths {
  const p = reportPaths(dir);
  writeFileAtomic(p.results, resultsJson(r));
  return p;
}

export async function writeReport(dir: string, r: CompareResults): Promise<ReportPaths> {
  const html = await renderReport(r);
  const p = writeResults(dir, r);
  writeFileAtomic(p.html, html);
  return p;
}
