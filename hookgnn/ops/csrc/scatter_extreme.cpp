// Scatter max/min over the edge axis with the winning edge, and its backward (CPU).
//
// Shapes: src [E, C] (row-major, contiguous), index [E] (int32 or int64) with values
// in [0, N). For every node v and column c
//
//     out[v, c] = max_{e : index[e] = v} src[e, c]     (min for largest = false)
//     arg[v, c] = lowest such e attaining it             (-1, and out = 0, if v has no edge)
//
// NaN is the extreme of everything (as in torch.amax): the lowest NaN edge wins.
//
// plan():     a stable counting sort of the edges by destination, the CSR (rowptr [N + 1],
//             perm [E], the edges of one node in increasing order). It depends on the
//             index only, so callers compute it once and pass it to every call.
// forward():  one pass per node over its edges' rows; nodes are split between threads,
//             so there are no atomics and every output row is written by one thread.
//             Visiting edges in increasing order and replacing only on a strict
//             improvement gives the lowest-index tie rule, and the values do not depend
//             on the number of threads. arg is int32 when E < 2^31 (half the memory).
// backward(): grad_src[e, c] = grad_out[v, c] if arg[v, c] = e else 0, written once per
//             element, node by node over the CSR: no zero fill, no second pass.
//
// fused_backward.cpp (appended to this file at build time) adds two backward kernels of
// wrapped PyG models that use this file's pool, thread and plan helpers.
//
// Threads: OpenMP, at most as many as the caller passes (torch.get_num_threads()); built
// without OpenMP the pragmas are ignored and everything runs on the calling thread. As in
// at::parallel_for, the team is sized by the work: min(threads, work / kGrain) threads,
// so every thread gets at least kGrain elements and below 2 * kGrain (the tiny graphs of
// training loops and interpretability runs) no parallel region opens at all. Nor does one
// inside another parallel region. Nodes go out in dynamically scheduled chunks, so a
// thread the OS has descheduled holds up a region by one chunk at most.
//
// Waiting: the kernel shares torch's libgomp (one runtime per process; the extension's
// libgomp.so.1 resolves to the one torch loaded). libgomp reads its wait policy once,
// when it is loaded (OMP_WAIT_POLICY, GOMP_SPINCOUNT): by default an idle thread spins
// up to 300000 pause instructions (milliseconds on current CPUs) before it sleeps, and
// no call can change that for one region. So the kernel keeps its regions rare and
// large instead: on a busy machine the spinning costs little against the work done.
// (OMP_WAIT_POLICY=passive, set before torch is imported, removes the spinning for the
// whole process; hookgnn.ops.threads explains the trade.)
//
// Memory: outputs come from a small pool of blocks freed by earlier calls (out, arg and
// grad_src of the last rounds or calls), so a call writes into pages that are already
// mapped: the first touch of a fresh 512 MB gradient (E = 1e6, C = 128) costs several
// times the backward itself in page faults. A freed block stays pooled while the pool
// holds at most HOOKGNN_SCATTER_POOL_MB (default 1024; 0 turns pooling off) and is
// reused for a request of 3/4 of its size up to its size; release_pool() frees them all.
// Large buffers are not hinted with MADV_HUGEPAGE: under the common THP "defrag=madvise"
// setting a first touch of a hinted region runs direct compaction when memory is
// fragmented, which made one call take 5x longer than the next.
#include <torch/extension.h>

#include <ATen/Dispatch.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// Elements of work (edges and nodes times channels) each thread must get for a parallel
// region to pay for itself (at::parallel_for's grain for elementwise ops is also 2^15).
constexpr int64_t kGrain = int64_t(1) << 15;

bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return true;
#endif
}

// Threads for `work` elements: min(threads, work / kGrain), at least 1, and 1 inside
// another parallel region.
int team_for(int64_t work, int threads) {
  if (threads <= 1 || in_parallel()) return 1;
  return static_cast<int>(std::clamp<int64_t>(work / kGrain, 1, threads));
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Threads the last forward/backward ran on (for tests: torch.set_num_threads is honoured).
std::atomic<int> last_team{0};

// Nodes per dynamically scheduled chunk: about 32K elements of output.
int64_t node_grain(int64_t channels) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(channels, 1)); }

