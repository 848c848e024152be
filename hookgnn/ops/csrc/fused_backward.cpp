// Two backward kernels of wrapped PyG models under attribution (CPU), compiled after scatter_extreme.cpp as one
// translation unit (hookgnn.ops.compiled): they use its thread sizing (team_for,
// clamp_threads) and plan check (check_plan), and its module definition exports them.
//
// tie_split_backward(): torch's gradient of scatter_reduce(amax / amin, include_self=False) on a zero output:
//             split evenly among the tied edges, counting the 0 the output starts from, node by node over the
//             CSR of the forward's plan, in torch's own operations per entry, so bit for bit torch's
//             (hookgnn.interop.aggregation).
// relu_linear_backward(): the input gradient of a frozen linear layer fed by a relu, (grad @ weight) masked
//             where the relu's output is <= 0 (a NaN passes, as in torch's threshold_backward), row by row:
//             the row of the product stays in L1 while it is masked (hookgnn.interop.relu_linear);
//             relu_linear_backward_() writes the same values over the relu's output.

namespace {

// Node by node over the CSR, feature by feature: the ties of out[v, f] among v's edges (and the 0 the output
// started from), then every edge's share, in torch's own operations: (scalar_t)won * (grad / ties).
template <typename scalar_t>
void tie_rows(const scalar_t* grad, const scalar_t* src, const scalar_t* out, const int64_t* rowptr, const int64_t* perm,
              int64_t num_nodes, int64_t channels, scalar_t* grad_src, int nt) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 256) if (nt > 1)
#endif
  for (int64_t v = 0; v < num_nodes; ++v) {
    const int64_t lo = rowptr[v], hi = rowptr[v + 1];
    if (lo == hi) continue;
    for (int64_t f = 0; f < channels; ++f) {
      const scalar_t o = out[v * channels + f];
      scalar_t ties = o == scalar_t(0) ? scalar_t(1) : scalar_t(0);
      for (int64_t k = lo; k < hi; ++k) ties += src[perm[k] * channels + f] == o ? scalar_t(1) : scalar_t(0);
      const scalar_t share = grad[v * channels + f] / ties;
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t e = perm[k];
        grad_src[e * channels + f] = (src[e * channels + f] == o ? scalar_t(1) : scalar_t(0)) * share;
      }
    }
  }
}

}  // namespace

// Returns grad_src [E, C]: torch's gradient of scatter_reduce(amax / amin, include_self=False) on a zero output,
// src[e, c] == out[v, c] ? grad_out[v, c] / ties[v, c] : 0 (times 0, as torch multiplies), ties[v, c] the
// edges of v equal to out[v, c] plus one where out[v, c] == 0 (hookgnn.interop.aggregation), bit for bit.
torch::Tensor tie_split_backward(torch::Tensor grad_out, torch::Tensor src, torch::Tensor out, torch::Tensor rowptr,
                                 torch::Tensor perm, int64_t threads) {
  TORCH_CHECK(src.device().is_cpu() && src.dim() == 2 && src.is_contiguous(), "src must be a contiguous CPU [E, C] tensor");
  TORCH_CHECK(grad_out.device().is_cpu() && grad_out.dim() == 2 && grad_out.is_contiguous() &&
                  grad_out.size(1) == src.size(1) && grad_out.scalar_type() == src.scalar_type(),
              "grad_out must be a contiguous CPU [N, C] tensor of src's dtype, C = ", src.size(1));
  TORCH_CHECK(out.sizes() == grad_out.sizes() && out.is_contiguous() && out.scalar_type() == src.scalar_type(),
              "out must be a contiguous tensor shaped like grad_out");
  check_plan(rowptr, perm, src.size(0));
  TORCH_CHECK(rowptr.size(0) - 1 == grad_out.size(0), "rowptr has ", rowptr.size(0) - 1, " nodes, grad_out ",
              grad_out.size(0));
  auto grad_src = torch::empty({src.size(0), src.size(1)}, src.options());
  if (src.size(0) > 0 && src.size(1) > 0) {
    const int nt = team_for(src.numel(), clamp_threads(threads));
    AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "tie_split_backward", [&] {
      tie_rows<scalar_t>(grad_out.data_ptr<scalar_t>(), src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                         rowptr.data_ptr<int64_t>(), perm.data_ptr<int64_t>(), grad_out.size(0), src.size(1),
                         grad_src.data_ptr<scalar_t>(), nt);
    });
  }
  return grad_src;
}

