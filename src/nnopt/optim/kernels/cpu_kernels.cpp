// One-pass CPU kernels for nnopt's update rules.
//
// Each entry point reads every input once and writes every output once: coupled L2,
// decoupled decay, the rule and the L1 proximal step happen in registers, in the order of
// nnopt.optim.dispatch.apply:
//
//   g <- g + l2 * theta;  theta <- theta * decay;  theta, state <- rule;  theta <- prox_l1
//
// with decay = 1 - lr * weight_decay (1 when off: multiplying by 1 is exact) and the L1
// threshold tau = l1 * lr / d, d the rule's preconditioner. The arithmetic mirrors the order
// of operations of the eager PyTorch ops in nnopt/optim/rules.py (addcmul: a + (v * b) * c,
// addcdiv: a + (v * b) / c, lerp with torch's two forms), so float32 and float64 results
// agree with the eager rule to rounding. bfloat16 is computed in float and rounded once on
// store (the eager rule rounds after every op, so it is the less accurate of the two).
//
// Plain C ABI, no PyTorch headers: the library builds in about a second and is loaded with
// ctypes (see build.py). A small thread pool (Pool, below) spreads the chunks over the cores.
//
// dtype codes: 0 float32, 1 float64, 2 bfloat16.
//
// Each entry point takes (dtype, n, nthreads) and one parameter block per rule (SgdArgs, ...),
// declared in cpu_blocks.h and checked at load time against kernels/blocks.py.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "cpu_blocks.h"

namespace {

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

// --- A small thread pool that never waits for a thread that has not started -----------------
//
// OpenMP's fork/join waits at its barrier for every thread of the team: on a machine whose
// cores are busy with other processes, a helper that is not scheduled stalls the step for a
// whole time slice (4-12 ms measured here, on steps that take 0.2 ms). Here the calling thread
// works through the chunks itself and helpers only take the chunks still unclaimed when they
// wake, so the step finishes when the work is done, never later than the caller alone would.
//
// The job is published as (generation << 32 | next chunk) in one atomic word: a helper claims
// a chunk with a compare-and-swap that fails if the generation moved on, and reads the job
// only after claiming, when the caller cannot replace it (it waits for every claimed chunk).

using ChunkFn = void (*)(const void* ctx, int64_t begin, int64_t end);

class Pool {
 public:
  void run(int64_t n, int64_t chunk, int nthreads, ChunkFn fn, const void* ctx) {
    const int64_t chunks = (n + chunk - 1) / chunk;
    if (nthreads <= 1 || chunks <= 1) {
      fn(ctx, 0, n);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);  // one job at a time
    spawn(nthreads - 1);
    uint64_t generation;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation = ++generation_;
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      chunk_ = chunk;
      chunks_ = chunks;
      done_.store(0, std::memory_order_relaxed);
      ticket_.store(generation << 32, std::memory_order_release);
    }
    wake_.notify_all();
    const int64_t mine = work(generation);
    int64_t target = chunks - mine;
    while (done_.load(std::memory_order_acquire) < target) std::this_thread::yield();
  }

 private:
  void spawn(int helpers) {
    while (static_cast<int>(threads_) < helpers) {
      std::thread([this] { loop(); }).detach();
      ++threads_;
    }
  }

  // Claim and run chunks of `generation` until none is left; return how many this thread ran.
  int64_t work(uint64_t generation) {
    int64_t ran = 0;
    uint64_t t = ticket_.load(std::memory_order_acquire);
    while ((t >> 32) == (generation & 0xffffffffu)) {
      const int64_t index = static_cast<int64_t>(t & 0xffffffffu);
      if (index >= chunks_.load(std::memory_order_relaxed)) break;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      const int64_t begin = index * chunk_, end = std::min(begin + chunk_, n_);
      fn_(ctx_, begin, end);
      ++ran;
      t = ticket_.load(std::memory_order_acquire);
    }
    return ran;
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      uint64_t generation;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        generation = seen = generation_;
      }
      const int64_t ran = work(generation);
      if (ran) done_.fetch_add(ran, std::memory_order_acq_rel);
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int64_t> done_{0}, chunks_{0};
  ChunkFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  unsigned threads_ = 0;
};

