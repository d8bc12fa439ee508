// Packed, blocked SGEMM (BLIS-style loops around a 6x16 AVX2/FMA register-tile micro-kernel).
// Operands are addressed by (row stride, column stride), so a transposed operand is just swapped strides
// and the packing routines absorb the difference: all four transpose combinations run the same kernel.
#pragma once
#include <cstdint>

namespace tl {

constexpr int MR = 6;    // micro-tile rows (broadcast A values)
constexpr int NR = 16;   // micro-tile columns (two 8-float vectors of B)
constexpr int64_t MC = 144;   // rows of A per packed block (L2-resident: MC*KC*4 = 144 KiB)
constexpr int64_t KC = 256;   // depth per packed block
constexpr int64_t NC = 4096;  // columns of B per packed block (L3-resident)

// Packed A: ceil(mc/MR) panels, panel r holds, for p in [0,kc), rows r*MR..r*MR+MR-1 (zero-padded).
// Element (i, p) of the source is src[i*rs + p*cs].
void pack_a(int64_t mc, int64_t kc, const float* src, int64_t rs, int64_t cs, float* dst);
// Packed B: ceil(nc/NR) panels, panel q holds, for p in [0,kc), columns q*NR..q*NR+NR-1 (zero-padded).
// Element (p, j) of the source is src[p*rs + j*cs].
void pack_b(int64_t kc, int64_t nc, const float* src, int64_t rs, int64_t cs, float* dst);

inline int64_t packed_a_size(int64_t mc, int64_t kc) { return (mc + MR - 1) / MR * MR * kc; }
inline int64_t packed_b_size(int64_t kc, int64_t nc) { return (nc + NR - 1) / NR * NR * kc; }

// Optional fused epilogue, applied after alpha/beta: C += bias[col]; C = max(C, 0).
struct Epilogue {
  const float* bias = nullptr;
  bool relu = false;
};

// C[mc x nc] (leading dimension ldc) = alpha * Ap * Bp + beta * C, then the epilogue (bias offset to this
// block's first column). beta == 0 never reads C. B panel q starts at Bp + q * b_panel_stride.
void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, int64_t b_panel_stride,
                  float* C, int64_t ldc, float alpha, float beta, Epilogue ep);

// macro_kernel dispatches at run time: where the addon was compiled for AVX-512F and the CPU has it, it computes
// blocks of two A panels x two B panels (12 x 32) with 512-bit registers (twice the FMA width of the 6 x 16
// AVX2 tile), else the 6 x 16 AVX2/FMA tile. Both run, per output element, the same FMA sequence over p from
// zero and the same epilogue operations, so their results are bit-identical (tested): the choice is speed only.
// Every GEMM in the addon (gemm, gemm_st, the contrastive and full-catalogue kernels) goes through it.
// macro_kernel_wide is the same function (kept for the full-catalogue softmax's call sites).
void macro_kernel_wide(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, int64_t b_panel_stride,
                       float* C, int64_t ldc, float alpha, float beta, Epilogue ep = {});

// The register tile in use: "avx512-12x32", "avx2-6x16" or "scalar-6x16". TOWERLAB_SIMD=avx2 at load forces
// the AVX2 tile; set_simd_wide(false/true) switches at run time (tests compare both), returning whether the
// wide tile is now on (false when it is not compiled in or the CPU lacks AVX-512F).
const char* simd_tile();
bool set_simd_wide(bool on);
// Whether 512-bit kernels are on (the same switch; elementwise kernels use it too).
bool simd_wide();

// Single-threaded strided GEMM: C (M x N, ldc) = alpha * op(A) * op(B) + beta * C, epilogue after.
void gemm_st(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t ars, int64_t acs, const float* B,
             int64_t brs, int64_t bcs, float beta, float* C, int64_t ldc, Epilogue ep);

// Row-major BLAS-like entry point, multi-threaded when large enough (split over M, N or K, whichever
// packs the least redundant data). Bit-identical results whatever the number of threads (see gemm.cc).
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
          float beta, float* C, Epilogue ep = {});

}  // namespace tl
