// The compact AdamW step's arithmetic, without Python and without memory: nnopt's float32
// kernel and its compact one (bfloat16 weights and gradients, an 8-bit Kahan residual, 8-bit
// moments) over arrays that fit in L2, in L3, and that stream from memory, side by side.
//
//   make lowbit-arithmetic, which runs
//
//   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -ffp-contract=off -pthread \
//       -march=native -Isrc/nnopt/optim/kernels benchmarks/compact_arithmetic.cpp \
//       -o /tmp/compact_arithmetic && /tmp/compact_arithmetic
//
// (build.py's flags). Per row: the median over interleaved rounds of one AdamW step of every
// tensor, in ns per element. Where the arrays stay in cache, the time is the arithmetic's
// alone: a compact step can be faster than the float32 one only where memory, not
// arithmetic, bounds the float32 step by more than that ratio.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu_kernels.cpp"

namespace {

struct Tensor {
  std::vector<float> w32, g32, m32, v32;
  std::vector<uint16_t> w16, g16;
  std::vector<int8_t> residual, m8;
  std::vector<uint8_t> v8;
  std::vector<float> m_scale, v_scale;

  explicit Tensor(int64_t n, std::mt19937& rng)
      : w32(n), g32(n), m32(n), v32(n), w16(n), g16(n), residual(n), m8(n), v8(n),
        m_scale((n + 255) / 256), v_scale((n + 255) / 256) {
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < n; ++i) {
      w32[i] = normal(rng);
      g32[i] = normal(rng) * 1e-3f;
      w16[i] = nnopt::bf16_nearest(w32[i]);
      g16[i] = nnopt::bf16_nearest(g32[i]);
    }
  }
};

adam_args block(void* p, void* g, void* m, void* v) {
  adam_args a{};
  a.p = p, a.g = g, a.exp_avg = m, a.exp_avg_sq = v;
  a.beta1 = 0.9, a.beta2 = 0.999, a.eps = 1e-8, a.lr = 1e-3, a.step = 10, a.decay = 1 - 1e-5;
  return a;
}

double milliseconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void row(const char* where, int64_t n, int count, int rounds, int threads) {
  std::mt19937 rng(1);
  std::vector<Tensor> tensors;
  for (int i = 0; i < count; ++i) tensors.emplace_back(n, rng);
  std::vector<double> full, compact;
  for (int r = 0; r < rounds; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (Tensor& t : tensors) {
      const adam_args a = block(t.w32.data(), t.g32.data(), t.m32.data(), t.v32.data());
      nnopt::run_rule(0, n, threads, &a);
    }
    full.push_back(milliseconds(start));
    start = std::chrono::steady_clock::now();
    for (Tensor& t : tensors) {
      const adam_args a = block(t.w16.data(), t.g16.data(), t.m8.data(), t.v8.data());
      nnopt::Compact c{};
      c.param_dtype = 2, c.state_code = 2, c.update = 2, c.comp_code = 2;
      c.is_signed[2] = 1, c.is_signed[3] = 0;
      c.comp = t.residual.data(), c.scales[2] = t.m_scale.data(), c.scales[3] = t.v_scale.data();
      nnopt::run_compact(n, threads, &a, &c);
    }
    compact.push_back(milliseconds(start));
  }
  const double per = 1e6 / (double(n) * count);  // ms -> ns per element
  const double f = median(full) * per, c = median(compact) * per;
  std::printf("| %s | %d x %lld | %d | %.3f | %.3f | %.2f |\n", where, count, (long long)n,
              threads, f, c, c / f);
}

}  // namespace

int main() {
  std::printf("| arrays in | tensors | threads | float32 ns/element | compact ns/element | "
              "compact / float32 |\n|---|---|---|---|---|---|\n");
  for (int threads : {1, 2}) {
    row("L2", 65536, 8, 501, threads);
    row("L3", 1 << 20, 2, 201, threads);
    row("memory", 2500000, 8, 15, threads);
  }
  return 0;
}
