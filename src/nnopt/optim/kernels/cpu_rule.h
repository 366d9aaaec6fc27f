// How a native kernel is declared: one NNOPT_RULE per update rule, with its math.
//
//   NNOPT_RULE(lion, ptr(exp_avg), f64(beta1), f64(beta2)) {
//     ... constants of the call (once per tensor) ...
//     return [=](A& p, A g, int64_t i) -> A { ... one element: update p and the state,
//                                            return the preconditioner d ... };
//   }
//
// declares the rule's parameter block (a struct of its state pointers, flags and scalars
// after the fields every block has, below), and emits its C entry points:
//
//   int nnopt_<rule>(int dtype, int64_t n, int nthreads, const <rule>_args*)   one tensor
//   int nnopt_<rule>_many(dtype, count, nthreads, block, sizes, table, step_dtype)
//   const char* nnopt_<rule>_args_layout()   "p:ptr,g:ptr,exp_avg:ptr,...,beta2:f64"
//   size_t nnopt_<rule>_args_size()          sizeof the block
//   int nnopt_<rule>_compact(n, nthreads, block, compact)   bfloat16 weights, 8-bit state
//   int nnopt_<rule>_compact_many(count, nthreads, block, sizes, table, step_dtype, compacts)
//                                             (both in cpu_compact.h)
//
// and registers <rule> in nnopt_rules(). The Python side (kernels/blocks.py) builds each
// block's ctypes structure from its layout string and fills it by field name, every field
// given, so the two sides cannot disagree on an order; it checks the sizes at load.
//
// Inside the body: `a` is the block (a.lr, a.step, the rule's fields), A the arithmetic type
// (float for bfloat16 tensors), T the tensor element type (at<T>(a.exp_avg, i) reads a state
// element, put<T>(a.exp_avg, i, v) writes it), and NNOPT_ON(flag) is a flag as a compile-time
// constant. Every flag of the block selects its own instantiation, so a flag costs nothing
// in the loop. The driver (run_typed) applies, around the element, what every rule shares:
//
//   g <- g + l2 * theta;  theta <- theta * decay;  theta, state <- element;  theta <- prox_l1
//
// with decay = 1 - lr * weight_decay and the L1 threshold l1 * lr / d (l1lr / d).
//
// Fields every block has: p, g (the parameter and its gradient), the flags l2_on and l1_on,
// and the scalars lr, step (the tensor's step count t, from 1: the many-tensor form reads it
// from each tensor's counter), l2, decay, l1lr.

#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu_pool.h"

