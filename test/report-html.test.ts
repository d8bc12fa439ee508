/**
 * The HTML report from a hand-made results object (no training, no browser): self-contained, one inline
 * SVG per chart with well-formed markup and page-unique ids, escaped names, and "not recorded" where a
 * result lacks curves, diagnostics or calibration data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReport } from '../src/report/html.ts';
import { writeReport } from '../src/report/write.ts';
import { handMadeResults } from './report-fixture.ts';

const SVG_NS = /https?:\/\/www\.w3\.org\/(2000\/svg|1999\/xlink)/g;

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

function figure(html: string, name: string): string {
  const m = html.match(new RegExp(`<figure class="chart" data-chart="${name}">([\\s\\S]*?)</figure>`));
  assert.ok(m, `chart ${name} present`);
  return m[1];
}

/** Every opened tag is closed in order: enough to catch a truncated or mangled SVG. */
function assertBalanced(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)(?:\s[^>]*?)?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the open tag`);
    else stack.push(name);
  }
  assert.deepEqual(stack, [], 'all tags closed');
}

test('report: self-contained page with the five charts', async () => {
  const html = await renderReport(handMadeResults());
  assert.match(html, /^<!DOCTYPE html>/);
  for (const bad of [/<script/i, /<link/i, /\ssrc=/i, /@import/i]) assert.doesNotMatch(html, bad);
  assert.doesNotMatch(html.replace(SVG_NS, ''), /https?:\/\//, 'no external URL besides SVG namespaces');
  const all = svgs(html);
  assert.equal(all.length, 5, 'bars, curves, calibration, diagnostics, cost');
  for (const name of ['bars', 'curves', 'calibration', 'diagnostics', 'cost']) assert.equal(svgs(figure(html, name)).length, 1, name);
  for (const s of all) {
    assert.match(s, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* width="\d+" height="\d+"/);
    assertBalanced(s);
  }
  const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, 'ids unique across the page');
  for (const m of html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(m[1]), `url(#${m[1]}) resolves`);
});

test('report: bars per metric and recipe, numbers, legends and axis titles', async () => {
  const html = await renderReport(handMadeResults());
  const bars = figure(html, 'bars');
  const n = bars.match(/<path [^>]*aria-roledescription="bar"/g)?.length ?? 0;
  // 8 metrics × (3 recipes + popularity), minus recallTail of the recipe that has none.
  assert.equal(n, 31);
  for (const t of ['recall@20', 'ndcg@20', 'recallTail@20', 'coverage@20', 'popPct@20', 'popularity baseline', '0.208', '0.258']) assert.ok(bars.includes(`>${t}<`), `bars show ${t}`);
  assert.ok(figure(html, 'curves').includes('>validation recall@20<'));
  assert.ok(figure(html, 'curves').includes('>epoch<'));
  const cal = figure(html, 'calibration');
  for (const t of ['training interactions', 'uniform (10% per decile)', 'share of top-20 recommendations']) assert.ok(cal.includes(`>${t}<`), `calibration shows ${t}`);
  assert.ok(figure(html, 'cost').includes('>41,000/s<'), 'cost labelled with examples/s');
  for (const t of ['fnRate', 'effectiveNegatives', 'negSimMean']) assert.ok(figure(html, 'diagnostics').includes(`>${t}<`));
});

test('report: names are escaped and missing data reads "not recorded"', async () => {
  const html = await renderReport(handMadeResults());
  assert.doesNotMatch(html, /mixed <uniform>/);
  assert.match(html, /mixed &lt;uniform&gt; &amp; &quot;q&quot;/);
  assert.match(html, /<span class="na">not recorded<\/span>/, 'diagnostics cell of the recipe without them');

  const bare = handMadeResults();
  for (const r of bare.recipes) {
    r.curve = null;
    r.diagnostics = null;
    r.calibration = null;
  }
  const h2 = await renderReport(bare);
  assert.equal(svgs(h2).length, 2, 'only bars and cost');
  for (const why of ['no validation was run', 'per-item recommendation counts were not recorded', 'no training diagnostics were recorded']) assert.ok(h2.includes(`not recorded: ${why}`), why);
});

test('writeReport writes results.json and index.html, leaving no temporary files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-report-'));
  const out = join(dir, 'report');
  const r = handMadeResults();
  r.complete = false;
  const p = await writeReport(out, r);
  assert.deepEqual(readdirSync(out).sort(), ['index.html', 'results.json']);
  assert.equal(JSON.parse(readFileSync(p.results, 'utf8')).recipes.length, 3);
  assert.match(readFileSync(p.html, 'utf8'), /Incomplete: not every run has finished/);
});
