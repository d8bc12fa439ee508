// N-API bindings. Every argument is type- and length-checked here (cheap next to the kernels), so a wrong
// call from JS throws an Error instead of touching memory outside its arrays.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "contrastive.h"
#include "full_softmax.h"
#include "gemm_bf16.h"
#include "gemm.h"
#include "history_pool.h"
#include "ops.h"
#include "pool.h"
#include "seq_layers.h"
#include "simd.h"

namespace {

struct JsError {
  std::string msg;
};

constexpr size_t kMaxArgs = 20;

class Call {
 public:
  Call(napi_env env, napi_callback_info info, const char* fn) : env_(env), fn_(fn) {
    argc_ = kMaxArgs;
    napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr);
  }

  [[noreturn]] void fail(const std::string& what) const { throw JsError{std::string("towerlab native ") + fn_ + ": " + what}; }

  napi_value arg(size_t i) const { return i < argc_ ? argv_[i] : nullptr; }

  bool is_nullish(size_t i) const {
    napi_value v = arg(i);
    if (!v) return true;
    napi_valuetype t;
    napi_typeof(env_, v, &t);
    return t == napi_null || t == napi_undefined;
  }

  // A typed array of the given element type with at least minLen elements (or null when allowed).
  void* typed(size_t i, const char* name, napi_typedarray_type want, const char* wantName, int64_t minLen,
              bool nullable, size_t* lenOut = nullptr) const {
    if (nullable && is_nullish(i)) {
      if (lenOut) *lenOut = 0;
      return nullptr;
    }
    bool is = false;
    napi_value v = arg(i);
    if (!v || napi_is_typedarray(env_, v, &is) != napi_ok || !is) fail(std::string(name) + " must be a " + wantName);
    napi_typedarray_type t;
    size_t len = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env_, v, &t, &len, &data, nullptr, nullptr);
    if (t != want) fail(std::string(name) + " must be a " + wantName);
    if (int64_t(len) < minLen)
      fail(std::string(name) + " has " + std::to_string(len) + " elements, needs at least " + std::to_string(minLen));
    if (!data && len > 0) fail(std::string(name) + " is detached");
    if (lenOut) *lenOut = len;
    return data;
  }
  float* f32(size_t i, const char* name, int64_t minLen, bool nullable = false, size_t* len = nullptr) const {
    return static_cast<float*>(typed(i, name, napi_float32_array, "Float32Array", minLen, nullable, len));
  }
  int32_t* i32(size_t i, const char* name, int64_t minLen, bool nullable = false, size_t* len = nullptr) const {
    return static_cast<int32_t*>(typed(i, name, napi_int32_array, "Int32Array", minLen, nullable, len));
  }
  uint8_t* u8(size_t i, const char* name, int64_t minLen, bool nullable = false, size_t* len = nullptr) const {
    return static_cast<uint8_t*>(typed(i, name, napi_uint8_array, "Uint8Array", minLen, nullable, len));
  }

  double num(size_t i, const char* name) const {
    double d;
    napi_value v = arg(i);
    if (!v || napi_get_value_double(env_, v, &d) != napi_ok) fail(std::string(name) + " must be a number");
    return d;
  }
  // A non-negative integer size.
  int64_t dim(size_t i, const char* name) const {
    const double d = num(i, name);
    if (!(d >= 0 && d <= 2147483647.0 && std::floor(d) == d))
      fail(std::string(name) + " must be an integer in [0, 2^31), got " + std::to_string(d));
    return int64_t(d);
  }
  bool flag(size_t i, const char* name) const {
    bool b;
    napi_value v = arg(i);
    if (!v || napi_get_value_bool(env_, v, &b) != napi_ok) fail(std::string(name) + " must be a boolean");
    return b;
  }

  napi_env env() const { return env_; }

 private:
  napi_env env_;
  const char* fn_;
  size_t argc_;
  napi_value argv_[kMaxArgs];
};

template <class F>
napi_value guarded(napi_env env, napi_callback_info info, const char* name, F body) {
  try {
    Call c(env, info, name);
    return body(c);
  } catch (const JsError& e) {
    napi_throw_error(env, nullptr, e.msg.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("towerlab native ") + name + ": " + e.what()).c_str());
  }
  return nullptr;
}

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}
napi_value number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

bool overlaps(const float* a, int64_t na, const float* b, int64_t nb) { return a < b + nb && b < a + na; }