namespace nnopt {

// --- Element types ------------------------------------------------------------------------
// dtype codes: 0 float32, 1 float64, 2 bfloat16 (computed in float, rounded once on store).

struct bf16 {
  uint16_t bits;
};

template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<bf16> {
  using type = float;
};

inline float load(const float* p, int64_t i) { return p[i]; }
inline double load(const double* p, int64_t i) { return p[i]; }
inline float load(const bf16* p, int64_t i) {
  uint32_t u = static_cast<uint32_t>(p[i].bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(double* p, int64_t i, double v) { p[i] = v; }
inline void store(bf16* p, int64_t i, float v) {
  // Round to nearest even, as c10::BFloat16 does; NaN stays a quiet NaN.
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  p[i].bits = static_cast<uint16_t>(v != v ? 0x7fc0u : rounded);
}

// A state element through a block's pointer field.
template <typename T>
inline typename Acc<T>::type at(void* field, int64_t i) {
  return load(static_cast<const T*>(field), i);
}
template <typename T, typename A>
inline void put(void* field, int64_t i, A value) {
  store(static_cast<T*>(field), i, value);
}

// --- Shared math ----------------------------------------------------------------------------

// theta <- sign(theta) * max(|theta| - tau, 0), as rules.soft_threshold_.
template <typename A>
inline A soft_threshold(A p, A tau) {
  A shrunk = std::abs(p) - tau;
  shrunk = shrunk > A(0) ? shrunk : (shrunk != shrunk ? shrunk : A(0));  // clamp keeps NaN
  A sign = p > A(0) ? A(1) : (p < A(0) ? A(-1) : p);                     // sign(0)=0, NaN=NaN
  return shrunk * sign;
}

// lerp(a, b, w) with torch's two formulas, exact at both ends: low is |w| < 0.5 (constant over
// a call, so the compiler unswitches the loop on it).
template <typename A>
inline A lerp(A a, A b, A w, bool low) {
  return low ? a + w * (b - a) : b - (b - a) * (A(1) - w);
}

// sign(c) as torch.sign: -1, 0 or 1, and NaN stays NaN.
template <typename A>
inline A sign_of(A c) {
  return c > A(0) ? A(1) : (c < A(0) ? A(-1) : c);
}

// --- Flags as compile-time constants ----------------------------------------------------------

template <bool... B>
struct Flags {
  static constexpr bool on(int index) {
    constexpr bool values[] = {B..., false};
    return values[index];
  }
};

// Call f(Flags<b0, b1, ...>{}) with the N flags of `values` as template arguments.
template <int N, typename F, bool... B>
inline void with_flags(const int32_t* values, F&& f, Flags<B...> known = {}) {
  if constexpr (sizeof...(B) == N) {
    f(known);
  } else if (values[sizeof...(B)]) {
    with_flags<N>(values, f, Flags<B..., true>{});
  } else {
    with_flags<N>(values, f, Flags<B..., false>{});
  }
}

template <typename F>
inline int with_dtype(int dtype, F&& f) {
  switch (dtype) {
    case 0:
      f(static_cast<float*>(nullptr));
      return 0;
    case 1:
      f(static_cast<double*>(nullptr));
      return 0;
    case 2:
      f(static_cast<bf16*>(nullptr));
      return 0;
    default:
      return 1;
  }
}

// --- The driver: one tensor, then many ---------------------------------------------------------

template <typename Args, typename T, typename K>
void run_typed(const Args& a, int64_t n, int nthreads) {
  using A = typename Acc<T>::type;
  T* P = static_cast<T*>(a.p);
  const T* G = static_cast<const T*>(a.g);
  const A l2 = A(a.l2), decay = A(a.decay), l1lr = A(a.l1lr);
  const auto element = Args::template make<A, T, K>(a);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (K::on(Args::k_l2_on)) g = g + l2 * p;
      p = p * decay;
      const A d = element(p, g, i);
      if constexpr (K::on(Args::k_l1_on)) p = soft_threshold(p, A(1) / d * l1lr);
      store(P, i, p);
    }
  });
}

// One tensor: 0 on success, 1 for an unknown dtype code.
template <typename Args>
int run_rule(int dtype, int64_t n, int nthreads, const Args* args) {
  const Args& a = *args;
  const auto flags = a.flags();
  return with_dtype(dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    with_flags<Args::kFlags>(flags.data(), [&](auto known) {
      run_typed<Args, T, decltype(known)>(a, n, nthreads);
    });
  });
}

// Many tensors per call: row i of `table` holds tensor i's kPointers pointers, in the block's
// field order, then its step counter (a float32 or float64 scalar as step_dtype is 0 or 1, or
// null for optimizers that keep none), which is incremented by one first, as torch's
// `step += 1`, and becomes the block's `step`; sizes[i] is its element count. The block's own
// pointers are ignored and its scalars shared. Small tensors go to the threads whole, large
// ones are split as one tensor is: a group of 2,000 tensors of 1,000 elements costs one call.
constexpr int64_t kLarge = int64_t{1} << 16;  // elements from which a tensor is split itself

// step <- step + 1 in the counter's own precision; returns the new value.
inline double advance_step(void* counter, int step_dtype) {
  if (step_dtype == 1) return *static_cast<double*>(counter) += 1.0;
  return static_cast<double>(*static_cast<float*>(counter) += 1.0f);
}

// Row i's block: the shared block with the row's pointers, its step counter advanced.
template <typename Args>
Args row_block(const Args& block, void* const* table, int64_t i, int step_dtype) {
  Args a = block;
  void* const* r = table + i * (Args::kPointers + 1);
  std::memcpy(static_cast<void*>(&a), r, sizeof(void*) * Args::kPointers);
  if (r[Args::kPointers] != nullptr) a.step = advance_step(r[Args::kPointers], step_dtype);
  return a;
}