// Stable counting sort, on the calling thread: about 6 ms at E = 1e6, paid once per index
// when the plan is reused. (Splitting it between threads made it slower: every thread
// must scan the whole index, with an unpredictable branch per edge.)
template <typename index_t>
void counting_sort(const index_t* index, int64_t num_edges, int64_t num_nodes, int64_t* rowptr,
                   int64_t* perm) {
  std::fill(rowptr, rowptr + num_nodes + 1, 0);
  for (int64_t e = 0; e < num_edges; ++e) ++rowptr[static_cast<int64_t>(index[e]) + 1];
  for (int64_t v = 0; v < num_nodes; ++v) rowptr[v + 1] += rowptr[v];
  std::vector<int64_t> cursor(rowptr, rowptr + num_nodes);
  for (int64_t e = 0; e < num_edges; ++e) perm[cursor[static_cast<int64_t>(index[e])]++] = e;
}

// Ask for the rows of the edges a few steps ahead: rows are read in random order and
// their addresses are known early, so this hides most of the memory latency.
constexpr int64_t kPrefetchDistance = 4;

template <typename T>
inline void prefetch_row(const T* row, int64_t channels) {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < channels * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(p + b);
}

// Position type as wide as scalar_t, so that the select below vectorises lane for lane.
template <typename scalar_t>
using pos_t = std::conditional_t<sizeof(scalar_t) == 8, int64_t, int32_t>;

// out (and with_arg: arg) for every node; arg_t is int32_t or int64_t.
template <typename scalar_t, typename arg_t, bool largest, bool with_arg>
void extreme_rows(const scalar_t* src, int64_t channels, const int64_t* rowptr, const int64_t* perm,
                  int64_t num_nodes, scalar_t* out, arg_t* arg, int threads) {
  using P = pos_t<scalar_t>;
  const int team = team_for((rowptr[num_nodes] + num_nodes) * channels, threads);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    if (thread_id() == 0) last_team = team_size();
    std::vector<scalar_t> best_buf(channels);
    std::vector<P> pos_buf(channels);
    scalar_t* best = best_buf.data();
    P* pos = pos_buf.data();
#pragma omp for schedule(dynamic, node_grain(channels))
    for (int64_t v = 0; v < num_nodes; ++v) {
      scalar_t* o = out + v * channels;
      const int64_t first = rowptr[v], last = rowptr[v + 1];
      if (first == last) {
        for (int64_t c = 0; c < channels; ++c) o[c] = scalar_t(0);
        if constexpr (with_arg) std::fill(arg + v * channels, arg + (v + 1) * channels, arg_t(-1));
        continue;
      }
      for (int64_t k = first; k < std::min(first + kPrefetchDistance, last); ++k)
        prefetch_row(src + perm[k] * channels, channels);
      const scalar_t* row0 = src + perm[first] * channels;
      for (int64_t c = 0; c < channels; ++c) best[c] = row0[c];
      if constexpr (with_arg) std::fill(pos, pos + channels, P(0));
      for (int64_t k = first + 1; k < last; ++k) {
        if (k + kPrefetchDistance < last) prefetch_row(src + perm[k + kPrefetchDistance] * channels, channels);
        const scalar_t* row = src + perm[k] * channels;
        const P j = static_cast<P>(k - first);
        for (int64_t c = 0; c < channels; ++c) {
          const scalar_t x = row[c], b = best[c];
          // x != x is NaN; a NaN replaces a number and is never replaced (torch.amax rule).
          const bool take = (largest ? (x > b) : (x < b)) | ((x != x) & (b == b));
          best[c] = take ? x : b;
          if constexpr (with_arg) pos[c] = take ? j : pos[c];
        }
      }
      for (int64_t c = 0; c < channels; ++c) o[c] = best[c];
      if constexpr (with_arg) {
        arg_t* a = arg + v * channels;
        for (int64_t c = 0; c < channels; ++c) a[c] = static_cast<arg_t>(perm[first + pos[c]]);
      }
    }
  }
}