napi_value Gemm(napi_env env, napi_callback_info info) {
  return guarded(env, info, "gemm", [](Call& c) {
    const bool tA = c.flag(0, "transA"), tB = c.flag(1, "transB");
    const int64_t M = c.dim(2, "M"), N = c.dim(3, "N"), K = c.dim(4, "K");
    const float alpha = float(c.num(5, "alpha"));
    const float* a = c.f32(6, "a", M * K);
    const float* b = c.f32(7, "b", K * N);
    const float beta = float(c.num(8, "beta"));
    float* out = c.f32(9, "c", M * N);
    if (overlaps(out, M * N, a, M * K) || overlaps(out, M * N, b, K * N)) c.fail("c must not overlap a or b");
    tl::gemm(tA, tB, M, N, K, alpha, a, b, beta, out);
    return undef(c.env());
  });
}

napi_value LinearForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "linearForward", [](Call& c) {
    const int64_t rows = c.dim(4, "rows"), in = c.dim(5, "inDim"), out = c.dim(6, "outDim");
    const float* x = c.f32(0, "x", rows * in);
    const float* w = c.f32(1, "w", in * out);
    const float* bias = c.f32(2, "bias", out);
    float* y = c.f32(3, "y", rows * out);
    const bool relu = c.flag(7, "relu");
    if (overlaps(y, rows * out, x, rows * in) || overlaps(y, rows * out, w, in * out)) c.fail("y must not overlap x or w");
    tl::linear_forward(x, w, bias, y, rows, in, out, relu);
    return undef(c.env());
  });
}

napi_value LinearBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "linearBackward", [](Call& c) {
    const int64_t rows = c.dim(7, "rows"), in = c.dim(8, "inDim"), out = c.dim(9, "outDim");
    const float* x = c.f32(0, "x", rows * in);
    const float* w = c.f32(1, "w", in * out);
    const float* y = c.f32(2, "y", rows * out);
    float* dy = c.f32(3, "dy", rows * out);
    float* dx = c.f32(4, "dx", rows * in, true);
    float* dw = c.f32(5, "dw", in * out);
    float* dbias = c.f32(6, "dbias", out);
    const bool relu = c.flag(10, "relu");
    if (dx && (overlaps(dx, rows * in, dy, rows * out) || overlaps(dx, rows * in, w, in * out)))
      c.fail("dx must not overlap dy or w");
    if (overlaps(dw, in * out, x, rows * in) || overlaps(dw, in * out, dy, rows * out))
      c.fail("dw must not overlap x or dy");
    tl::linear_backward(x, w, y, dy, dx, dw, dbias, rows, in, out, relu);
    return undef(c.env());
  });
}

napi_value L2normForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "l2normForward", [](Call& c) {
    const int64_t rows = c.dim(3, "rows"), dim = c.dim(4, "dim");
    const float* x = c.f32(0, "x", rows * dim);
    float* y = c.f32(1, "y", rows * dim);
    float* norms = c.f32(2, "norms", rows);
    tl::l2norm_forward(x, y, norms, rows, dim);
    return undef(c.env());
  });
}

napi_value L2normBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "l2normBackward", [](Call& c) {
    const int64_t rows = c.dim(4, "rows"), dim = c.dim(5, "dim");
    const float* y = c.f32(0, "y", rows * dim);
    const float* norms = c.f32(1, "norms", rows);
    const float* dy = c.f32(2, "dy", rows * dim);
    float* dx = c.f32(3, "dx", rows * dim);
    if (dx != dy && overlaps(dx, rows * dim, dy, rows * dim)) c.fail("dx must be dy itself or not overlap it");
    tl::l2norm_backward(y, norms, dy, dx, rows, dim);
    return undef(c.env());
  });
}

// Every id in [0, rows), else an Error naming the first bad one.
void check_ids(const Call& c, const char* name, const int32_t* ids, int64_t n, int64_t rows) {
  for (int64_t r = 0; r < n; ++r)
    if (ids[r] < 0 || ids[r] >= rows)
      c.fail(std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(ids[r]) + " is outside [0, " +
             std::to_string(rows) + ")");
}

napi_value GatherRows(napi_env env, napi_callback_info info) {
  return guarded(env, info, "gatherRows", [](Call& c) {
    const int64_t dim = c.dim(3, "dim");
    size_t tableLen = 0, n = 0;
    const float* table = c.f32(0, "table", 0, false, &tableLen);
    const int32_t* ids = c.i32(1, "ids", 0, false, &n);
    float* out = c.f32(2, "out", int64_t(n) * dim);
    if (dim == 0) return undef(c.env());
    check_ids(c, "ids", ids, int64_t(n), int64_t(tableLen) / dim);
    tl::gather_rows(table, ids, int64_t(n), out, dim);
    return undef(c.env());
  });
}