// row(i, threads) for every tensor i: the large ones split over the threads one after
// another, the small ones whole, spread over the threads (about 16K elements per chunk, as
// in parallel()).
template <typename Row>
void each_tensor(int64_t count, const int64_t* sizes, int nthreads, Row row) {
  std::vector<int64_t> small;
  int64_t small_elements = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (sizes[i] >= kLarge) {
      row(i, nthreads);
    } else {
      small.push_back(i);
      small_elements += sizes[i];
    }
  }
  if (small.empty()) return;
  const int64_t rows = static_cast<int64_t>(small.size());
  const int64_t per = std::max<int64_t>(1, (rows << 14) / std::max<int64_t>(1, small_elements));
  const int64_t* index = small.data();
  parallel_chunks(rows, per, nthreads, [=](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) row(index[k], 1);
  });
}

template <typename Args>
int run_many(int dtype, int64_t count, int nthreads, const Args* block, const int64_t* sizes,
             void* const* table, int step_dtype) {
  if (dtype < 0 || dtype > 2 || step_dtype < 0 || step_dtype > 1) return 1;
  each_tensor(count, sizes, nthreads, [=](int64_t i, int threads) {
    const Args a = row_block(*block, table, i, step_dtype);
    run_rule(dtype, sizes[i], threads, &a);
  });
  return 0;
}

// The rules' names, for nnopt_rules(): each NNOPT_RULE adds its own at static initialization.
inline std::string& rule_names() {
  static std::string names;
  return names;
}
inline int register_rule(const char* name) {
  std::string& names = rule_names();
  names += names.empty() ? name : std::string(",") + name;
  return 0;
}

}  // namespace nnopt

// --- The declaration macro ------------------------------------------------------------------

// NNOPT_EACH(m, x1, x2, ...) is m(x1) m(x2) ... (up to 16 fields).
#define NNOPT_CAT(a, b) NNOPT_CAT_(a, b)
#define NNOPT_CAT_(a, b) a##b
#define NNOPT_COUNT(...) \
  NNOPT_COUNT_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define NNOPT_COUNT_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, N, \
                     ...)                                                                     \
  N
#define NNOPT_EACH(m, ...) NNOPT_CAT(NNOPT_EACH_, NNOPT_COUNT(__VA_ARGS__))(m, __VA_ARGS__)
#define NNOPT_EACH_1(m, x) m(x)
#define NNOPT_EACH_2(m, x, ...) m(x) NNOPT_EACH_1(m, __VA_ARGS__)
#define NNOPT_EACH_3(m, x, ...) m(x) NNOPT_EACH_2(m, __VA_ARGS__)
#define NNOPT_EACH_4(m, x, ...) m(x) NNOPT_EACH_3(m, __VA_ARGS__)
#define NNOPT_EACH_5(m, x, ...) m(x) NNOPT_EACH_4(m, __VA_ARGS__)
#define NNOPT_EACH_6(m, x, ...) m(x) NNOPT_EACH_5(m, __VA_ARGS__)
#define NNOPT_EACH_7(m, x, ...) m(x) NNOPT_EACH_6(m, __VA_ARGS__)
#define NNOPT_EACH_8(m, x, ...) m(x) NNOPT_EACH_7(m, __VA_ARGS__)
#define NNOPT_EACH_9(m, x, ...) m(x) NNOPT_EACH_8(m, __VA_ARGS__)
#define NNOPT_EACH_10(m, x, ...) m(x) NNOPT_EACH_9(m, __VA_ARGS__)
#define NNOPT_EACH_11(m, x, ...) m(x) NNOPT_EACH_10(m, __VA_ARGS__)
#define NNOPT_EACH_12(m, x, ...) m(x) NNOPT_EACH_11(m, __VA_ARGS__)
#define NNOPT_EACH_13(m, x, ...) m(x) NNOPT_EACH_12(m, __VA_ARGS__)
#define NNOPT_EACH_14(m, x, ...) m(x) NNOPT_EACH_13(m, __VA_ARGS__)
#define NNOPT_EACH_15(m, x, ...) m(x) NNOPT_EACH_14(m, __VA_ARGS__)
#define NNOPT_EACH_16(m, x, ...) m(x) NNOPT_EACH_15(m, __VA_ARGS__)

