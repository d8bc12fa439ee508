// User-history pooling (SimpleX behaviour aggregation) of the user tower's id rows. Semantics:
// src/compute/backend.ts (historyPoolForward / historyPoolBackward); the portable twin is src/compute/js-history.ts.
// Arguments are validated by the binding (addon.cc): every id, offset and history item used is in range.
#pragma once
#include <cstdint>

namespace tl {

struct HistoryPoolArgs {
  const int32_t* ids;      // n user ids; outside [0, users) = no history
  int64_t n, dim;
  const int32_t* offsets;  // users + 1 CSR offsets into cols
  int64_t users;
  const int32_t* cols;     // history items (rows of the embedding table)
  double gate;             // g
  int64_t maxLen;          // 0 = all
};

// Items user u contributes (0 for ids outside [0, users)).
inline int64_t history_count(const HistoryPoolArgs& a, int64_t u) {
  if (u < 0 || u >= a.users) return 0;
  const int64_t len = int64_t(a.offsets[u + 1]) - a.offsets[u];
  return a.maxLen > 0 && len > a.maxLen ? a.maxLen : len;
}

// Position in cols of user u's k-th used item: all, or maxLen evenly strided ones, s + floor(k·len/L) computed in
// double exactly as the TypeScript does (Math.floor((k * len) / L)).
inline int64_t history_pick(const HistoryPoolArgs& a, int64_t u, int64_t k) {
  const int64_t s = a.offsets[u];
  const int64_t len = int64_t(a.offsets[u + 1]) - s;
  const int64_t L = a.maxLen;
  if (L <= 0 || len <= L) return s + k;
  return s + int64_t(static_cast<double>(k) * static_cast<double>(len) / static_cast<double>(L));
}

// x (n×dim, in place): x_r ← g·x_r, then for each used item k in order x_r ← x_r + w·E[item] with w = (1 − g)/c,
// every step rounded to float from double (as the TypeScript's `x *= g`, `x += w * E`).
void history_pool_forward(const HistoryPoolArgs& a, const float* table, float* x);

// Gradients of the used items from dX (n×dim): unique items in first-use order (rows, then k) into uniq,
// their sums (per item in (row, k) order, each step rounded to float from double) into grads; then dX ← g·dX.
// Returns the number of unique items. tableRows bounds the item ids (scratch for the slot map).
int64_t history_pool_backward(const HistoryPoolArgs& a, int64_t tableRows, float* dX, int32_t* uniq, float* grads);

}  // namespace tl
