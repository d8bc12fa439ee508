/**
 * The demo page end to end in headless Chromium (Debian's package, driven by playwright-core; never a
 * downloaded browser): the page loads the bundle's TF.js export from the server, runs the query tower in
 * the browser, and must rank exactly as the server does; then a screenshot is checked for rendered results.
 * Chromium is installed with apt-get when missing; when that is impossible the test is skipped, saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { startServer } from '../src/serve/run.ts';
import { makeArtifacts, makeBundle, tmp } from './helpers/serve-fixture.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { decodePng } from './helpers/png.ts';

const CHROMIUM = '/usr/bin/chromium';

/** Installs Debian's chromium if missing; returns why it is unavailable, or null. */
function ensureChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  if (process.getuid?.() !== 0) return `${CHROMIUM} missing and not root, cannot apt-get install chromium`;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { env, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, timeout: 120_000 });
    r = spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { env, encoding: 'utf8', timeout: 300_000 });
  }
  return existsSync(CHROMIUM) ? null : `apt-get install chromium failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
}

/**
 * Headless Chromium with a throwaway profile under `root`, on the demo page of the server at `url`, once the page
 * says it is ready. Collects page errors and any request that leaves the server; closes the browser if opening fails.
 */
async function openDemo(root: string, url: string) {
  const { chromium } = await import('playwright-core');
  const ctx = await chromium.launchPersistentContext(join(root, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 860 },
  });
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const foreign: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => !r.url().startsWith(url) && !r.url().startsWith('data:') && foreign.push(r.url()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}/`);
    await page.waitForSelector('#status[data-state=ready]', { timeout: 30_000 });
    return { ctx, page, foreign, errors };
  } catch (e) {
    await ctx.close();
    throw e;
  }
}