namespace {

// One row: o[:] = g[:] @ w, then 0 where r[c] <= 0 (a NaN in r passes, as in torch); o may be r itself (each
// r[c] is read before o[c] is written, the product summed in a row buffer first when it is).
template <typename scalar_t>
inline void masked_row(const scalar_t* gi, const scalar_t* w, const scalar_t* ri, scalar_t* oi, scalar_t* acc,
                       int64_t k_dim, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c) acc[c] = k_dim > 0 ? gi[0] * w[c] : scalar_t(0);
  for (int64_t k = 1; k < k_dim; ++k) {
    const scalar_t a = gi[k];
    const scalar_t* wk = w + k * cols;
    for (int64_t c = 0; c < cols; ++c) acc[c] += a * wk[c];
  }
  for (int64_t c = 0; c < cols; ++c) oi[c] = ri[c] <= scalar_t(0) ? scalar_t(0) : acc[c];
}

// Row by row over [rows, cols]: into o (a fresh tensor: the row is summed in place), or into r itself (o == r:
// the row is summed in a per-thread buffer first). The same operations in the same order either way.
template <typename scalar_t>
void masked_rows(const scalar_t* g, const scalar_t* w, const scalar_t* r, scalar_t* o, int64_t rows, int64_t k_dim,
                 int64_t cols, int nt) {
  const bool into_r = o == r;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    std::vector<scalar_t> buffer(into_r ? cols : 0);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t i = 0; i < rows; ++i) {
      scalar_t* oi = o + i * cols;
      masked_row<scalar_t>(g + i * k_dim, w, r + i * cols, oi, into_r ? buffer.data() : oi, k_dim, cols);
    }
  }
}

}  // namespace

// Returns grad_in [R, C]: (grad [R, K] @ weight [K, C]) where result > 0 (or NaN), 0 where result <= 0: the
// input gradient of a frozen linear layer and the relu before it (result: the relu's output), in one pass per
// row (the row of the product stays in L1 while it is masked), instead of a product written out and read back.
namespace {

void check_relu_linear(const torch::Tensor& grad, const torch::Tensor& weight, const torch::Tensor& result) {
  TORCH_CHECK(grad.device().is_cpu() && grad.dim() == 2 && grad.is_contiguous(), "grad must be a contiguous CPU [R, K] tensor");
  TORCH_CHECK(weight.device().is_cpu() && weight.dim() == 2 && weight.is_contiguous() && weight.size(0) == grad.size(1),
              "weight must be a contiguous CPU [K, C] tensor, K = ", grad.size(1));
  TORCH_CHECK(result.device().is_cpu() && result.dim() == 2 && result.is_contiguous() && result.size(0) == grad.size(0) &&
                  result.size(1) == weight.size(1),
              "result must be a contiguous CPU [R, C] tensor, R = ", grad.size(0), ", C = ", weight.size(1));
  TORCH_CHECK(grad.scalar_type() == weight.scalar_type() && grad.scalar_type() == result.scalar_type(),
              "grad, weight and result must share one dtype");
}

void run_relu_linear(const torch::Tensor& grad, const torch::Tensor& weight, const torch::Tensor& result,
                     torch::Tensor& out, int64_t threads) {
  const int64_t rows = grad.size(0), k_dim = grad.size(1), cols = weight.size(1);
  const int nt = team_for(rows * cols, clamp_threads(threads));
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "relu_linear_backward", [&] {
    masked_rows<scalar_t>(grad.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), result.data_ptr<scalar_t>(),
                          out.data_ptr<scalar_t>(), rows, k_dim, cols, nt);
  });
}

}  // namespace

torch::Tensor relu_linear_backward(torch::Tensor grad, torch::Tensor weight, torch::Tensor result, int64_t threads) {
  check_relu_linear(grad, weight, result);
  auto out = torch::empty({grad.size(0), weight.size(1)}, grad.options());
  run_relu_linear(grad, weight, result, out, threads);
  return out;
}

// The same values written over result (returned): for a caller that knows nothing reads result afterwards (the
// relu's output in a single backward without retain_graph, hookgnn.interop.relu_linear), sparing a fresh buffer.
torch::Tensor relu_linear_backward_(torch::Tensor grad, torch::Tensor weight, torch::Tensor result, int64_t threads) {
  check_relu_linear(grad, weight, result);
  run_relu_linear(grad, weight, result, result, threads);
  return result;
}
