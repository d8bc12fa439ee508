/**
 * The report as a person sees it: headless Chromium (Debian's, driven by playwright-core; never a
 * downloaded browser) opens index.html from disk with the network off, and the page must render with no
 * console error, no failed request, every chart drawn with a size and the metric bars present.
 * Chromium is installed with apt when missing and we are root; otherwise the test skips with the reason.
 * TOWERLAB_REPORT_SCREENSHOT=path.png saves a full-page screenshot for a look.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../src/report/write.ts';
import { handMadeResults } from './report-fixture.ts';

const CHROMIUM = '/usr/bin/chromium';

/** Why the browser cannot run here, or null when it can. */
function ensureChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  if (process.getuid?.() !== 0) return `${CHROMIUM} is missing and we are not root to apt-get install it`;
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: 'ignore', timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  if (!apt(['install', '-y', '-qq', 'chromium']) && !(apt(['update', '-qq']) && apt(['install', '-y', '-qq', 'chromium']))) {
    return 'apt-get install -y chromium failed';
  }
  return existsSync(CHROMIUM) ? null : `apt-get installed chromium but ${CHROMIUM} is still missing`;
}

async function playwright(): Promise<typeof import('playwright-core') | string> {
  try {
    return await import('playwright-core');
  } catch {
    return 'playwright-core is not installed (npm install)';
  }
}

test('report renders in headless Chromium: no console errors, all charts, bars drawn', async (t) => {
  const pw = await playwright();
  const why = typeof pw === 'string' ? pw : ensureChromium();
  if (why !== null || typeof pw === 'string') {
    console.log(`# skipping the browser check: ${why}`);
    t.skip(why ?? 'Chromium unavailable');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-browser-'));
  const { html } = await writeReport(join(dir, 'report'), handMadeResults());
  const ctx = await pw.chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    offline: true,
    viewport: { width: 1240, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) problems.push(`external request: ${r.url()}`);
    });
    await page.goto(pathToFileURL(html).href, { waitUntil: 'load' });
    assert.equal(await page.title(), 'Towerlab comparison: in-batch vs in-batch+logQ vs mixed <uniform> & "q"');
    const charts = await page.$$eval('figure.chart', (figs) =>
      figs.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return { name: f.getAttribute('data-chart'), svgs: f.querySelectorAll('svg').length, w: box?.width ?? 0, h: box?.height ?? 0 };
      }),
    );
    assert.deepEqual(charts.map((c) => c.name), ['bars', 'curves', 'calibration', 'diagnostics', 'cost']);
    for (const c of charts) {
      assert.equal(c.svgs, 1, `${c.name}: one svg`);
      assert.ok(c.w > 200 && c.h > 100, `${c.name}: drawn at ${c.w}×${c.h}`);
    }
    assert.equal(await page.locator('svg').count(), 5);
    const bars = await page.$$eval('figure[data-chart="bars"] path[aria-roledescription="bar"]', (ps) => ps.map((p) => p.getBoundingClientRect().height));
    assert.equal(bars.length, 31, '8 metrics × (3 recipes + popularity) − 1 missing');
    assert.ok(bars.filter((h) => h > 5).length >= 28, 'bars have visible heights');
    const lines = await page.locator('figure[data-chart="curves"] path[aria-roledescription="line mark"]').count();
    assert.ok(lines >= 3, `validation curves drawn (${lines} lines)`);
    const shot = process.env.TOWERLAB_REPORT_SCREENSHOT;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await ctx.close();
  }
});