test('demo page: the query tower in the browser ranks like the server, and the screenshot shows the results', async (t) => {
  const why = ensureChromium();
  if (why) {
    console.log(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  const root = tmp('browser');
  const dir = join(root, 'b');
  await makeBundle(dir, 1);
  const bundle = await readBundle(dir);
  const exact = new Recommender(bundle, await getBackend(), 'exact');
  const s = await startServer({ source: dir, port: 0, demo: true });
  let demo: Awaited<ReturnType<typeof openDemo>> | null = null;
  try {
    demo = await openDemo(root, s.url);
    const { page, foreign, errors } = demo;

    const run = async () => {
      await page.click('#go');
      await page.waitForSelector('#status[data-state=done]', { timeout: 30_000 });
      const list = (sel: string) => page.$$eval(`${sel} li`, (lis) => lis.map((li) => ({ item: (li as HTMLElement).dataset.item!, tag: li.querySelector('.tag')?.textContent ?? null })));
      return { browser: await list('#browser-results'), server: await list('#server-results') };
    };

    // Placeholders come from the model's own ids; excludeSeen defaults to the API's (true), and is visible.
    assert.equal(await page.getAttribute('#user', 'placeholder'), `user id, e.g. ${bundle.userIds[0]}`);
    assert.equal(await page.getAttribute('#history', 'placeholder'), `item ids, e.g. ${bundle.itemIds[0]}, ${bundle.itemIds[1]}`);
    assert.equal(await page.isChecked('#exclude-seen'), true);
    assert.ok(await page.isVisible('#exclude-seen'));

    // A known user: the browser's exact ranking is the model's, and the server (HNSW) agrees.
    await page.fill('#user', 'u7');
    let r = await run();
    const want = exact.recommend({ user: 'u7', k: 10, excludeSeen: true, search: 'exact' }).items.map((x) => x.item);
    assert.deepEqual(r.browser.map((x) => x.item), want);
    assert.ok(r.server.filter((x) => want.includes(x.item)).length >= 9, 'server agrees');
    const shot = await page.screenshot({ fullPage: true });
    const box = (await page.locator('#browser-results').boundingBox())!;

    // A new user by features, with an item-category filter.
    await page.check('input[name=mode][value=features]');
    await page.selectOption('#ufeat-0', 's2');
    await page.selectOption('#ifilter-0', 'c3');
    r = await run();
    const wantF = exact.recommend({ features: { segment: 's2' }, k: 10, excludeSeen: true, search: 'exact', filter: { features: { category: ['c3'] } } }).items.map((x) => x.item);
    assert.deepEqual(r.browser.map((x) => x.item), wantF);
    assert.ok(r.browser.every((x) => x.tag === 'c3') && r.server.every((x) => x.tag === 'c3'), 'filter applied on both sides');

    // A typed query: items someone liked.
    await page.selectOption('#ifilter-0', '');
    await page.fill('#history', 'i3, i4');
    await page.check('input[name=mode][value=history]');
    r = await run();
    assert.equal(r.browser.length, 10);
    assert.ok(r.server.filter((x) => r.browser.some((y) => y.item === x.item)).length >= 8, 'history: browser and server agree');
    for (const side of [r.browser, r.server]) assert.ok(!side.some((x) => x.item === 'i3' || x.item === 'i4'), 'history mode recommends its input items back');

    // Unticked, seen items may come back: the browser ranks exactly as the server does with excludeSeen false.
    await page.uncheck('#exclude-seen');
    await page.fill('#user', 'u7');
    await page.check('input[name=mode][value=user]');
    r = await run();
    assert.deepEqual(r.browser.map((x) => x.item), exact.recommend({ user: 'u7', k: 10, excludeSeen: false, search: 'exact' }).items.map((x) => x.item));

    assert.deepEqual(foreign, [], 'the page loads nothing from outside the server');
    assert.deepEqual(errors, []);

    // The screenshot: right size, not blank, and the results panel holds rendered text.
    const file = join(root, 'demo.png');
    writeFileSync(file, shot);
    console.log(`screenshot: ${file}`);
    const img = decodePng(shot);
    assert.equal(img.width, 1200);
    const colours = new Set<number>();
    for (let i = 0; i < img.rgba.length; i += 4 * 7) colours.add((img.rgba[i] << 16) | (img.rgba[i + 1] << 8) | img.rgba[i + 2]);
    assert.ok(colours.size > 50, `screenshot has ${colours.size} colours: blank?`);
    // Dark (text) pixels inside the browser results list, where the page laid it out when the shot was taken.
    let dark = 0;
    for (let y = Math.floor(box.y); y < box.y + box.height && y < img.height; y++) {
      for (let x = Math.floor(box.x); x < box.x + box.width && x < img.width; x++) {
        const o = (y * img.width + x) * 4;
        if (img.rgba[o] + img.rgba[o + 1] + img.rgba[o + 2] < 300) dark++;
      }
    }
    assert.ok(box.height > 150, `results list is ${box.height}px tall`);
    assert.ok(dark > 800, `only ${dark} dark pixels where the results are: nothing rendered?`);
  } finally {
    await demo?.ctx.close();
    await s.close();
  }
});

test('demo page of a model without features but with item names: names shown, no empty tag pills', async (t) => {
  const why = ensureChromium();
  if (why) {
    console.log(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  const root = tmp('browser-names');
  const dir = join(root, 'b');
  const a = makeArtifacts(2, { features: false });
  a.itemNames = a.itemIds.map((id, j) => (j % 7 === 0 ? null : `Name of ${id}`));
  writeBundle(dir, createBundle(await getBackend(), a, { index: null, recallQueries: 50, source: 'fixture:names' }));
  const s = await startServer({ source: dir, port: 0, demo: true });
  let demo: Awaited<ReturnType<typeof openDemo>> | null = null;
  try {
    demo = await openDemo(root, s.url);
    const { page, errors } = demo;
    await page.fill('#user', 'u3');
    await page.click('#go');
    await page.waitForSelector('#status[data-state=done]', { timeout: 30_000 });
    for (const sel of ['#browser-results', '#server-results']) {
      const rows = await page.$$eval(`${sel} li`, (lis) => lis.map((li) => ({ item: (li as HTMLElement).dataset.item!, name: li.querySelector('.name')?.textContent ?? null, tags: li.querySelectorAll('.tag').length })));
      assert.equal(rows.length, 10, sel);
      for (const r of rows) {
        assert.equal(r.tags, 0, `${sel}: a tag pill for ${r.item} although the model has no item features`);
        const j = Number(r.item.slice(1));
        assert.equal(r.name, j % 7 === 0 ? null : `Name of ${r.item}`, `${sel}: name of ${r.item}`);
      }
    }
    assert.deepEqual(errors, []);
  } finally {
    await demo?.ctx.close();
    await s.close();
  }
});

test('demo page of a model with dense user and item features: the query tower in the browser projects them as the server does', async (t) => {
  const why = ensureChromium();
  if (why) {
    console.log(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  const root = tmp('browser-dense');
  const dir = join(root, 'b');
  writeBundle(dir, createBundle(await getBackend(), makeArtifacts(3, { dense: true }), { index: null, recallQueries: 50, source: 'fixture:dense' }));
  const exact = new Recommender(await readBundle(dir), await getBackend(), 'exact');
  const s = await startServer({ source: dir, port: 0, demo: true });
  let demo: Awaited<ReturnType<typeof openDemo>> | null = null;
  try {
    demo = await openDemo(root, s.url);
    const { page, errors } = demo;
    const run = async () => {
      await page.click('#go');
      await page.waitForSelector('#status[data-state=done]', { timeout: 30_000 });
      return page.$$eval('#browser-results li', (lis) => lis.map((li) => (li as HTMLElement).dataset.item!));
    };
    for (const user of ['u3', 'u11']) {
      await page.fill('#user', user);
      await page.check('input[name=mode][value=user]');
      assert.deepEqual(await run(), exact.recommend({ user, k: 10, excludeSeen: true, search: 'exact' }).items.map((x) => x.item), user);
    }
    // A new user by a categorical value; the page sends no dense values, so both sides use zeros for 'taste'.
    await page.check('input[name=mode][value=features]');
    await page.selectOption('#ufeat-0', 's2');
    assert.deepEqual(await run(), exact.recommend({ features: { segment: 's2' }, k: 10, excludeSeen: true, search: 'exact' }).items.map((x) => x.item));
    assert.deepEqual(errors, []);
  } finally {
    await demo?.ctx.close();
    await s.close();
  }
});
