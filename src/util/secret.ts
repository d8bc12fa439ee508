/**
 * Secrets given as files (signing keys, admin tokens): read once, surrounding whitespace trimmed, a minimum
 * length enforced, and never echoed in a message. Comparison is constant-time over SHA-256 digests, so
 * neither a prefix nor the length of the secret leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { UserError } from './errors.ts';

export const MIN_SECRET_BYTES = 16;

/** The secret in `path` (for option `flag`), as bytes. */
export function readSecretFile(path: string, flag: string): Buffer {
  let raw: Buffer;
  try {
    if (!statSync(path).isFile()) throw new Error('not a file');
    raw = readFileSync(path);
  } catch {
    throw new UserError(`${flag} ${path}: cannot read the file`);
  }
  return secretBytes(raw.toString('utf8'), `${flag} ${path}`);
}

/** A secret given as text (an environment variable): trimmed, and at least MIN_SECRET_BYTES long. */
export function secretBytes(text: string, where: string): Buffer {
  const b = Buffer.from(text.trim(), 'utf8');
  if (b.length < MIN_SECRET_BYTES) throw new UserError(`${where}: the secret must be at least ${MIN_SECRET_BYTES} bytes (e.g. 'openssl rand -hex 32')`);
  return b;
}

const digest = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** Whether `given` equals `secret`, in time independent of where they differ. */
export function secretEquals(given: Buffer | string, secret: Buffer): boolean {
  return timingSafeEqual(digest(given), digest(secret));
}
