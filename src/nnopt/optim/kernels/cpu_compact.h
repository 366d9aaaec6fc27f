// Compact storage for every rule's kernel: bfloat16 weights that still learn (Kahan
// compensation or stochastic rounding) and optimizer state in bfloat16 or 8 bits.
//
//   int nnopt_<rule>_compact(int64_t n, int nthreads, const <rule>_args*, const Compact*)
//
// runs the rule's own float element (the float32 instantiation of its NNOPT_RULE body) over
// blocks of kQuantBlock elements: each block is unpacked into float registers-and-L1 buffers
// (the weight, plus its Kahan residual: the float master; the gradient; every state), stepped
// exactly as run_typed steps a float32 tensor, and packed back (the weight rounded as
// `update` says, the state requantized). A rule needs nothing of its own for this.
//
// 8-bit state (state_code 2), block-wise as Dettmers et al. 2022 (arXiv 2110.02861): one
// float32 absmax s per block of 256 and a non-linear code per element: a small float of the
// element relative to its block, n = |x| / s in [0, 1] (their dynamic quantization gives each
// code an exponent too; here the exponent is read off the float's bits, so encoding is a few
// integer operations, no table search and no root):
//   signed (first moments):    sign, 4 exponent bits, 3 mantissa bits (n down to 2^-17)
//   unsigned (second moments): 5 exponent bits, 3 mantissa bits      (n down to 2^-33)
// each rounded to nearest (ties up), with a nonzero second moment never stored as 0 (a
// smaller step, never m / eps). The relative error of a stored value is at most 1/16.
//
// The weight in bfloat16 (update): 0 plain, rounded to nearest even; 1 stochastic, rounded up
// with probability equal to the distance to the value below (unbiased: E[round(x)] = x), from
// 16 hashed bits of (seed, index); 2 Kahan: the weight w and a residual c (comp) stand for the
// master w + c; the rule steps the master x, then w <- round(x), c <- x - w. The residual is
// stored float32, bfloat16 (optimi's Kahan buffer), or as 8 bits: the difference of the float32
// bits of x and of w, in units of 256 (1/256 of w's ulp; |c| <= ulp/2, so 1 byte holds it:
// FlashOptim's "ECC" residual, arXiv 2602.23349).

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu_rule.h"