napi_value Adam(napi_env env, napi_callback_info info) {
  return guarded(env, info, "adam", [](Call& c) {
    size_t n = 0;
    float* p = c.f32(0, "p", 0, false, &n);
    const float* g = c.f32(1, "g", int64_t(n));
    float* m = c.f32(2, "m", int64_t(n));
    float* v = c.f32(3, "v", int64_t(n));
    const double lr = c.num(4, "lr"), b1 = c.num(5, "b1"), b2 = c.num(6, "b2"), eps = c.num(7, "eps");
    const double step = c.num(8, "step");
    if (!(step >= 1)) c.fail("step must be >= 1 (1-based)");
    tl::adam(p, g, m, v, int64_t(n), lr, b1, b2, eps, step);
    return undef(c.env());
  });
}

napi_value SparseUpdate(napi_env env, napi_callback_info info) {
  return guarded(env, info, "sparseUpdate", [](Call& c) {
    const int64_t kind = c.dim(0, "kind");  // 0 = adagrad, 1 = lazyadam
    const int64_t n = c.dim(6, "n"), dim = c.dim(7, "dim");
    if (kind > 1) c.fail("kind must be 'adagrad' or 'lazyadam'");
    if (dim == 0) c.fail("dim must be positive");
    size_t tableLen = 0;
    float* table = c.f32(1, "table", 0, false, &tableLen);
    const int64_t rows = int64_t(tableLen) / dim;
    float* s1 = c.f32(2, "state1", kind == 0 ? rows : rows * dim);
    float* s2 = c.f32(3, "state2", kind == 0 ? 0 : rows * dim, kind == 0);
    const int32_t* ids = c.i32(4, "ids", n);
    const float* grads = c.f32(5, "grads", n * dim);
    const double lr = c.num(8, "lr"), b1 = c.num(9, "b1"), b2 = c.num(10, "b2"), eps = c.num(11, "eps");
    const double step = c.num(12, "step");
    check_ids(c, "ids", ids, n, rows);
    if (kind == 0) {
      tl::sparse_adagrad(table, s1, ids, grads, n, dim, lr, eps);
    } else {
      if (!(step >= 1)) c.fail("step must be >= 1 (1-based)");
      tl::sparse_lazyadam(table, s1, s2, ids, grads, n, dim, lr, b1, b2, eps, step);
    }
    return undef(c.env());
  });
}

// (q, c, B, N, d, pos, scale, colBias, rowKey0, colKey0, rowKey1, colKey1, absThreshold, margin, rowWeight,
//  dq, dc, maskedCount) -> loss
napi_value Contrastive(napi_env env, napi_callback_info info) {
  return guarded(env, info, "contrastive", [](Call& c) {
    tl::ContrastiveIn in;
    in.B = c.dim(2, "B");
    in.N = c.dim(3, "N");
    in.d = c.dim(4, "d");
    in.q = c.f32(0, "q", in.B * in.d);
    in.c = c.f32(1, "c", in.N * in.d);
    in.pos = c.i32(5, "pos", in.B);
    in.scale = float(c.num(6, "scale"));
    in.colBias = c.f32(7, "colBias", in.N, true);
    for (int k = 0; k < 2; ++k) {
      const char* rn = k == 0 ? "masks[0].rowKey" : "masks[1].rowKey";
      const char* cn = k == 0 ? "masks[0].colKey" : "masks[1].colKey";
      const int32_t* rk = c.i32(8 + 2 * k, rn, in.B, true);
      const int32_t* ck = c.i32(9 + 2 * k, cn, in.N, true);
      if (!rk != !ck) c.fail(std::string(rn) + " and " + cn + " must both be given");
      if (rk) {
        in.rowKey[in.nmasks] = rk;
        in.colKey[in.nmasks] = ck;
        ++in.nmasks;
      }
    }
    in.absThreshold = float(c.num(12, "fnMask.absThreshold"));
    in.margin = float(c.num(13, "fnMask.margin"));
    in.rowWeight = c.f32(14, "rowWeight", in.B, true);
    in.dq = c.f32(15, "dq", in.B * in.d, true);
    in.dc = c.f32(16, "dc", in.N * in.d, true);
    in.maskedCount = c.i32(17, "maskedCount", in.B, true);
    if (in.dq && in.dc && overlaps(in.dq, in.B * in.d, in.dc, in.N * in.d)) c.fail("dq and dc must not overlap");
    for (const float* g : {in.dq, in.dc}) {
      const int64_t n = g == in.dq ? in.B * in.d : in.N * in.d;
      if (g && (overlaps(g, n, in.q, in.B * in.d) || overlaps(g, n, in.c, in.N * in.d)))
        c.fail("dq/dc must not overlap q or c");
    }
    for (int64_t i = 0; i < in.B; ++i)
      if (in.pos[i] < 0 || in.pos[i] >= in.N)
        c.fail("pos[" + std::to_string(i) + "] = " + std::to_string(in.pos[i]) + " is outside [0, N=" +
               std::to_string(in.N) + ")");
    return number(c.env(), tl::contrastive(in));
  });
}

