// Builds the native compute addon (build/Release/towerlab.node) with node-gyp. Run by `npm install` / `npm ci`
// (package.json "install") and by hand: `node scripts/build-native.mjs`.
// A failed build is not an error: it prints one warning line and exits 0, and Towerlab falls back to the
// portable backend. The compiler output goes to build/native-build.log. TOWERLAB_SKIP_NATIVE=1 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = join(root, 'build', 'native-build.log');
const addon = join(root, 'build', 'Release', 'towerlab.node');

if (process.env.TOWERLAB_SKIP_NATIVE === '1') {
  console.log('towerlab: TOWERLAB_SKIP_NATIVE=1, not building the native addon; the slower portable backend will be used');
  process.exit(0);
}

function warn(reason) {
  console.warn(`towerlab: WARNING: native addon not built (${reason}); Towerlab will use the slower portable backend`);
  process.exit(0);
}

// node-gyp: the one npm puts on PATH for scripts, else the copy bundled with npm next to this node.
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (c.endsWith('.js') && existsSync(c)) return { cmd: process.execPath, pre: [c] };
  const which = spawnSync(process.platform === 'win32' ? 'where' : 'which', ['node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return { cmd: which.stdout.trim().split('\n')[0], pre: [] };
  return null;
}

const gyp = findNodeGyp();
if (!gyp) warn('node-gyp not found');

const args = [...gyp.pre, 'rebuild', `--jobs=${process.env.TOWERLAB_BUILD_JOBS ?? 'max'}`];
// Use the installed Node headers when npm has not said where they are, rather than downloading them.
if (!process.env.npm_config_nodedir) {
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
}

const started = Date.now();
const r = spawnSync(gyp.cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
mkdirSync(dirname(log), { recursive: true });
writeFileSync(log, `$ ${gyp.cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.stack}\n` : ''}`);
if (r.error || r.status !== 0 || !existsSync(addon)) {
  const why = r.error ? r.error.message : r.status !== 0 ? `node-gyp exited with ${r.status ?? r.signal}` : 'no addon produced';
  warn(`${why}; details in ${log}`);
}

// A quick load check: a binary that builds but cannot load (wrong ABI, missing symbol) is still a failure.
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)}).info()`], { encoding: 'utf8' });
if (check.status !== 0) warn(`built addon fails to load: ${(check.stderr || '').trim().split('\n')[0]}`);

console.log(`towerlab: native addon built in ${((Date.now() - started) / 1000).toFixed(0)}s (${addon})`);
