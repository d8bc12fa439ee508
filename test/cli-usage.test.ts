/**
 * Usage of the command line as a new user meets it: --version, exit 2 for unknown commands and options (the
 * README promises 2 for bad input), and defaults printed the same way in every command's help.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'towerlab.mjs');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--version prints the package version and exits 0', () => {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const r = cli(['--version']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), version);
});

test('unknown command, unknown option, bad number: exit 2 with one message, no stack', () => {
  for (const args of [['bogus'], ['recommend', '--model', 'x', '--bogus'], ['mine', '--model', 'x', '--out', 'y.jsonl', '--n', 'ten'], []]) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.err}`);
    assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
  }
  assert.match(cli(['bogus']).err, /unknown command 'bogus'/);
  assert.match(cli(['recommend', '--model', 'x', '--bogus']).err, /unknown option '--bogus'/);
  assert.equal(cli(['train', '--help']).code, 0);
});

/** Help text of `args` from the CLI run in this process (a process per command would take a minute). */
async function helpOf(args: string[]): Promise<string> {
  const { main } = await import('../src/cli/main.ts');
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    await main(['node', 'towerlab', ...args, '--help']);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(process.exitCode ?? 0, 0, `${args.join(' ')} --help`);
  return out.replace(/\s+/g, ' ');
}

test('every command prints its defaults unquoted, numbers as numbers', async () => {
  const top = await helpOf([]);
  const commands = [...top.matchAll(/Commands: (.*)/g)][0][1].split(/\s+(?=[a-z-]+ \[options\])/).map((s) => s.split(' ')[0]).filter((c) => c && c !== 'help');
  assert.ok(commands.length >= 8, `commands found: ${commands}`);
  for (const c of commands) assert.doesNotMatch(await helpOf([c]), /default: "/, `${c} --help prints a quoted default`);
  assert.match(await helpOf(['recommend']), /--k <n> number of items \(default: 10\)/);
});
