/**
 * The items one query must not return (the user's seen items, filter.exclude, the query item of /similar),
 * as one object a Recommender reuses from query to query. Most queries ban a few dozen seen items: those
 * sit in a short array scanned linearly, so no Set is built and grown (and dropped) per request. Past
 * SMALL entries they move to a Set. A Recommender answers synchronously, one query at a time, so one
 * instance is never shared by two queries in flight.
 */
const SMALL = 64;

export class BannedItems implements Iterable<number> {
  private readonly small = new Int32Array(SMALL);
  private n = 0;
  private big: Set<number> | null = null;

  /** Empties it for the next query. */
  clear(): void {
    this.n = 0;
    this.big = null;
  }

  /** Distinct items banned. */
  get size(): number {
    return this.big ? this.big.size : this.n;
  }

  has(j: number): boolean {
    if (this.big) return this.big.has(j);
    const s = this.small;
    for (let i = 0; i < this.n; i++) if (s[i] === j) return true;
    return false;
  }

  add(j: number): void {
    if (this.big) this.big.add(j);
    else if (this.has(j)) return;
    else if (this.n < SMALL) this.small[this.n++] = j;
    else {
      this.big = new Set(this.small);
      this.big.add(j);
    }
  }

  *[Symbol.iterator](): Iterator<number> {
    if (this.big) yield* this.big;
    else for (let i = 0; i < this.n; i++) yield this.small[i];
  }
}