// (q, e, R, N, d, target, scale, rowWeight, dq, de, rowLoss, bf16) -> loss
napi_value FullSoftmax(napi_env env, napi_callback_info info) {
  return guarded(env, info, "fullSoftmax", [](Call& c) {
    tl::FullSoftmaxIn in;
    in.R = c.dim(2, "R");
    in.N = c.dim(3, "N");
    in.d = c.dim(4, "d");
    in.q = c.f32(0, "q", in.R * in.d);
    in.e = c.f32(1, "e", in.N * in.d);
    in.target = c.i32(5, "target", in.R);
    in.scale = float(c.num(6, "scale"));
    if (!std::isfinite(in.scale)) c.fail("scale must be finite");
    in.rowWeight = c.f32(7, "rowWeight", in.R, true);
    in.dq = c.f32(8, "dq", in.R * in.d, true);
    in.de = c.f32(9, "de", in.N * in.d, true);
    in.rowLoss = c.f32(10, "rowLoss", in.R, true);
    in.bf16 = c.flag(11, "bf16");
    if (in.dq && in.de && overlaps(in.dq, in.R * in.d, in.de, in.N * in.d)) c.fail("dq and de must not overlap");
    for (const float* g : {in.dq, in.de}) {
      const int64_t n = g == in.dq ? in.R * in.d : in.N * in.d;
      if (g && (overlaps(g, n, in.q, in.R * in.d) || overlaps(g, n, in.e, in.N * in.d)))
        c.fail("dq/de must not overlap q or e");
    }
    for (int64_t i = 0; i < in.R; ++i)
      if (in.target[i] < 0 || in.target[i] >= in.N)
        c.fail("target[" + std::to_string(i) + "] = " + std::to_string(in.target[i]) + " is outside [0, N=" +
               std::to_string(in.N) + ")");
    return number(c.env(), tl::full_softmax(in));
  });
}

napi_value LayerNormForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "layerNormForward", [](Call& c) {
    const int64_t rows = c.dim(6, "rows"), d = c.dim(7, "dim");
    const float eps = float(c.num(8, "eps"));
    const float* x = c.f32(0, "x", rows * d);
    const float* g = c.f32(1, "gamma", d);
    const float* b = c.f32(2, "beta", d);
    float* y = c.f32(3, "y", rows * d);
    float* xhat = c.f32(4, "xhat", rows * d);
    float* rstd = c.f32(5, "rstd", rows);
    if (!(eps > 0)) c.fail("eps must be positive");
    if (overlaps(y, rows * d, x, rows * d) || overlaps(xhat, rows * d, x, rows * d) || overlaps(xhat, rows * d, y, rows * d))
      c.fail("y, xhat and x must not overlap");
    tl::layer_norm_forward(x, g, b, y, xhat, rstd, rows, d, eps);
    return undef(c.env());
  });
}

napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "layerNormBackward", [](Call& c) {
    const int64_t rows = c.dim(7, "rows"), d = c.dim(8, "dim");
    const float* dy = c.f32(0, "dy", rows * d);
    const float* g = c.f32(1, "gamma", d);
    const float* xhat = c.f32(2, "xhat", rows * d);
    const float* rstd = c.f32(3, "rstd", rows);
    float* dx = c.f32(4, "dx", rows * d);
    float* dg = c.f32(5, "dgamma", d);
    float* db = c.f32(6, "dbeta", d);
    const bool acc = c.flag(9, "accumulate");
    if (dx != dy && overlaps(dx, rows * d, dy, rows * d)) c.fail("dx must be dy itself or not overlap it");
    if (overlaps(dx, rows * d, xhat, rows * d)) c.fail("dx must not overlap xhat");
    tl::layer_norm_backward(dy, g, xhat, rstd, dx, dg, db, rows, d, acc);
    return undef(c.env());
  });
}

