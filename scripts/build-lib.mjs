// Builds the library: src/**/*.ts → dist/**/*.js + .d.ts (tsconfig.build.json), plus the plain-JS assets under
// src/, so `import … from 'towerlab'` works on plain Node (package.json "exports" points at dist/towerlab.js).
// Run by `npm install` / `npm ci` (package.json "install"), by `npm pack` ("prepack"), and by hand:
// `node scripts/build-lib.mjs [--force]`.
//
// dist/.src-hash records a hash of the sources it was built from; when it matches, nothing is rebuilt. A packed
// tarball ships dist/ with its hash, so a consumer's `npm install towerlab` never needs TypeScript (a
// devDependency). Without TypeScript and without a matching dist/, it warns and exits 0: the CLI still runs from
// src/ through tsx.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const stamp = join(dist, '.src-hash');

/** Every file under dir, sorted, as paths relative to dir. */
function walk(dir, base = dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else if (e.isFile()) out.push(relative(base, p).split('\\').join('/'));
  }
  return out.sort();
}

function sourceHash() {
  const h = createHash('sha256');
  for (const f of ['tsconfig.json', 'tsconfig.build.json']) h.update(`${f}\0`).update(readFileSync(join(root, f))).update('\0');
  for (const f of walk(src)) h.update(`src/${f}\0`).update(readFileSync(join(src, f))).update('\0');
  return h.digest('hex');
}

function warn(reason) {
  console.warn(`towerlab: WARNING: library not built (${reason}); \`import 'towerlab'\` needs dist/ — run \`node scripts/build-lib.mjs\` with the devDependencies installed`);
  process.exit(0);
}

if (!existsSync(src)) process.exit(0);
const hash = sourceHash();
if (!process.argv.includes('--force') && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === hash) process.exit(0);

let tsc;
try {
  tsc = join(dirname(createRequire(join(root, 'package.json')).resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  warn(existsSync(dist) ? 'dist/ is older than src/ and TypeScript is not installed' : 'TypeScript is not installed');
}
if (!existsSync(tsc)) warn(`${tsc} not found`);

// Build into a temporary folder and swap it in, so an interrupted build never leaves a half-written dist/.
const tmp = join(root, `dist.tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });
const started = Date.now();
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', tmp], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (r.error || r.status !== 0) {
  rmSync(tmp, { recursive: true, force: true });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  // Inside the repository a failed build is a real error (the sources do not compile); say it loudly.
  console.error(out || r.error?.message);
  console.error(`towerlab: library build failed (tsc exited with ${r.status ?? r.signal})`);
  process.exit(1);
}
for (const f of walk(src)) {
  if (f.endsWith('.ts')) continue;
  mkdirSync(dirname(join(tmp, f)), { recursive: true });
  copyFileSync(join(src, f), join(tmp, f));
}
writeFileSync(join(tmp, '.src-hash'), `${hash}\n`);
rmSync(dist, { recursive: true, force: true });
renameSync(tmp, dist);
console.log(`towerlab: library built in ${((Date.now() - started) / 1000).toFixed(0)}s (${relative(process.cwd(), dist) || dist})`);