// A field is ptr(name), scalar(name), flag(name) or f64(name): each use pastes a prefix onto
// the tag, which selects what that kind of field gives (a member, a layout entry, a count) and
// drops the rest, so the block lists its pointers, then its flags, then its scalars, whatever
// the order given. scalar(name) is a pointer too (a row of the many-tensor table fills it), to
// the tensor's own one-element float32 state (NAdam's mu_product): the body reads and writes
// it in its setup, which runs once per tensor, before the elements.
#define NNOPT_PTR_MEMBER(field) NNOPT_PTR_MEMBER_##field
#define NNOPT_PTR_MEMBER_ptr(name) void* name;
#define NNOPT_PTR_MEMBER_scalar(name) void* name;
#define NNOPT_PTR_MEMBER_flag(name)
#define NNOPT_PTR_MEMBER_f64(name)
#define NNOPT_FLAG_MEMBER(field) NNOPT_FLAG_MEMBER_##field
#define NNOPT_FLAG_MEMBER_ptr(name)
#define NNOPT_FLAG_MEMBER_scalar(name)
#define NNOPT_FLAG_MEMBER_flag(name) int32_t name;
#define NNOPT_FLAG_MEMBER_f64(name)
#define NNOPT_F64_MEMBER(field) NNOPT_F64_MEMBER_##field
#define NNOPT_F64_MEMBER_ptr(name)
#define NNOPT_F64_MEMBER_scalar(name)
#define NNOPT_F64_MEMBER_flag(name)
#define NNOPT_F64_MEMBER_f64(name) double name;
#define NNOPT_PTR_LAYOUT(field) NNOPT_PTR_LAYOUT_##field
#define NNOPT_PTR_LAYOUT_ptr(name) "," #name ":ptr"
#define NNOPT_PTR_LAYOUT_scalar(name) "," #name ":scalar"
#define NNOPT_PTR_LAYOUT_flag(name)
#define NNOPT_PTR_LAYOUT_f64(name)
#define NNOPT_FLAG_LAYOUT(field) NNOPT_FLAG_LAYOUT_##field
#define NNOPT_FLAG_LAYOUT_ptr(name)
#define NNOPT_FLAG_LAYOUT_scalar(name)
#define NNOPT_FLAG_LAYOUT_flag(name) "," #name ":i32"
#define NNOPT_FLAG_LAYOUT_f64(name)
#define NNOPT_F64_LAYOUT(field) NNOPT_F64_LAYOUT_##field
#define NNOPT_F64_LAYOUT_ptr(name)
#define NNOPT_F64_LAYOUT_scalar(name)
#define NNOPT_F64_LAYOUT_flag(name)
#define NNOPT_F64_LAYOUT_f64(name) "," #name ":f64"
#define NNOPT_PTR_COUNT(field) NNOPT_PTR_COUNT_##field
#define NNOPT_PTR_COUNT_ptr(name) +1
#define NNOPT_PTR_COUNT_scalar(name) +1
#define NNOPT_PTR_COUNT_flag(name)
#define NNOPT_PTR_COUNT_f64(name)
#define NNOPT_FLAG_INDEX(field) NNOPT_FLAG_INDEX_##field
#define NNOPT_FLAG_INDEX_ptr(name)
#define NNOPT_FLAG_INDEX_scalar(name)
#define NNOPT_FLAG_INDEX_flag(name) k_##name,
#define NNOPT_FLAG_INDEX_f64(name)
#define NNOPT_PTR_STATE(field) NNOPT_PTR_STATE_##field
#define NNOPT_PTR_STATE_ptr(name) true,
#define NNOPT_PTR_STATE_scalar(name) false,
#define NNOPT_PTR_STATE_flag(name)
#define NNOPT_PTR_STATE_f64(name)
#define NNOPT_FLAG_VALUE(field) NNOPT_FLAG_VALUE_##field
#define NNOPT_FLAG_VALUE_ptr(name)
#define NNOPT_FLAG_VALUE_scalar(name)
#define NNOPT_FLAG_VALUE_flag(name) name,
#define NNOPT_FLAG_VALUE_f64(name)

// A flag of the block as a compile-time constant, inside a rule's body.
#define NNOPT_ON(flag) (K::on(k_##flag))