double dropout_rate(const Call& c, size_t i) {
  const double p = c.num(i, "p");
  if (!(p >= 0 && p < 1)) c.fail("p must be in [0, 1), got " + std::to_string(p));
  return p;
}

uint32_t seed32(const Call& c, size_t i) {
  const double s = c.num(i, "seed");
  if (!(s >= 0 && s <= 4294967295.0 && std::floor(s) == s)) c.fail("seed must be an integer in [0, 2^32)");
  return uint32_t(s);
}

napi_value DropoutForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "dropoutForward", [](Call& c) {
    const int64_t n = c.dim(2, "n");
    float* x = c.f32(0, "x", n);
    uint8_t* m = c.u8(1, "mask", n);
    tl::dropout_forward(x, m, n, dropout_rate(c, 3), seed32(c, 4));
    return undef(c.env());
  });
}

napi_value DropoutBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "dropoutBackward", [](Call& c) {
    const int64_t n = c.dim(3, "n");
    const float* dy = c.f32(0, "dy", n);
    const uint8_t* m = c.u8(1, "mask", n);
    float* out = c.f32(2, "out", n);
    if (out != dy && overlaps(out, n, dy, n)) c.fail("out must be dy itself or not overlap it");
    tl::dropout_backward(dy, m, out, n, dropout_rate(c, 4));
    return undef(c.env());
  });
}

// Shared argument checks of attentionForward/Backward: (.., offsets, pOff, nseq, heads, dh, causal, p) at `at`.
// Returns the token count R; fills the geometry of `a` and the length of the P buffer.
int64_t attention_geometry(const Call& c, size_t at, tl::AttentionArgs& a, int64_t* plen) {
  a.nseq = c.dim(at + 2, "nseq");
  a.heads = c.dim(at + 3, "heads");
  a.dh = c.dim(at + 4, "dh");
  a.causal = c.flag(at + 5, "causal");
  a.p = dropout_rate(c, at + 6);
  if (a.heads < 1 || a.dh < 1) c.fail("heads and dh must be positive");
  const int32_t* off = c.i32(at, "offsets", a.nseq + 1);
  const int32_t* po = c.i32(at + 1, "pOff", a.nseq + 1);
  if (off[0] != 0 || po[0] != 0) c.fail("offsets[0] and pOff[0] must be 0");
  for (int64_t s = 0; s < a.nseq; ++s) {
    const int64_t T = int64_t(off[s + 1]) - off[s];
    if (T < 0) c.fail("offsets must be non-decreasing (at " + std::to_string(s) + ")");
    if (int64_t(po[s + 1]) - po[s] != a.heads * T * T)
      c.fail("pOff[" + std::to_string(s + 1) + "] - pOff[" + std::to_string(s) + "] must be heads * T^2");
  }
  a.offsets = off;
  a.pOff = po;
  *plen = po[a.nseq];
  return off[a.nseq];
}

// attentionForward(Q, K, V, O, P, Pd, mask, offsets, pOff, nseq, heads, dh, causal, p, seed)
napi_value AttentionForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "attentionForward", [](Call& c) {
    tl::AttentionArgs a;
    int64_t plen = 0;
    const int64_t R = attention_geometry(c, 7, a, &plen);
    const int64_t n = R * a.heads * a.dh;
    a.Q = c.f32(0, "Q", n);
    a.K = c.f32(1, "K", n);
    a.V = c.f32(2, "V", n);
    a.O = c.f32(3, "O", n);
    a.P = c.f32(4, "P", plen);
    a.mask = c.u8(6, "mask", plen, true);
    a.Pd = c.f32(5, "Pd", plen, a.mask == nullptr);
    if (a.mask && !a.Pd) c.fail("Pd is needed with a dropout mask");
    if (!a.mask) a.Pd = nullptr;
    a.seed = seed32(c, 14);
    for (const float* in : {a.Q, a.K, a.V})
      if (overlaps(a.O, n, in, n) || overlaps(a.P, plen, in, n)) c.fail("O and P must not overlap Q, K or V");
    if (overlaps(a.O, n, a.P, plen) || (a.Pd && (overlaps(a.Pd, plen, a.P, plen) || overlaps(a.Pd, plen, a.O, n))))
      c.fail("O, P and Pd must not overlap");
    tl::attention_forward(a);
    return undef(c.env());
  });
}

