/** The --json contract: the LAST line of stdout is one JSON object (numbers as numbers, NaN as null). */
export function printJsonLast(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n');
}