// Every row of grad_src written once: the edges of node v get grad_out[v, c] where they
// are the winner of column c and 0 elsewhere. Every edge belongs to exactly one node.
template <typename scalar_t, typename arg_t>
void winner_rows(const scalar_t* grad_out, const arg_t* arg, int64_t channels, const int64_t* rowptr,
                 const int64_t* perm, int64_t num_nodes, scalar_t* grad_src, int threads) {
  const int team = team_for((rowptr[num_nodes] + num_nodes) * channels, threads);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    if (thread_id() == 0) last_team = team_size();
#pragma omp for schedule(dynamic, node_grain(channels))
    for (int64_t v = 0; v < num_nodes; ++v) {
      const scalar_t* g = grad_out + v * channels;
      const arg_t* a = arg + v * channels;
      const int64_t first = rowptr[v], last = rowptr[v + 1];
      for (int64_t k = first; k < last; ++k) {  // (no prefetch: the rows are fresh pages)
        const arg_t e = static_cast<arg_t>(perm[k]);
        scalar_t* row = grad_src + perm[k] * channels;
        for (int64_t c = 0; c < channels; ++c) row[c] = a[c] == e ? g[c] : scalar_t(0);
      }
    }
  }
}

void check_plan(const torch::Tensor& rowptr, const torch::Tensor& perm, int64_t num_edges) {
  TORCH_CHECK(rowptr.device().is_cpu() && perm.device().is_cpu(), "plan must be on the CPU");
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.is_contiguous() && rowptr.scalar_type() == at::kLong &&
                  rowptr.size(0) >= 1, "rowptr must be a contiguous int64 [N + 1] tensor");
  TORCH_CHECK(perm.dim() == 1 && perm.is_contiguous() && perm.scalar_type() == at::kLong &&
                  perm.size(0) == num_edges, "perm must be a contiguous int64 [E] tensor");
  TORCH_CHECK(rowptr[-1].item<int64_t>() == num_edges, "rowptr does not end at E");
}

// ---- the pool of freed output blocks (see Memory above)
// Never destroyed (a tensor freed during interpreter shutdown may still return its block).
struct Pool {
  std::mutex mutex;
  std::vector<std::pair<void*, size_t>> blocks;  // oldest first; mapped and touched
  size_t held = 0;
};
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

std::atomic<long long> pool_cap_set{-1};  // set_pool_cap's bytes; -1: HOOKGNN_SCATTER_POOL_MB's
size_t pool_cap() {
  static const size_t cap = [] {
    const char* env = std::getenv("HOOKGNN_SCATTER_POOL_MB");
    const long long mb = env ? std::atoll(env) : 1024;
    return static_cast<size_t>(std::max<long long>(mb, 0)) << 20;
  }();
  const long long set = pool_cap_set.load();
  return set >= 0 ? static_cast<size_t>(set) : cap;
}

void pool_release(void* p, size_t bytes) {
  std::vector<void*> drop;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    if (bytes > pool_cap()) {
      drop.push_back(p);
    } else {
      pool().blocks.emplace_back(p, bytes);
      pool().held += bytes;
      while (pool().held > pool_cap()) {
        drop.push_back(pool().blocks.front().first);
        pool().held -= pool().blocks.front().second;
        pool().blocks.erase(pool().blocks.begin());
      }
    }
  }
  for (void* q : drop) std::free(q);
}

// A block of at least `bytes` (64-byte aligned): a pooled one of at most 4/3 of it, else new.
std::pair<void*, size_t> pool_acquire(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    auto best = pool().blocks.end();
    for (auto it = pool().blocks.begin(); it != pool().blocks.end(); ++it)
      if (it->second >= bytes && it->second <= bytes + bytes / 3 && (best == pool().blocks.end() || it->second < best->second))
        best = it;
    if (best != pool().blocks.end()) {
      auto found = *best;
      pool().held -= found.second;
      pool().blocks.erase(best);
      return found;
    }
  }
  void* p = nullptr;
  TORCH_CHECK(posix_memalign(&p, 64, std::max<size_t>(bytes, 64)) == 0, "out of memory allocating ", bytes, " bytes");
  return {p, bytes};
}

// torch::empty(sizes, options) whose memory comes from, and returns to, the pool.
torch::Tensor pooled_empty(at::IntArrayRef sizes, const torch::TensorOptions& options) {
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  if (bytes < (size_t(1) << 20) || pool_cap() == 0) return torch::empty(sizes, options);  // small: malloc keeps it
  auto block = pool_acquire(bytes);
  const size_t size = block.second;
  return torch::from_blob(block.first, sizes, [size](void* p) { pool_release(p, size); }, options);
}