// Never destroyed: detached helpers may still be waiting on it when the process exits.
Pool& pool() {
  static Pool* instance = new Pool();
  return *instance;
}

// Run body(begin, end) over [0, n) in chunks of `chunk`, on up to `nthreads` threads.
template <typename F>
void parallel_chunks(int64_t n, int64_t chunk, int nthreads, F body) {
  ChunkFn fn = [](const void* ctx, int64_t begin, int64_t end) {
    (*static_cast<const F*>(ctx))(begin, end);
  };
  pool().run(n, chunk, nthreads, fn, &body);
}

// Run body(begin, end) over [0, n) in chunks, on up to `nthreads` threads.
template <typename F>
void parallel(int64_t n, int nthreads, F body) {
  // At least 16K elements (~10 us of work, amortizes a claim); at most 1/8 of a thread's share,
  // so each thread streams long runs (the prefetchers like that: 2x fewer stalls on Adam's
  // seven streams than 16K chunks) and a helper that is not scheduled costs little.
  if (n <= 0) return;
  const int64_t share = n / (8 * static_cast<int64_t>(nthreads > 0 ? nthreads : 1));
  const int64_t chunk = std::max<int64_t>(int64_t{1} << 14, (share + 63) / 64 * 64);
  parallel_chunks(n, chunk, nthreads, body);
}

// theta <- sign(theta) * max(|theta| - tau, 0), as rules.soft_threshold_.
template <typename A>
inline A soft_threshold(A p, A tau) {
  A shrunk = std::abs(p) - tau;
  shrunk = shrunk > A(0) ? shrunk : (shrunk != shrunk ? shrunk : A(0));  // clamp keeps NaN
  A sign = p > A(0) ? A(1) : (p < A(0) ? A(-1) : p);                     // sign(0)=0, NaN=NaN
  return shrunk * sign;
}

// lerp(a, b, w) with torch's two formulas (exact at both ends); kLow: |w| < 0.5, which is
// loop-invariant, so it is a template argument rather than a select in the loop.
template <bool kLow, typename A>
inline A lerp(A a, A b, A w) {
  if constexpr (kLow) {
    return a + w * (b - a);
  } else {
    return b - (b - a) * (A(1) - w);
  }
}

// Call f with std::integral_constant<bool, flag>, so that flags become template arguments.
template <typename F>
inline void with_flag(bool flag, F f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

template <typename F>
inline int with_dtype(int dtype, F f) {
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

// The dtype and the two flags every block has (l2_on, l1_on) as compile-time choices: calls
// f(T* tag, kL2, kL1) with the kernel instantiation they select; 1 for an unknown dtype.
template <typename Args, typename F>
inline int with_regularization(int dtype, const Args& a, F f) {
  return with_dtype(dtype, [&](auto tag) {
    with_flag(a.l2_on, [&](auto kL2) { with_flag(a.l1_on, [&](auto kL1) { f(tag, kL2, kL1); }); });
  });
}

// --- SGD, heavy-ball and Nesterov momentum -------------------------------------------------

template <typename T, bool kMomentum, bool kNesterov, bool kL2, bool kL1>
void sgd(T* __restrict__ P, const T* __restrict__ G, T* __restrict__ B, int64_t n, int nthreads,
         const SgdArgs& a) {
  using A = typename Acc<T>::type;
  const A neg_lr = A(-a.lr), mu = A(a.mu), l2 = A(a.l2), decay = A(a.decay), tau = A(a.l1lr);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (kL2) g = g + l2 * p;
      p = p * decay;
      if constexpr (kMomentum) {
        const A b = load(B, i) * mu + g;
        store(B, i, b);
        p = p + neg_lr * (kNesterov ? g + mu * b : b);
      } else {
        p = p + neg_lr * g;
      }
      if constexpr (kL1) p = soft_threshold(p, tau);
      store(P, i, p);
    }
  });
}

// --- AdaGrad ---------------------------------------------------------------------------------

