/**
 * bfloat16 rounding as the native kernels do it (native/gemm_bf16.cc to_bf16): round to nearest, ties to even,
 * keeping 8 significant bits; zero and subnormal inputs become a signed zero (as vcvtneps2bf16 does); NaN stays
 * NaN. The portable backend rounds the same operands with this, so `precision: 'bf16'` means the same products
 * on every backend.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function roundBf16(x: number): number {
  f32[0] = x;
  let u = u32[0];
  if ((u & 0x7f800000) === 0) u &= 0x80000000;
  else if ((u & 0x7fffffff) > 0x7f800000) u = (u | 0x00400000) & 0xffff0000;
  else u = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  u32[0] = u;
  return f32[0];
}

/** A rounded copy of `a` (float32 values that are exactly representable in bfloat16). */
export function roundBf16Array(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = roundBf16(a[i]);
  return out;
}