int clamp_threads(int64_t threads) { return static_cast<int>(std::clamp<int64_t>(threads, 1, 1024)); }

}  // namespace

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Returns (rowptr [N + 1], perm [E]), both int64. Index values must already be checked.
std::vector<torch::Tensor> make_plan(torch::Tensor index, int64_t num_nodes) {
  TORCH_CHECK(index.device().is_cpu() && index.dim() == 1 && index.is_contiguous(),
              "index must be a contiguous CPU [E] tensor");
  TORCH_CHECK(index.scalar_type() == at::kLong || index.scalar_type() == at::kInt, "index must be int32 or int64");
  const auto options = index.options().dtype(at::kLong);
  auto rowptr = torch::empty({num_nodes + 1}, options);
  auto perm = torch::empty({index.size(0)}, options);
  AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "scatter_extreme_plan", [&] {
    counting_sort<index_t>(index.data_ptr<index_t>(), index.size(0), num_nodes, rowptr.data_ptr<int64_t>(),
                           perm.data_ptr<int64_t>());
  });
  return {rowptr, perm};
}

// Returns (out [N, C], arg [N, C]); arg is int32 if E < 2^31 else int64, and empty
// (shape [0]) when with_arg is false.
std::vector<torch::Tensor> arg_extreme_forward(torch::Tensor src, torch::Tensor rowptr, torch::Tensor perm,
                                               bool largest, bool with_arg, int64_t threads) {
  TORCH_CHECK(src.device().is_cpu() && src.dim() == 2 && src.is_contiguous(), "src must be a contiguous CPU [E, C] tensor");
  check_plan(rowptr, perm, src.size(0));
  const int64_t num_nodes = rowptr.size(0) - 1, channels = src.size(1);
  const bool narrow = src.size(0) < std::numeric_limits<int32_t>::max();
  auto out = pooled_empty({num_nodes, channels}, src.options());
  auto arg = pooled_empty({with_arg ? num_nodes : 0, channels}, src.options().dtype(narrow ? at::kInt : at::kLong));
  const int nt = clamp_threads(threads);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "scatter_extreme_forward", [&] {
    const auto* s = src.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    const auto* rp = rowptr.data_ptr<int64_t>();
    const auto* pm = perm.data_ptr<int64_t>();
    if (!with_arg) {
      (largest ? extreme_rows<scalar_t, int64_t, true, false> : extreme_rows<scalar_t, int64_t, false, false>)(
          s, channels, rp, pm, num_nodes, o, nullptr, nt);
    } else if (narrow) {
      (largest ? extreme_rows<scalar_t, int32_t, true, true> : extreme_rows<scalar_t, int32_t, false, true>)(
          s, channels, rp, pm, num_nodes, o, arg.data_ptr<int32_t>(), nt);
    } else {
      (largest ? extreme_rows<scalar_t, int64_t, true, true> : extreme_rows<scalar_t, int64_t, false, true>)(
          s, channels, rp, pm, num_nodes, o, arg.data_ptr<int64_t>(), nt);
    }
  });
  return {out, arg};
}

// Returns grad_src [E, C]: grad_out[v, c] on edge arg[v, c], 0 elsewhere.
torch::Tensor arg_extreme_backward(torch::Tensor grad_out, torch::Tensor arg, torch::Tensor rowptr,
                                   torch::Tensor perm, int64_t threads) {
  TORCH_CHECK(grad_out.device().is_cpu() && grad_out.dim() == 2 && grad_out.is_contiguous(),
              "grad_out must be a contiguous CPU [N, C] tensor");
  TORCH_CHECK(arg.sizes() == grad_out.sizes() && arg.is_contiguous() &&
                  (arg.scalar_type() == at::kLong || arg.scalar_type() == at::kInt),
              "arg must be a contiguous int32/int64 tensor shaped like grad_out");
  const int64_t num_edges = perm.size(0), channels = grad_out.size(1);
  check_plan(rowptr, perm, num_edges);
  TORCH_CHECK(rowptr.size(0) - 1 == grad_out.size(0), "rowptr has ", rowptr.size(0) - 1, " nodes, grad_out ",
              grad_out.size(0));
  auto grad_src = pooled_empty({num_edges, channels}, grad_out.options());
  const int nt = clamp_threads(threads);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "scatter_extreme_backward", [&] {
    AT_DISPATCH_INDEX_TYPES(arg.scalar_type(), "scatter_extreme_backward_arg", [&] {
      winner_rows<scalar_t, index_t>(grad_out.data_ptr<scalar_t>(), arg.data_ptr<index_t>(), channels,
                                     rowptr.data_ptr<int64_t>(), perm.data_ptr<int64_t>(), grad_out.size(0),
                                     grad_src.data_ptr<scalar_t>(), nt);
    });
  });
  return grad_src;
}