template <typename T, bool kL2, bool kL1>
void adagrad(T* __restrict__ P, const T* __restrict__ G, T* __restrict__ S, int64_t n,
             int nthreads, const AdagradArgs& a) {
  using A = typename Acc<T>::type;
  const A neg_lr = A(-a.lr), eps = A(a.eps), l2 = A(a.l2), decay = A(a.decay), l1lr = A(a.l1lr);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (kL2) g = g + l2 * p;
      p = p * decay;
      const A s = load(S, i) + g * g;
      store(S, i, s);
      const A d = std::sqrt(s) + eps;
      p = p + neg_lr * g / d;
      if constexpr (kL1) p = soft_threshold(p, A(1) / d * l1lr);
      store(P, i, p);
    }
  });
}

// --- RMSProp: seed and torch forms, centered, momentum ----------------------------------------

template <typename T, bool kCentered, bool kLow, bool kMomentum, bool kEpsInside, bool kL2,
          bool kL1>
void rmsprop(T* __restrict__ P, const T* __restrict__ G, T* __restrict__ E,
             T* __restrict__ GA, T* __restrict__ B, int64_t n, int nthreads,
             const RmspropArgs& a) {
  using A = typename Acc<T>::type;
  const A neg_lr = A(-a.lr), rho = A(a.rho), w = A(1.0 - a.rho), eps = A(a.eps), mu = A(a.mu);
  const A l2 = A(a.l2), decay = A(a.decay), l1lr = A(a.l1lr);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (kL2) g = g + l2 * p;
      p = p * decay;
      const A e = load(E, i) * rho + w * g * g;
      store(E, i, e);
      A spread = e;
      if constexpr (kCentered) {
        const A ga = lerp<kLow>(load(GA, i), g, w);
        store(GA, i, ga);
        spread = e + A(-1) * ga * ga;
      }
      const A d = kEpsInside ? std::sqrt(spread + eps) : std::sqrt(spread) + eps;
      if constexpr (kMomentum) {
        const A b = load(B, i) * mu + g / d;
        store(B, i, b);
        p = p + neg_lr * b;
      } else {
        p = p + neg_lr * g / d;
      }
      if constexpr (kL1) p = soft_threshold(p, A(1) / d * l1lr);
      store(P, i, p);
    }
  });
}

// --- Adam / AdamW / AMSGrad --------------------------------------------------------------------

template <typename T, bool kLow, bool kAmsgrad, bool kL2, bool kL1>
void adam(T* __restrict__ P, const T* __restrict__ G, T* __restrict__ M, T* __restrict__ V,
          T* __restrict__ VM, int64_t n, int nthreads, const AdamArgs& a) {
  using A = typename Acc<T>::type;
  const A w1 = A(1.0 - a.beta1), beta2 = A(a.beta2), w2 = A(1.0 - a.beta2);
  const A step = A(-a.lr / a.bc1), bc2_sqrt = A(a.bc2_sqrt), eps = A(a.eps);
  const A l2 = A(a.l2), decay = A(a.decay), l1lr = A(a.l1lr);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (kL2) g = g + l2 * p;
      p = p * decay;
      const A m = lerp<kLow>(load(M, i), g, w1);
      store(M, i, m);
      const A v = load(V, i) * beta2 + w2 * g * g;
      store(V, i, v);
      A second = v;
      if constexpr (kAmsgrad) {
        const A vm = load(VM, i);
        second = (vm > v || vm != vm) ? vm : v;  // torch.maximum: NaN wins
        store(VM, i, second);
      }
      const A d = std::sqrt(second) / bc2_sqrt + eps;
      p = p + step * m / d;
      if constexpr (kL1) p = soft_threshold(p, A(1) / d * l1lr);
      store(P, i, p);
    }
  });
}

// --- Lion -------------------------------------------------------------------------------------

// sign(c) as torch.sign: -1, 0 or 1, and NaN stays NaN.
template <typename A>
inline A sign_of(A c) {
  return c > A(0) ? A(1) : (c < A(0) ? A(-1) : c);
}

