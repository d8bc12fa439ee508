/** Grow-only named scratch buffers: no allocation on the hot path once the sizes are stable. */
export class Buffers {
  private readonly f = new Map<string, Float32Array>();
  private readonly i = new Map<string, Int32Array>();
  private readonly u = new Map<string, Uint8Array>();

  /** A Float32Array view of length n (contents unspecified). */
  f32(name: string, n: number): Float32Array {
    let a = this.f.get(name);
    if (!a || a.length < n) this.f.set(name, (a = new Float32Array(grow(a?.length ?? 0, n))));
    return a.subarray(0, n);
  }

  i32(name: string, n: number): Int32Array {
    let a = this.i.get(name);
    if (!a || a.length < n) this.i.set(name, (a = new Int32Array(grow(a?.length ?? 0, n))));
    return a.subarray(0, n);
  }

  u8(name: string, n: number): Uint8Array {
    let a = this.u.get(name);
    if (!a || a.length < n) this.u.set(name, (a = new Uint8Array(grow(a?.length ?? 0, n))));
    return a.subarray(0, n);
  }
}

function grow(have: number, need: number): number {
  return Math.max(need, Math.ceil(have * 1.5));
}