int last_threads() { return last_team.load(); }

// Frees every pooled block; returns the bytes it held.
int64_t release_pool() {
  std::vector<std::pair<void*, size_t>> drop;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    drop.swap(pool().blocks);
    pool().held = 0;
  }
  int64_t bytes = 0;
  for (auto& b : drop) {
    bytes += static_cast<int64_t>(b.second);
    std::free(b.first);
  }
  return bytes;
}

// Caps the pool at `bytes` (-1: the environment's cap again), dropping the oldest blocks above it; returns the
// previous setting.
int64_t set_pool_cap(int64_t bytes) {
  const long long previous = pool_cap_set.exchange(bytes < 0 ? -1 : bytes);
  std::vector<void*> drop;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    while (!pool().blocks.empty() && pool().held > pool_cap()) {
      drop.push_back(pool().blocks.front().first);
      pool().held -= pool().blocks.front().second;
      pool().blocks.erase(pool().blocks.begin());
    }
  }
  for (void* q : drop) std::free(q);
  return previous;
}

int64_t pool_bytes() {
  std::lock_guard<std::mutex> lock(pool().mutex);
  return static_cast<int64_t>(pool().held);
}

// Defined in fused_backward.cpp, compiled with this file as one translation unit (hookgnn.ops.compiled).
torch::Tensor tie_split_backward(torch::Tensor grad_out, torch::Tensor src, torch::Tensor out, torch::Tensor rowptr,
                                 torch::Tensor perm, int64_t threads);
torch::Tensor relu_linear_backward(torch::Tensor grad, torch::Tensor weight, torch::Tensor result, int64_t threads);
torch::Tensor relu_linear_backward_(torch::Tensor grad, torch::Tensor weight, torch::Tensor result, int64_t threads);
// Defined in product_sums.cpp, compiled after fused_backward.cpp in the same translation unit.
std::tuple<torch::Tensor, torch::Tensor> product_sums(torch::Tensor a, torch::Tensor b, int64_t threads);
torch::Tensor gathered_row_sums(torch::Tensor q, torch::Tensor index, torch::Tensor b, int64_t threads);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("has_openmp", &has_openmp, "whether this build runs on several threads");
  m.def("last_threads", &last_threads, "threads the last forward or backward ran on");
  m.def("release_pool", &release_pool, "free the pooled output blocks; returns the bytes freed");
  m.def("pool_bytes", &pool_bytes, "bytes of freed output blocks kept for reuse");
  m.def("set_pool_cap", &set_pool_cap, "cap the pool at bytes (-1: the environment's cap); returns the previous");
  m.def("plan", &make_plan, "stable counting sort of edges by destination: (rowptr, perm)");
  m.def("forward", &arg_extreme_forward, "scatter max/min (and the winning edge) over a plan");
  m.def("backward", &arg_extreme_backward, "gradient to the winning edges, every element written once");
  m.def("tie_split_backward", &tie_split_backward, "torch's tie-splitting gradient of scatter amax / amin");
  m.def("relu_linear_backward", &relu_linear_backward, "masked (grad @ weight): a frozen linear's and its relu's backward");
  m.def("relu_linear_backward_", &relu_linear_backward_, "relu_linear_backward written over result");
  m.def("product_sums", &product_sums, "row and feature sums of a * b in one pass, without the product");
  m.def("gathered_row_sums", &gathered_row_sums, "row sums of q[index] * b, without q[index]");
}