namespace nnopt {

constexpr int64_t kQuantBlock = 256;
constexpr int kMaxPointers = 8;

struct Compact {
  int32_t param_dtype;  // 0 float32, 2 bfloat16 (the gradient's too)
  int32_t state_code;   // 0 float32, 1 bfloat16, 2 8-bit block-wise
  int32_t update;       // 0 plain, 1 stochastic, 2 Kahan (bfloat16 weights only)
  int32_t comp_code;    // Kahan residual: 0 float32, 1 bfloat16, 2 int8 in ulp/256
  int32_t is_signed[kMaxPointers];  // per block pointer: 8-bit code signed (int8) or unsigned
  void* comp;                       // the Kahan residual, laid out as the weight
  void* scales[kMaxPointers];       // per block pointer: float32 absmax of each block (8-bit)
  // Stochastic rounding's int64 counter (the state's rounding_seed), or null: the step's seed
  // is its value (low 32 bits), and the step increments it.
  void* seed_state;
};

// --- bits ------------------------------------------------------------------------------------

inline uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}
inline float float_of(uint32_t u) {
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// A 32-bit integer hash (Wellons' "lowbias32" constants); lowbit/codes.py computes the same.
inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// float -> bfloat16 bits, to nearest even (as store() and c10::BFloat16); NaN stays quiet NaN.
inline uint16_t bf16_nearest(float v) {
  const uint32_t u = bits_of(v);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(v != v ? 0x7fc0u : rounded);
}
inline float bf16_value(uint16_t w) { return float_of(static_cast<uint32_t>(w) << 16); }

// x to bfloat16, rounded up in magnitude with probability (x - below) / ulp.
inline uint16_t round_stochastic(float x, uint32_t random) {
  const uint32_t r = (bits_of(x) + (random & 0xffffu)) >> 16;
  return static_cast<uint16_t>(x != x ? 0x7fc0u : r);
}

// --- 8-bit codes -----------------------------------------------------------------------------
// A block whose absmax is not a finite positive number (all zero, or a NaN or inf in it)
// stores codes 0: its scale alone says what it holds (0 -> zeros, NaN -> NaNs).

inline bool usable(float scale) { return scale > 0.f && scale <= 3.4028235e38f; }

// The largest |x| of a block, NaN if any is NaN: the maximum of the bits of |x|, since the
// order of non-negative floats is their bits' and NaNs sort above inf.
inline float absmax(const float* x, int64_t len) {
  uint32_t m = 0;
  for (int64_t j = 0; j < len; ++j) {
    const uint32_t a = bits_of(x[j]) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return float_of(m);
}

// --- unpack and pack one block -----------------------------------------------------------------
// Copies are plain loops, kept from becoming memcpy calls: glibc's memcpy of a 1 KB block
// (rep movsb) streamed from memory took 3x the whole float32 step here.

#if defined(__GNUC__) && !defined(__clang__)
#define NNOPT_NO_MEMCPY __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NNOPT_NO_MEMCPY
#endif

NNOPT_NO_MEMCPY inline void copy_floats(float* out, const float* in, int64_t len) {
  for (int64_t j = 0; j < len; ++j) out[j] = in[j];
}

inline void unpack_floats(const void* src, int code, int64_t at, int64_t len, float* out) {
  if (code == 0) {
    copy_floats(out, static_cast<const float*>(src) + at, len);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src) + at;
    for (int64_t j = 0; j < len; ++j) out[j] = bf16_value(s[j]);
  }
}

inline void pack_floats(void* dst, int code, int64_t at, int64_t len, const float* in) {
  if (code == 0) {
    copy_floats(static_cast<float*>(dst) + at, in, len);
  } else {
    uint16_t* d = static_cast<uint16_t*>(dst) + at;
    for (int64_t j = 0; j < len; ++j) d[j] = bf16_nearest(in[j]);
  }
}

// The 8-bit small float: kMantissa bits of mantissa, an exponent bias such that 1.0 is the
// largest normal binade's first value (codes above it are never produced: n <= 1).
constexpr int kMantissa = 3;
constexpr int kBiasSigned = 15, kBiasUnsigned = 31;

// The code is the float32 n 2^(bias - 127) rounded to its top 12 bits (sign aside): scaled
// so that n = 1 lands on exponent field `bias`, its exponent field is the code's and its top 3
// mantissa bits the code's mantissa; below 2^(1 - bias) the float is subnormal, whose linear
// spacing is the code's own there. Rounded half up on the bits (a carry moves into the
// exponent). Decoding puts the code back into those bits and scales by 2^(127 - bias).
template <int Bias>
inline int32_t small_float_code(float n) {
  const float scaled = n * float_of(static_cast<uint32_t>(Bias) << 23);  // 2^(Bias - 127)
  return static_cast<int32_t>((bits_of(scaled) + (1u << (22 - kMantissa))) >> (23 - kMantissa));
}

template <int Bias>
inline float small_float_value(int32_t code) {
  const float scaled = float_of(static_cast<uint32_t>(code) << (23 - kMantissa));
  return scaled * float_of(static_cast<uint32_t>(254 - Bias) << 23);  // 2^(127 - Bias)
}

inline void unpack_state(void* src, int code, bool is_signed, const float* scales, int64_t block,
                         int64_t len, float* out) {
  const int64_t at = block * kQuantBlock;
  if (code != 2) return unpack_floats(src, code, at, len, out);
  const float s = scales[block];
  if (is_signed) {
    const int8_t* q = static_cast<const int8_t*>(src) + at;
    for (int64_t j = 0; j < len; ++j) {
      const int32_t c = q[j];
      const float v = small_float_value<kBiasSigned>(c < 0 ? -c : c) * s;
      out[j] = c < 0 ? -v : v;
    }
  } else {
    const uint8_t* q = static_cast<const uint8_t*>(src) + at;
    for (int64_t j = 0; j < len; ++j) out[j] = small_float_value<kBiasUnsigned>(q[j]) * s;
  }
}

inline void pack_state(void* dst, int code, bool is_signed, float* scales, int64_t block,
                       int64_t len, const float* in) {
  const int64_t at = block * kQuantBlock;
  if (code != 2) return pack_floats(dst, code, at, len, in);
  const float s = scales[block] = absmax(in, len);
  if (!usable(s)) {
    std::memset(static_cast<int8_t*>(dst) + at, 0, len);
    return;
  }
  const float inv = 1.f / s;
  if (is_signed) {
    int8_t* q = static_cast<int8_t*>(dst) + at;
    for (int64_t j = 0; j < len; ++j) {
      const int32_t c = std::min(small_float_code<kBiasSigned>(std::abs(in[j]) * inv), 127);
      q[j] = static_cast<int8_t>(in[j] < 0.f ? -c : c);
    }
  } else {
    uint8_t* q = static_cast<uint8_t*>(dst) + at;
    for (int64_t j = 0; j < len; ++j) {
      const float x = std::max(in[j], 0.f);
      const int32_t c = std::min(small_float_code<kBiasUnsigned>(x * inv), 255);
      q[j] = static_cast<uint8_t>(x > 0.f && c < 1 ? 1 : c);  // nonzero stays nonzero
    }
  }
}

// The master weight: w, plus the Kahan residual when there is one.
inline void unpack_weight(const Compact& c, const void* w, int64_t at, int64_t len, float* out) {
  const bool kahan = c.param_dtype == 2 && c.update == 2;
  if (kahan && c.comp_code == 2) {
    // x's bits = w's bits << 16 plus the residual in units of 256 (w and x share a sign)
    const uint16_t* weight = static_cast<const uint16_t*>(w) + at;
    const int8_t* r = static_cast<const int8_t*>(c.comp) + at;
    for (int64_t j = 0; j < len; ++j)
      out[j] = float_of((static_cast<uint32_t>(weight[j]) << 16) + static_cast<uint32_t>(r[j] * 256));
    return;
  }
  unpack_floats(w, c.param_dtype, at, len, out);
  if (!kahan) return;
  float residual[kQuantBlock];
  unpack_floats(c.comp, c.comp_code, at, len, residual);
  for (int64_t j = 0; j < len; ++j) out[j] += residual[j];
}

inline void pack_weight(const Compact& c, uint32_t seed, void* w, int64_t at, int64_t len,
                        const float* x) {
  if (c.param_dtype == 0) {
    copy_floats(static_cast<float*>(w) + at, x, len);
    return;
  }
  uint16_t* weight = static_cast<uint16_t*>(w) + at;
  if (c.update == 1) {
    const uint32_t key = hash32(seed);
    for (int64_t j = 0; j < len; ++j)
      weight[j] = round_stochastic(x[j], hash32(key ^ static_cast<uint32_t>(at + j)));
    return;
  }
  if (c.update == 2 && c.comp_code == 2) {
    // The residual as the difference of the float32 bits of x and of w (x - w in units of
    // 2^-16 of w's ulp), rounded to a multiple of 256 (1/256 of the ulp) half up: |x - w| is at
    // most half an ulp, so the code fits in [-128, 128], clamped to 127.
    int32_t codes[kQuantBlock];
    for (int64_t j = 0; j < len; ++j) {
      const uint16_t rounded = bf16_nearest(x[j]);
      weight[j] = rounded;
      const int32_t d = static_cast<int32_t>(bits_of(x[j]) - (static_cast<uint32_t>(rounded) << 16));
      codes[j] = std::max(-127, std::min(127, (d + 128) >> 8));
    }
    int8_t* r = static_cast<int8_t*>(c.comp) + at;
    for (int64_t j = 0; j < len; ++j) r[j] = static_cast<int8_t>(codes[j]);
    return;
  }
  for (int64_t j = 0; j < len; ++j) weight[j] = bf16_nearest(x[j]);
  if (c.update != 2) return;
  float residual[kQuantBlock];
  for (int64_t j = 0; j < len; ++j) residual[j] = x[j] - bf16_value(weight[j]);  // exact
  pack_floats(c.comp, c.comp_code, at, len, residual);
}

// Flags<rule flags..., false, false>: the block's flags with l2_on and l1_on off.
template <bool... B>
Flags<B..., false, false> regularization_off(Flags<B...>) {
  return {};
}

// --- the driver ----------------------------------------------------------------------------------

template <typename Args, typename K>
void run_compact_typed(const Args& a, int64_t n, int nthreads, const Compact& c, uint32_t seed) {
  constexpr int kPtrs = Args::kPointers;
  static_assert(kPtrs <= kMaxPointers, "raise kMaxPointers");
  // The rule's setup once, on the real block (it may advance a scalar: NAdam's mu_product);
  // each chunk below rebuilds the element from the scalars as they were before it.
  float before[kMaxPointers] = {};
  void* const* real = reinterpret_cast<void* const*>(&a);
  for (int k = 2; k < kPtrs; ++k)
    if (!Args::kIsState[k] && real[k] != nullptr) before[k] = *static_cast<float*>(real[k]);
  (void)Args::template make<float, float, K>(a);
  const float l2 = float(a.l2), decay = float(a.decay), l1lr = float(a.l1lr);
  // One pass per block of 256: longer passes (2 or 4 blocks) measured slower (AdamW, bf16 +
  // Kahan + 8-bit, 1 thread: 15.7 ms, 16.3, 20.4): the buffers leave L1.
  const int64_t blocks = (n + kQuantBlock - 1) / kQuantBlock;
  // Chunks of half a thread's share (at least 64 blocks), so that each thread streams long
  // runs: AdamW, bf16 + Kahan + 8-bit, 8 x 2.5M, 2 threads (benchmarks/compact_arithmetic.cpp):
  // 0.46-0.50 ns per element with chunks of 64 blocks, 0.43-0.46 with 1/8 of a share,
  // 0.37-0.39 with 1/2 (on one thread, 0.70-0.74). Two processes of one thread each ran at
  // 0.77 ns apiece (0.385 together): the short chunks, not the machine, lost the difference.
  const int64_t chunk = std::max<int64_t>(64, blocks / std::max(1, nthreads) / 2);
  parallel_chunks(blocks, chunk, nthreads, [&](int64_t first, int64_t last) {
    float buffers[kMaxPointers][kQuantBlock];
    float scalars[kMaxPointers];
    Args local = a;
    void** slots = reinterpret_cast<void**>(&local);
    for (int k = 2; k < kPtrs; ++k) {
      if (slots[k] == nullptr) continue;
      if (Args::kIsState[k]) {
        slots[k] = buffers[k];
      } else {
        scalars[k] = before[k];
        slots[k] = &scalars[k];
      }
    }
    const auto element = Args::template make<float, float, K>(local);
    float* P = buffers[0];
    float* G = buffers[1];
    float D[kQuantBlock];  // each element's preconditioner, for the L1 step
    for (int64_t b = first; b < last; ++b) {
      const int64_t at = b * kQuantBlock, len = std::min(kQuantBlock, n - at);
      unpack_weight(c, a.p, at, len, P);
      unpack_floats(a.g, c.param_dtype, at, len, G);
      for (int k = 2; k < kPtrs; ++k)
        if (Args::kIsState[k] && real[k] != nullptr)
          unpack_state(real[k], c.state_code, c.is_signed[k], static_cast<float*>(c.scales[k]),
                       b, len, buffers[k]);
      // L2 and L1 as passes of their own around the rule (the same operations in the same
      // order as run_typed's loop), so that they are not template flags here: 4x fewer
      // instantiations of this driver (the library builds in a third of the time).
      if (a.l2_on)
        for (int64_t j = 0; j < len; ++j) G[j] = G[j] + l2 * P[j];
#pragma GCC ivdep
      for (int64_t j = 0; j < len; ++j) {
        float p = P[j] * decay;
        D[j] = element(p, G[j], j);
        P[j] = p;
      }
      if (a.l1_on)
        for (int64_t j = 0; j < len; ++j) P[j] = soft_threshold(P[j], 1.f / D[j] * l1lr);
      pack_weight(c, seed, a.p, at, len, P);
      for (int k = 2; k < kPtrs; ++k)
        if (Args::kIsState[k] && real[k] != nullptr)
          pack_state(real[k], c.state_code, c.is_signed[k], static_cast<float*>(c.scales[k]), b,
                     len, buffers[k]);
    }
  });
}

inline bool valid(const Compact& c) {
  if ((c.param_dtype != 0 && c.param_dtype != 2) || c.state_code < 0 || c.state_code > 2 ||
      c.update < 0 || c.update > 2 || c.comp_code < 0 || c.comp_code > 2)
    return false;
  return !(c.param_dtype == 2 && c.update == 2 && c.comp == nullptr);
}

// One tensor, its storage valid (checked by the callers).
template <typename Args>
void run_compact_checked(int64_t n, int nthreads, const Args& a, const Compact& c) {
  int64_t* counter = static_cast<int64_t*>(c.seed_state);
  const uint32_t seed = counter != nullptr ? static_cast<uint32_t>(*counter) : 0;
  const auto flags = a.flags();
  // The rule's flags as template arguments; l2_on and l1_on (the last two) are read at run
  // time by the driver.
  with_flags<Args::kFlags - 2>(flags.data(), [&](auto known) {
    run_compact_typed<Args, decltype(regularization_off(known))>(a, n, nthreads, c, seed);
  });
  if (counter != nullptr) ++*counter;
}

// 0 on success, 1 for codes out of range.
template <typename Args>
int run_compact(int64_t n, int nthreads, const Args* args, const Compact* compact) {
  if (!valid(*compact)) return 1;
  run_compact_checked(n, nthreads, *args, *compact);
  return 0;
}

// Many tensors per call, as run_many: row i of `table` holds tensor i's kPointers pointers
// then its step counter (or null; dtype step_dtype), compacts[i] its storage. Per tensor the
// Python side of the one-tensor entry costs ~15 us; a group of 500 small tensors paid that
// rather than its memory traffic. Nothing is touched (1) if any storage code is out of range.
template <typename Args>
int run_compact_many(int64_t count, int nthreads, const Args* block, const int64_t* sizes,
                     void* const* table, int step_dtype, const Compact* compacts) {
  if (step_dtype < 0 || step_dtype > 1) return 1;
  for (int64_t i = 0; i < count; ++i)
    if (sizes[i] > 0 && !valid(compacts[i])) return 1;  // (an empty tensor has no storage)
  each_tensor(count, sizes, nthreads, [=](int64_t i, int threads) {
    run_compact_checked(sizes[i], threads, row_block(*block, table, i, step_dtype), compacts[i]);
  });
  return 0;
}

}  // namespace nnopt
