/**
 * A short-lived embedded DuckDB session for one load: SQL in, typed arrays out. Results are read chunk by chunk
 * (2,048 rows each) straight into preallocated typed arrays, so a million-row file never becomes a million JS objects.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export type NumKind = 'i32' | 'f32' | 'f64';
type NumArray = Int32Array | Float32Array | Float64Array;

export class Duck {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  static async open(): Promise<Duck> {
    const instance = await DuckDBInstance.create(':memory:');
    return new Duck(instance, await instance.connect());
  }

  async run(sql: string): Promise<void> {
    await this.conn.run(sql);
  }

  /** All rows of a small result as plain JS values (bigints narrowed to numbers). */
  async rows(sql: string): Promise<unknown[][]> {
    const reader = await this.conn.runAndReadAll(sql);
    return reader.getRowsJS().map((r) => r.map((v) => (typeof v === 'bigint' ? Number(v) : v)));
  }

  /** The first column of the first row. */
  async scalar(sql: string): Promise<unknown> {
    return (await this.rows(sql))[0]?.[0];
  }

  /**
   * Numeric columns of `sql` into typed arrays of length `rowCount` (known beforehand, e.g. from count(*)).
   * Nulls read as 0; callers validate before reading.
   */
  async numericColumns(sql: string, rowCount: number, kinds: NumKind[]): Promise<NumArray[]> {
    const out: NumArray[] = kinds.map((k) =>
      k === 'i32' ? new Int32Array(rowCount) : k === 'f32' ? new Float32Array(rowCount) : new Float64Array(rowCount),
    );
    const result = await this.conn.run(sql);
    let at = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const n = chunk.rowCount;
      if (at + n > rowCount) throw new Error(`numericColumns: more than the expected ${rowCount} rows`);
      for (let c = 0; c < kinds.length; c++) {
        const vec = chunk.getColumnVector(c);
        const dst = out[c];
        for (let j = 0; j < n; j++) {
          const v = vec.getItem(j);
          dst[at + j] = v === null ? 0 : Number(v);
        }
      }
      at += n;
    }
    if (at !== rowCount) throw new Error(`numericColumns: expected ${rowCount} rows, got ${at}`);
    return out;
  }

  /** Columns of `sql` as strings (null stays null), column-major. */
  async stringColumns(sql: string): Promise<(string | null)[][]> {
    const result = await this.conn.run(sql);
    const cols: (string | null)[][] = Array.from({ length: result.columnCount }, () => []);
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      for (let c = 0; c < cols.length; c++) {
        const vec = chunk.getColumnVector(c);
        const dst = cols[c];
        for (let j = 0; j < chunk.rowCount; j++) {
          const v = vec.getItem(j);
          dst.push(v === null ? null : String(v));
        }
      }
    }
    return cols;
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/** Runs `fn` with a fresh session, always closing it. */
export async function withDuck<T>(fn: (duck: Duck) => Promise<T>): Promise<T> {
  const duck = await Duck.open();
  try {
    return await fn(duck);
  } finally {
    duck.close();
  }
}
