// The thread pool of the native kernels, and parallel(): chunks of [0, n) over the cores.

#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace nnopt {

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
inline Pool& pool() {
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

}  // namespace nnopt