template <typename T, bool kL2, bool kL1>
void lion(T* __restrict__ P, const T* __restrict__ G, T* __restrict__ M, int64_t n, int nthreads,
          const LionArgs& a) {
  using A = typename Acc<T>::type;
  const A b1 = A(a.beta1), w1 = A(1.0 - a.beta1), b2 = A(a.beta2), w2 = A(1.0 - a.beta2);
  const A neg_lr = A(-a.lr), l2 = A(a.l2), decay = A(a.decay), tau = A(a.l1lr);
  parallel(n, nthreads, [=](int64_t begin, int64_t end) {
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) {
      A p = load(P, i), g = load(G, i);
      if constexpr (kL2) g = g + l2 * p;
      p = p * decay;
      const A m = load(M, i);
      p = p + neg_lr * sign_of(m * b1 + w1 * g);
      store(M, i, m * b2 + w2 * g);
      if constexpr (kL1) p = soft_threshold(p, tau);
      store(P, i, p);
    }
  });
}

}  // namespace

// --- C entry points: return 0 on success, 1 for an unknown dtype code -------------------------

extern "C" {

int nnopt_abi_version() { return 3; }

int nnopt_sgd(int dtype, int64_t n, int nthreads, const SgdArgs* args) {
  const SgdArgs& a = *args;
  return with_regularization(dtype, a, [&](auto tag, auto kL2, auto kL1) {
    using T = std::remove_pointer_t<decltype(tag)>;
    with_flag(a.momentum_on, [&](auto kM) {
      with_flag(a.nesterov && a.momentum_on, [&](auto kN) {
        sgd<T, kM(), kN(), kL2(), kL1()>(static_cast<T*>(a.p), static_cast<const T*>(a.g),
                                        static_cast<T*>(a.buf), n, nthreads, a);
      });
    });
  });
}

int nnopt_adagrad(int dtype, int64_t n, int nthreads, const AdagradArgs* args) {
  const AdagradArgs& a = *args;
  return with_regularization(dtype, a, [&](auto tag, auto kL2, auto kL1) {
    using T = std::remove_pointer_t<decltype(tag)>;
    adagrad<T, kL2(), kL1()>(static_cast<T*>(a.p), static_cast<const T*>(a.g),
                             static_cast<T*>(a.sum), n, nthreads, a);
  });
}

int nnopt_rmsprop(int dtype, int64_t n, int nthreads, const RmspropArgs* args) {
  const RmspropArgs& a = *args;
  return with_regularization(dtype, a, [&](auto tag, auto kL2, auto kL1) {
    using T = std::remove_pointer_t<decltype(tag)>;
    // The lerp formula only matters when centered: do not instantiate both otherwise.
    with_flag(a.centered, [&](auto kC) {
      with_flag(kC() && std::abs(1.0 - a.rho) >= 0.5, [&](auto kHigh) {
        with_flag(a.momentum_on, [&](auto kM) {
          with_flag(a.eps_inside_sqrt, [&](auto kE) {
            rmsprop<T, kC(), !kHigh(), kM(), kE(), kL2(), kL1()>(
                static_cast<T*>(a.p), static_cast<const T*>(a.g), static_cast<T*>(a.square_avg),
                static_cast<T*>(a.grad_avg), static_cast<T*>(a.buf), n, nthreads, a);
          });
        });
      });
    });
  });
}

int nnopt_adam(int dtype, int64_t n, int nthreads, const AdamArgs* args) {
  const AdamArgs& a = *args;
  return with_regularization(dtype, a, [&](auto tag, auto kL2, auto kL1) {
    using T = std::remove_pointer_t<decltype(tag)>;
    with_flag(std::abs(1.0 - a.beta1) < 0.5, [&](auto kLow) {
      with_flag(a.amsgrad, [&](auto kA) {
        adam<T, kLow(), kA(), kL2(), kL1()>(static_cast<T*>(a.p), static_cast<const T*>(a.g),
                                            static_cast<T*>(a.exp_avg),
                                            static_cast<T*>(a.exp_avg_sq),
                                            static_cast<T*>(a.max_exp_avg_sq), n, nthreads, a);
      });
    });
  });
}

int nnopt_lion(int dtype, int64_t n, int nthreads, const LionArgs* args) {
  const LionArgs& a = *args;
  return with_regularization(dtype, a, [&](auto tag, auto kL2, auto kL1) {
    using T = std::remove_pointer_t<decltype(tag)>;
    lion<T, kL2(), kL1()>(static_cast<T*>(a.p), static_cast<const T*>(a.g),
                          static_cast<T*>(a.exp_avg), n, nthreads, a);
  });
}

}  // extern "C"