// The library builds as two translation units compiled in parallel (build.py): part 1 holds
// every rule's plain entries, its layout and its registration, part 2 its compact entry
// (cpu_compact.h); part 0, one unit with everything, is the fallback.
#ifndef NNOPT_PART
#define NNOPT_PART 0
#endif
#if NNOPT_PART == 2
#define NNOPT_PLAIN_ENTRIES(rule, ...)
#else
#define NNOPT_PLAIN_ENTRIES(rule, ...)                                                         \
  extern "C" const char* nnopt_##rule##_args_layout() {                                        \
    return "p:ptr,g:ptr" NNOPT_EACH(NNOPT_PTR_LAYOUT, __VA_ARGS__) NNOPT_EACH(                 \
        NNOPT_FLAG_LAYOUT, __VA_ARGS__) ",l2_on:i32,l1_on:i32,lr:f64,step:f64,l2:f64,"         \
                                        "decay:f64,l1lr:f64" NNOPT_EACH(NNOPT_F64_LAYOUT,      \
                                                                        __VA_ARGS__);          \
  }                                                                                            \
  extern "C" size_t nnopt_##rule##_args_size() { return sizeof(rule##_args); }                 \
  extern "C" int nnopt_##rule(int dtype, int64_t n, int nthreads, const rule##_args* a) {      \
    return nnopt::run_rule(dtype, n, nthreads, a);                                             \
  }                                                                                            \
  extern "C" int nnopt_##rule##_many(int dtype, int64_t count, int nthreads,                   \
                                     const rule##_args* block, const int64_t* sizes,           \
                                     void* const* table, int step_dtype) {                     \
    return nnopt::run_many(dtype, count, nthreads, block, sizes, table, step_dtype);           \
  }                                                                                            \
  static const int rule##_registered = nnopt::register_rule(#rule);
#endif
#if NNOPT_PART == 1
#define NNOPT_COMPACT_ENTRY(rule)
#else
#define NNOPT_COMPACT_ENTRY(rule)                                                              \
  extern "C" int nnopt_##rule##_compact(int64_t n, int nthreads, const rule##_args* a,         \
                                        const nnopt::Compact* c) {                            \
    return nnopt::run_compact(n, nthreads, a, c);                                              \
  }                                                                                            \
  extern "C" int nnopt_##rule##_compact_many(int64_t count, int nthreads,                      \
                                             const rule##_args* block, const int64_t* sizes,   \
                                             void* const* table, int step_dtype,               \
                                             const nnopt::Compact* compacts) {                 \
    return nnopt::run_compact_many(count, nthreads, block, sizes, table, step_dtype,           \
                                   compacts);                                                  \
  }
#endif

#define NNOPT_RULE(rule, ...)                                                                  \
  struct rule##_args {                                                                         \
    void* p;                                                                                   \
    void* g;                                                                                   \
    NNOPT_EACH(NNOPT_PTR_MEMBER, __VA_ARGS__)                                                  \
    NNOPT_EACH(NNOPT_FLAG_MEMBER, __VA_ARGS__)                                                 \
    int32_t l2_on;                                                                             \
    int32_t l1_on;                                                                             \
    double lr, step, l2, decay, l1lr;                                                          \
    NNOPT_EACH(NNOPT_F64_MEMBER, __VA_ARGS__)                                                  \
    static constexpr int kPointers = 2 NNOPT_EACH(NNOPT_PTR_COUNT, __VA_ARGS__);               \
    /* which pointers are element-wise state (not p, g, or a scalar): compact storage */       \
    static constexpr bool kIsState[kPointers] = {false, false,                                 \
                                                 NNOPT_EACH(NNOPT_PTR_STATE, __VA_ARGS__)};    \
    enum : int { NNOPT_EACH(NNOPT_FLAG_INDEX, __VA_ARGS__) k_l2_on, k_l1_on, kFlags };         \
    std::array<int32_t, kFlags> flags() const {                                                \
      return {{NNOPT_EACH(NNOPT_FLAG_VALUE, __VA_ARGS__) l2_on, l1_on}};                       \
    }                                                                                          \
    template <typename A, typename T, typename K>                                              \
    static auto make(const rule##_args& a);                                                    \
  };                                                                                           \
  NNOPT_PLAIN_ENTRIES(rule, __VA_ARGS__)                                                       \
  NNOPT_COMPACT_ENTRY(rule)                                                                    \
  template <typename A, typename T, typename K>                                                 \
  auto rule##_args::make(const rule##_args& a)
