/**
 * The training progress bar as a terminal shows it: run `towerlab train` under a pseudo-terminal (util-linux
 * `script`, else python3's pty module) and read what the bar drew. After a validation note the bar must be
 * redrawn with its values, never the format's {placeholders}, and its first frame must not read `epoch 0/0`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'towerlab-tty-'));
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).status === 0;
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs argv with stdin/stdout/stderr on a pseudo-terminal; returns everything the terminal received. */
function underPty(argv: string[]): { code: number | null; out: string } | null {
  const env = { ...process.env, TOWERLAB_DEBUG: '', COLUMNS: '160' };
  if (has('script', ['--version'])) {
    const r = spawnSync('script', ['-qfec', argv.map(quote).join(' '), '/dev/null'], { encoding: 'utf8', cwd: dir, env });
    return { code: r.status, out: r.stdout + r.stderr };
  }
  if (has('python3', ['-c', 'import pty'])) {
    const py = 'import pty,sys,os\nst=pty.spawn(sys.argv[1:])\nsys.exit(os.waitstatus_to_exitcode(st))';
    const r = spawnSync('python3', ['-c', py, ...argv], { encoding: 'utf8', cwd: dir, env });
    return { code: r.status, out: r.stdout + r.stderr };
  }
  return null;
}

test('progress bar on a terminal: values after each validation note, no epoch 0/0 first frame', (t) => {
  const r = underPty([
    process.execPath, BIN, 'train', '--data', 'synthetic:users=300,items=200,clusters=4,zipf=1.0,seed=3',
    '--epochs', '3', '--batch-size', '128', '--patience', '0', '--val-users', '100',
  ]);
  if (!r) {
    t.skip('neither util-linux script nor python3 pty is available to make a pseudo-terminal');
    return;
  }
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /epoch 1: val recall@20/, 'validation notes were printed');
  assert.match(r.out, /epoch \d\/3 \|/, 'the bar was drawn');
  assert.doesNotMatch(r.out, /\{(epoch|epochs|loss|eps)\}/, 'a placeholder was drawn instead of a value');
  assert.doesNotMatch(r.out, /epoch 0\/0/, 'first frame reads epoch 0/0');
});