// attentionBackward(dO, Q, K, V, P, Pd, mask, offsets, pOff, nseq, heads, dh, causal, p, dQ, dK, dV)
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "attentionBackward", [](Call& c) {
    tl::AttentionArgs a;
    int64_t plen = 0;
    const int64_t R = attention_geometry(c, 7, a, &plen);
    const int64_t n = R * a.heads * a.dh;
    a.dO = c.f32(0, "dO", n);
    a.Q = c.f32(1, "Q", n);
    a.K = c.f32(2, "K", n);
    a.V = c.f32(3, "V", n);
    a.P = c.f32(4, "P", plen);
    a.mask = c.u8(6, "mask", plen, true);
    a.Pd = c.f32(5, "Pd", plen, a.mask == nullptr);
    if (a.mask && !a.Pd) c.fail("Pd is needed with a dropout mask");
    if (!a.mask) a.Pd = nullptr;
    a.dQ = c.f32(14, "dQ", n);
    a.dK = c.f32(15, "dK", n);
    a.dV = c.f32(16, "dV", n);
    for (float* out : {a.dQ, a.dK, a.dV})
      for (const float* in : {a.dO, a.Q, a.K, a.V})
        if (overlaps(out, n, in, n)) c.fail("dQ, dK and dV must not overlap dO, Q, K or V");
    if (overlaps(a.dQ, n, a.dK, n) || overlaps(a.dQ, n, a.dV, n) || overlaps(a.dK, n, a.dV, n))
      c.fail("dQ, dK and dV must not overlap each other");
    tl::attention_backward(a);
    return undef(c.env());
  });
}

// mergeRows(ids, grads, n, dim, slot, uniq, summed, u0) -> u
napi_value MergeRows(napi_env env, napi_callback_info info) {
  return guarded(env, info, "mergeRows", [](Call& c) {
    const int64_t n = c.dim(2, "n"), dim = c.dim(3, "dim"), u0 = c.dim(7, "u0");
    const int32_t* ids = c.i32(0, "ids", n);
    const float* grads = c.f32(1, "grads", n * dim);
    size_t rows = 0;
    int32_t* slot = c.i32(4, "slot", 0, false, &rows);
    int32_t* uniq = c.i32(5, "uniq", u0 + n);
    float* summed = c.f32(6, "summed", (u0 + n) * dim);
    for (int64_t r = 0; r < n; ++r)
      if (ids[r] < 0 || int64_t(ids[r]) >= int64_t(rows))
        c.fail("ids[" + std::to_string(r) + "] = " + std::to_string(ids[r]) + " is outside [0, " + std::to_string(rows) + ")");
    for (int64_t r = 0; r < n; ++r)
      if (slot[ids[r]] >= int32_t(u0 + n)) c.fail("slot entries must be -1 or below u0 + n");
    if (overlaps(summed, (u0 + n) * dim, grads, n * dim)) c.fail("summed must not overlap grads");
    return number(c.env(), double(tl::merge_rows(ids, grads, n, dim, slot, uniq, summed, u0)));
  });
}

// The history pooling arguments shared by both directions, checked: ids (n), offsets (users + 1, each used user's
// range inside cols), cols (every item a used user contributes in [0, tableRows)). Returns the total uses.
int64_t history_args(const Call& c, size_t i0, int64_t n, int64_t dim, int64_t tableRows, tl::HistoryPoolArgs& a,
                     int64_t* colCount = nullptr) {
  // (ids, offsets, cols, gate, maxLen) at argument positions i0 .. i0 + 4
  size_t offLen = 0, colLen = 0;
  a.ids = c.i32(i0, "ids", n);
  a.offsets = c.i32(i0 + 1, "offsets", 1, false, &offLen);
  a.cols = c.i32(i0 + 2, "cols", 0, false, &colLen);
  a.gate = c.num(i0 + 3, "gate");
  if (!std::isfinite(a.gate)) c.fail("gate must be a finite number");
  a.maxLen = c.dim(i0 + 4, "maxLen");
  a.n = n;
  a.dim = dim;
  a.users = int64_t(offLen) - 1;
  if (colCount) *colCount = int64_t(colLen);
  int64_t picks = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t u = a.ids[r];
    if (u < 0 || u >= a.users) continue;
    const int64_t s = a.offsets[u], e = a.offsets[u + 1];
    if (!(s >= 0 && s <= e && e <= int64_t(colLen)))
      c.fail("offsets[" + std::to_string(u) + ".." + std::to_string(u + 1) + "] = " + std::to_string(s) + ".." + std::to_string(e) +
             " is not a range inside cols (" + std::to_string(colLen) + " entries)");
    const int64_t cnt = tl::history_count(a, u);
    for (int64_t k = 0; k < cnt; ++k) {
      const int64_t p = tl::history_pick(a, u, k);
      if (a.cols[p] < 0 || int64_t(a.cols[p]) >= tableRows)
        c.fail("cols[" + std::to_string(p) + "] = " + std::to_string(a.cols[p]) + " is outside [0, " + std::to_string(tableRows) + ")");
    }
    picks += cnt;
  }
  return picks;
}

