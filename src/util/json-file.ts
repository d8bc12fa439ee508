/**
 * Reads a JSON file a user named (options, search spaces): a missing or unparsable file is one line naming the
 * path and why (UserError), never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { UserError } from './errors.ts';

export function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UserError(`${path}: ${err.code === 'ENOENT' ? 'no such file' : err instanceof SyntaxError ? `not valid JSON: ${err.message}` : err.message}`);
  }
}
