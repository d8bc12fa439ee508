/**
 * Options files: a JSON object of `towerlab train` options (`{"dim": 64, "mlp": "none", "lr-sparse": 0.01}`),
 * as `tune` writes them (best-options.json) and `train --options` reads them. Keys are long option names,
 * camelCase or kebab-case; a flag given on the command line wins over the file.
 */
import { Command } from 'commander';
import { UserError } from '../util/errors.ts';
import { addModelOptions, addTrainOptions, type ModelFlagOptions, type TrainFlagOptions } from './options.ts';
import { readJsonFile } from '../util/json-file.ts';

/** Model and training options as the option converters take them (built from defaults + files, so untyped keys too). */
export type RunOptions = ModelFlagOptions & TrainFlagOptions;

/** `obj` as RunOptions: the caller started from trainOptionDefaults(), so every converter field is present. */
export const asRunOptions = (obj: Record<string, unknown>): RunOptions => obj as unknown as RunOptions;

/** Every model and training option of `train` with its default value (attribute names, camelCase). */
export function trainOptionDefaults(): Record<string, unknown> {
  const cmd = new Command();
  addModelOptions(cmd);
  addTrainOptions(cmd);
  cmd.option('--resume').option('--json');
  cmd.exitOverride();
  cmd.parse([], { from: 'user' });
  const opts = cmd.opts();
  // Flags with no default and that a file may still set.
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (!(key in opts)) opts[key] = undefined;
  }
  return opts;
}

const camel = (k: string) => k.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** Validated option overrides: known keys only (camelCased), values as strings/numbers/booleans. */
export function normalizeOptions(obj: Record<string, unknown>, where: string, known = trainOptionDefaults()): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = camel(k);
    if (!(key in known)) throw new UserError(`${where}: unknown option '${k}'; known: ${Object.keys(known).sort().join(', ')}`);
    if (key === 'resume' || key === 'json') throw new UserError(`${where}: option '${k}' cannot be set from a file`);
    if (!['string', 'number', 'boolean'].includes(typeof v) && !Array.isArray(v)) throw new UserError(`${where}: option '${k}': expected a string, number or boolean`);
    out[key] = Array.isArray(v) ? v.join(',') : v;
  }
  return out;
}

export function readOptionsFile(path: string): Record<string, unknown> {
  const json = readJsonFile(path);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${path}: expected a JSON object of options`);
  return normalizeOptions(json as Record<string, unknown>, path);
}

/** `o` with the options file applied under the flags the user gave (commander's value source 'cli' wins). */
export function withOptionsFile<T extends object>(o: T, cmd: Command | undefined, path: string | undefined): T {
  if (!path) return o;
  const file = readOptionsFile(path);
  const out: Record<string, unknown> = { ...(o as Record<string, unknown>) };
  for (const [k, v] of Object.entries(file)) {
    if (cmd?.getOptionValueSource(k) === 'cli') continue;
    out[k] = v;
  }
  // The file's keys were checked against the command's known options (normalizeOptions), so `out` is still a T.
  return out as T;
}