// historyPoolForward(x, n, dim, table, ids, offsets, cols, gate, maxLen)
napi_value HistoryPoolForward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "historyPoolForward", [](Call& c) {
    const int64_t n = c.dim(1, "n"), dim = c.dim(2, "dim");
    if (dim == 0) c.fail("dim must be positive");
    float* x = c.f32(0, "x", n * dim);
    size_t tlen = 0;
    const float* table = c.f32(3, "table", 0, false, &tlen);
    const int64_t tableRows = int64_t(tlen) / dim;
    tl::HistoryPoolArgs a;
    history_args(c, 4, n, dim, tableRows, a);
    if (overlaps(x, n * dim, table, tableRows * dim)) c.fail("x must not overlap table");
    tl::history_pool_forward(a, table, x);
    return undef(c.env());
  });
}

// historyPoolBackward(dX, n, dim, tableRows, ids, offsets, cols, gate, maxLen, uniq, grads) -> unique items
napi_value HistoryPoolBackward(napi_env env, napi_callback_info info) {
  return guarded(env, info, "historyPoolBackward", [](Call& c) {
    const int64_t n = c.dim(1, "n"), dim = c.dim(2, "dim"), tableRows = c.dim(3, "tableRows");
    float* dX = c.f32(0, "dX", n * dim);
    tl::HistoryPoolArgs a;
    int64_t colCount = 0;
    const int64_t picks = history_args(c, 4, n, dim, tableRows, a, &colCount);
    // Unique items: at most the uses, the table's rows and the history's entries.
    const int64_t cap = std::min({picks, tableRows, colCount});
    int32_t* uniq = c.i32(9, "uniq", cap);
    float* grads = c.f32(10, "grads", cap * dim);
    if (overlaps(grads, cap * dim, dX, n * dim)) c.fail("grads must not overlap dX");
    return number(c.env(), double(tl::history_pool_backward(a, tableRows, dX, uniq, grads)));
  });
}

// pairwiseLoss(bpr, q, c, R, K, d, dq, dc) -> loss
napi_value PairwiseLoss(napi_env env, napi_callback_info info) {
  return guarded(env, info, "pairwiseLoss", [](Call& c) {
    const bool bpr = c.flag(0, "bpr");
    const int64_t R = c.dim(3, "R"), K = c.dim(4, "K"), d = c.dim(5, "d");
    if (!bpr && K != 1) c.fail("bce takes one negative per row");
    const int64_t nc = R * (1 + K);
    const float* q = c.f32(1, "q", R * d);
    const float* cc = c.f32(2, "c", nc * d);
    float* dq = c.f32(6, "dq", R * d);
    float* dc = c.f32(7, "dc", nc * d);
    if (overlaps(dq, R * d, q, R * d) || overlaps(dq, R * d, cc, nc * d) || overlaps(dc, nc * d, q, R * d) ||
        overlaps(dc, nc * d, cc, nc * d) || overlaps(dq, R * d, dc, nc * d))
      c.fail("dq and dc must not overlap each other, q or c");
    return number(c.env(), tl::pairwise_loss(bpr, q, cc, R, K, d, dq, dc));
  });
}

napi_value TopkRows(napi_env env, napi_callback_info info) {
  return guarded(env, info, "topkRows", [](Call& c) {
    const int64_t rows = c.dim(1, "rows"), cols = c.dim(2, "cols"), k = c.dim(3, "k");
    const float* scores = c.f32(0, "scores", rows * cols);
    int32_t* idx = c.i32(4, "outIdx", rows * k);
    float* val = c.f32(5, "outVal", rows * k);
    tl::topk_rows(scores, rows, cols, k, idx, val);
    return undef(c.env());
  });
}

