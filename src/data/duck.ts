/**
 * A short-lived embedded DuckDB session for one load: SQL in, typed arrays out.
 *
 * Numeric results are copied chunk by chunk (2,048 rows) straight from DuckDB's vector memory into preallocated
 * typed arrays through the C-API bindings that @duckdb/node-api itself wraps; going through the high-level
 * getItem() costs ~1 s per million rows x 4 columns, the raw copy a tenth of that. No per-row JS objects.
 */
import bindings from '@duckdb/node-bindings';
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection } from '@duckdb/node-api';

export type NumKind = 'i32' | 'f32' | 'f64';
type NumArray = Int32Array | Float32Array | Float64Array;

const KIND_INFO = {
  i32: { typeId: DuckDBTypeId.INTEGER, bytes: 4, sql: 'INTEGER', make: (b: ArrayBuffer, o: number, n: number) => new Int32Array(b, o, n) },
  f32: { typeId: DuckDBTypeId.FLOAT, bytes: 4, sql: 'FLOAT', make: (b: ArrayBuffer, o: number, n: number) => new Float32Array(b, o, n) },
  f64: { typeId: DuckDBTypeId.DOUBLE, bytes: 8, sql: 'DOUBLE', make: (b: ArrayBuffer, o: number, n: number) => new Float64Array(b, o, n) },
} as const;

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
   * Non-null numeric columns of `sql` (typed exactly INTEGER / FLOAT / DOUBLE as `kinds` says) into arrays of
   * length `rowCount`. With `scatter`, the first column is an INTEGER output position for its row (so the query
   * needs no ORDER BY) and is not returned. Callers validate nulls away before reading.
   */
  async numericColumns(sql: string, rowCount: number, kinds: NumKind[], scatter = false): Promise<NumArray[]> {
    const all: NumKind[] = scatter ? ['i32', ...kinds] : kinds;
    const out = kinds.map((k) => KIND_INFO[k].make(new ArrayBuffer(rowCount * KIND_INFO[k].bytes), 0, rowCount));
    const result = await this.conn.run(sql);
    all.forEach((k, c) => {
      if (result.columnTypeId(c) !== KIND_INFO[k].typeId) {
        throw new Error(`numericColumns: column ${c} of the query is ${result.columnType(c)}, expected ${KIND_INFO[k].sql}`);
      }
    });
    let at = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const n = chunk.rowCount;
      if (at + n > rowCount) throw new Error(`numericColumns: more than the expected ${rowCount} rows`);
      const views = all.map((k, c) => {
        const info = KIND_INFO[k];
        let raw = bindings.vector_get_data(bindings.data_chunk_get_vector(chunk.chunk, c), n * info.bytes);
        if (raw.byteOffset % info.bytes !== 0) raw = raw.slice();
        return info.make(raw.buffer as ArrayBuffer, raw.byteOffset, n);
      });
      if (scatter) {
        const pos = views[0] as Int32Array;
        for (let c = 0; c < kinds.length; c++) {
          const src = views[c + 1];
          const dst = out[c];
          for (let j = 0; j < n; j++) dst[pos[j]] = src[j];
        }
      } else {
        for (let c = 0; c < kinds.length; c++) out[c].set(views[c], at);
      }
      at += n;
    }
    if (at !== rowCount) throw new Error(`numericColumns: expected ${rowCount} rows, got ${at}`);
    return out;
  }

  /** Columns of `sql` as strings (null stays null), column-major. For vocabulary-sized results. */
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