// --- Many tensors per call -------------------------------------------------------------------
//
// nnopt_<rule>_many(dtype, count, nthreads, block, sizes, table, step_dtype) runs the rule over
// `count` tensors of one dtype in one call. Row i of `table` holds tensor i's kPointers
// pointers, in the block's field order, then its step counter (a float32 or float64 scalar as
// step_dtype is 0 or 1, or null for optimizers that keep none), which is incremented by one
// first, as torch's `step += 1`; sizes[i] is its element count. The block's own pointers are
// ignored and its scalars shared, except what a rule derives from the new step (Adam's bias
// corrections, computed as the Python side does: 1 - beta^t with libm's pow). Small tensors go
// to the threads whole, large ones are split as in the single-tensor entry points: a group of
// 2,000 tensors of 1,000 elements costs one call instead of 2,000.

namespace {

constexpr int64_t kLarge = int64_t{1} << 16;  // elements from which a tensor is split itself

// step <- step + 1 in the counter's own precision; returns the new value.
double advance_step(void* counter, int step_dtype) {
  if (step_dtype == 1) return *static_cast<double*>(counter) += 1.0;
  return static_cast<double>(*static_cast<float*>(counter) += 1.0f);
}

template <typename Args>
using Kernel = int (*)(int, int64_t, int, const Args*);

template <typename Args, typename Prepare>
int run_many(int dtype, int64_t count, int nthreads, const Args* block, const int64_t* sizes,
             void* const* table, int step_dtype, Kernel<Args> kernel, Prepare prepare) {
  if (dtype < 0 || dtype > 2 || step_dtype < 0 || step_dtype > 1) return 1;
  constexpr int64_t width = Args::kPointers + 1;
  auto row = [=](int64_t i, int threads) {
    Args a = *block;
    void* const* r = table + i * width;
    std::memcpy(static_cast<void*>(&a), r, sizeof(void*) * Args::kPointers);
    if (r[Args::kPointers] != nullptr) prepare(a, advance_step(r[Args::kPointers], step_dtype));
    kernel(dtype, sizes[i], threads, &a);
  };
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
  if (small.empty()) return 0;
  // About 16K elements per chunk, as in parallel(): whole tensors, one thread each.
  const int64_t rows = static_cast<int64_t>(small.size());
  const int64_t per = std::max<int64_t>(1, (rows << 14) / std::max<int64_t>(1, small_elements));
  const int64_t* index = small.data();
  parallel_chunks(rows, per, nthreads, [=](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) row(index[k], 1);
  });
  return 0;
}

// Bias corrections from the new step, as the Python side computes them: 1 - beta^t (libm).
void adam_prepare(AdamArgs& a, double step) {
  a.bc1 = 1.0 - std::pow(a.beta1, step);
  a.bc2_sqrt = std::sqrt(1.0 - std::pow(a.beta2, step));
}

template <typename Args>
void nothing_to_prepare(Args&, double) {}

}  // namespace

// One line per rule: its many-tensor entry point over its single-tensor one (and what it
// derives from each tensor's new step, if anything).
#define NNOPT_MANY(rule, Args, prepare)                                                        \
  extern "C" int nnopt_##rule##_many(int dtype, int64_t count, int nthreads, const Args* block, \
                                     const int64_t* sizes, void* const* table, int step_dtype) { \
    return run_many(dtype, count, nthreads, block, sizes, table, step_dtype, &nnopt_##rule,     \
                    prepare);                                                                   \
  }

NNOPT_MANY(sgd, SgdArgs, nothing_to_prepare<SgdArgs>)
NNOPT_MANY(adagrad, AdagradArgs, nothing_to_prepare<AdagradArgs>)
NNOPT_MANY(rmsprop, RmspropArgs, nothing_to_prepare<RmspropArgs>)
NNOPT_MANY(adam, AdamArgs, adam_prepare)
NNOPT_MANY(lion, LionArgs, nothing_to_prepare<LionArgs>)