// ivfSearch(q, centroids, lists, offsets, vectors, ids, dim, nprobe, k, outIdx, outVal) -> hits written.
napi_value IvfSearch(napi_env env, napi_callback_info info) {
  return guarded(env, info, "ivfSearch", [](Call& c) {
    const int64_t lists = c.dim(2, "lists"), d = c.dim(6, "dim"), nprobe = c.dim(7, "nprobe"), k = c.dim(8, "k");
    size_t nv = 0, ni = 0;
    const float* q = c.f32(0, "q", d);
    const float* cent = c.f32(1, "centroids", lists * d);
    const int32_t* off = c.i32(3, "offsets", lists + 1);
    const float* vec = c.f32(4, "vectors", 0, false, &nv);
    const int32_t* ids = c.i32(5, "ids", 0, false, &ni);
    if (d == 0) c.fail("dim must be positive");
    const int64_t n = int64_t(ni);
    if (int64_t(nv) < n * d) c.fail("vectors has " + std::to_string(nv) + " elements, needs ids.length * dim = " + std::to_string(n * d));
    int32_t* idx = c.i32(9, "outIdx", k);
    float* val = c.f32(10, "outVal", k);
    return number(c.env(), double(tl::ivf_search(q, cent, lists, off, vec, ids, n, d, nprobe, k, idx, val)));
  });
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  return guarded(env, info, "setThreads", [](Call& c) {
    const int64_t n = c.dim(0, "n");
    return number(c.env(), tl::set_threads(int(n)));
  });
}

// setSimd(wide: boolean): the GEMM register tile from now on (tests compare both); returns the tile's name.
napi_value SetSimd(napi_env env, napi_callback_info info) {
  return guarded(env, info, "setSimd", [](Call& c) {
    tl::set_simd_wide(c.flag(0, "wide"));
    napi_value s;
    napi_create_string_utf8(c.env(), tl::simd_tile(), NAPI_AUTO_LENGTH, &s);
    return s;
  });
}

// setBf16Native(on: boolean): whether bf16 products use vdpbf16ps (where the CPU has it) or the portable kernel
// (tests compare both); returns the kernel's name.
napi_value SetBf16Native(napi_env env, napi_callback_info info) {
  return guarded(env, info, "setBf16Native", [](Call& c) {
    tl::set_bf16_native(c.flag(0, "on"));
    napi_value s;
    napi_create_string_utf8(c.env(), tl::bf16_kernel(), NAPI_AUTO_LENGTH, &s);
    return s;
  });
}

napi_value Info(napi_env env, napi_callback_info info) {
  return guarded(env, info, "info", [](Call& c) {
    napi_env e = c.env();
    napi_value o, s;
    napi_create_object(e, &o);
    napi_create_string_utf8(e, TL_AVX2 ? "avx2-fma" : "scalar", NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(e, o, "simd", s);
    napi_create_string_utf8(e, tl::simd_tile(), NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(e, o, "gemmTile", s);
    napi_create_string_utf8(e, tl::bf16_kernel(), NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(e, o, "bf16Kernel", s);
    napi_set_named_property(e, o, "threads", number(e, tl::threads()));
    napi_set_named_property(e, o, "maxThreads", number(e, tl::max_threads()));
    napi_set_named_property(e, o, "parallelBackoffs", number(e, double(tl::parallel_backoffs())));
    napi_set_named_property(e, o, "workerJobs", number(e, double(tl::worker_jobs())));
    napi_value tasks;
    napi_create_array_with_length(e, size_t(tl::max_threads()), &tasks);
    for (int t = 0; t < tl::max_threads(); ++t) napi_set_element(e, tasks, uint32_t(t), number(e, double(tl::thread_tasks(t))));
    napi_set_named_property(e, o, "threadTasks", tasks);
    return o;
  });
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"linearForward", nullptr, LinearForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"linearBackward", nullptr, LinearBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"l2normForward", nullptr, L2normForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"l2normBackward", nullptr, L2normBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gatherRows", nullptr, GatherRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseUpdate", nullptr, SparseUpdate, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"contrastive", nullptr, Contrastive, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fullSoftmax", nullptr, FullSoftmax, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"layerNormForward", nullptr, LayerNormForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"layerNormBackward", nullptr, LayerNormBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dropoutForward", nullptr, DropoutForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dropoutBackward", nullptr, DropoutBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionForward", nullptr, AttentionForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionBackward", nullptr, AttentionBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"mergeRows", nullptr, MergeRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"historyPoolForward", nullptr, HistoryPoolForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"historyPoolBackward", nullptr, HistoryPoolBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"pairwiseLoss", nullptr, PairwiseLoss, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"topkRows", nullptr, TopkRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ivfSearch", nullptr, IvfSearch, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setSimd", nullptr, SetSimd, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setBf16Native", nullptr, SetBf16Native, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
