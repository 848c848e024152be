// The two sums of an elementwise product (CPU), compiled after scatter_extreme.cpp as one translation unit
// (hookgnn.ops.compiled): it uses its thread sizing (team_for, clamp_threads) and its module exports it.
//
// product_sums(): by_row[r] = sum_f a[r, f] b[r, f] and by_feature[f] = sum_r a[r, f] b[r, f] in one pass that
//             reads a and b once and writes only the two sums (attribution's keep="rows": the product itself is
//             never made; hookgnn.ops.products). Accumulated in double in a fixed order, so the result is the
//             same bit for bit whatever the number of threads:
//             * a row: 8 lanes, lane l sums the features f = l (mod 8) in increasing f, then
//               ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
//             * a feature: blocks of kRowBlock rows (fixed, not per thread), each summed in increasing r, then
//               the blocks' sums added in increasing block order.
// gathered_row_sums(): by_row[r] = sum_f q[index[r], f] b[r, f], the row sums of q[index] * b in the same row order,
//             without the gathered [rows, cols] tensor (attribution of hook_src through the links,
//             hookgnn.attribution.contracted).

namespace {

constexpr int64_t kRowBlock = 1024;
constexpr int kLanes = 8;

// Rows [lo, hi) of a and b ([rows, cols], contiguous): their row sums into by_row, their feature sums into acc.
template <typename scalar_t>
void block_sums(const scalar_t* a, const scalar_t* b, int64_t lo, int64_t hi, int64_t cols, scalar_t* by_row,
                double* acc) {
  const int64_t whole = cols - cols % kLanes;
  for (int64_t r = lo; r < hi; ++r) {
    const scalar_t* ar = a + r * cols;
    const scalar_t* br = b + r * cols;
    double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t f = 0; f < whole; f += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double p = static_cast<double>(ar[f + l]) * static_cast<double>(br[f + l]);
        lane[l] += p;
        acc[f + l] += p;
      }
    }
    for (int64_t f = whole; f < cols; ++f) {
      const double p = static_cast<double>(ar[f]) * static_cast<double>(br[f]);
      lane[f - whole] += p;
      acc[f] += p;
    }
    by_row[r] = static_cast<scalar_t>(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                                      ((lane[4] + lane[5]) + (lane[6] + lane[7])));
  }
}

template <typename scalar_t>
void product_sums_impl(const scalar_t* a, const scalar_t* b, int64_t rows, int64_t cols, scalar_t* by_row,
                       double* partial, scalar_t* by_feature, int nt) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t k = 0; k < blocks; ++k) {
    block_sums<scalar_t>(a, b, k * kRowBlock, std::min(rows, (k + 1) * kRowBlock), cols, by_row, partial + k * cols);
  }
  for (int64_t f = 0; f < cols; ++f) {
    double s = 0;
    for (int64_t k = 0; k < blocks; ++k) s += partial[k * cols + f];
    by_feature[f] = static_cast<scalar_t>(s);
  }
}

// by_row[r] = sum_f q[index[r], f] b[r, f] for rows [lo, hi), in block_sums's lane order.
template <typename scalar_t>
void gathered_block(const scalar_t* q, const int64_t* index, const scalar_t* b, int64_t lo, int64_t hi, int64_t cols,
                    scalar_t* by_row) {
  const int64_t whole = cols - cols % kLanes;
  for (int64_t r = lo; r < hi; ++r) {
    const scalar_t* qr = q + index[r] * cols;
    const scalar_t* br = b + r * cols;
    double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t f = 0; f < whole; f += kLanes) {
      for (int l = 0; l < kLanes; ++l) lane[l] += static_cast<double>(qr[f + l]) * static_cast<double>(br[f + l]);
    }
    for (int64_t f = whole; f < cols; ++f) lane[f - whole] += static_cast<double>(qr[f]) * static_cast<double>(br[f]);
    by_row[r] = static_cast<scalar_t>(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                                      ((lane[4] + lane[5]) + (lane[6] + lane[7])));
  }
}

template <typename scalar_t>
void gathered_row_sums_impl(const scalar_t* q, const int64_t* index, const scalar_t* b, int64_t rows, int64_t cols,
                            scalar_t* by_row, int nt) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t k = 0; k < blocks; ++k) {
    gathered_block<scalar_t>(q, index, b, k * kRowBlock, std::min(rows, (k + 1) * kRowBlock), cols, by_row);
  }
}

}  // namespace

// Returns by_row [R] = the row sums of q[index] * b (q: contiguous CPU [N, C]; index: contiguous int64 [R], every
// entry in [0, N), checked by the caller; b: contiguous [R, C] of q's dtype), the same bits on any number of threads.
torch::Tensor gathered_row_sums(torch::Tensor q, torch::Tensor index, torch::Tensor b, int64_t threads) {
  TORCH_CHECK(q.device().is_cpu() && q.dim() == 2 && q.is_contiguous(), "q must be a contiguous CPU [N, C] tensor");
  TORCH_CHECK(index.device().is_cpu() && index.dim() == 1 && index.is_contiguous() &&
              index.scalar_type() == torch::kLong, "index must be a contiguous CPU int64 [R] tensor");
  TORCH_CHECK(b.device().is_cpu() && b.dim() == 2 && b.size(0) == index.size(0) && b.size(1) == q.size(1) &&
              b.is_contiguous() && b.scalar_type() == q.scalar_type(), "b must be a contiguous CPU [R, C] tensor of q's dtype");
  const int64_t rows = b.size(0), cols = b.size(1);
  auto by_row = torch::empty({rows}, b.options());
  const int nt = team_for(rows * cols, clamp_threads(threads));
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "gathered_row_sums", [&] {
    gathered_row_sums_impl<scalar_t>(q.data_ptr<scalar_t>(), index.data_ptr<int64_t>(), b.data_ptr<scalar_t>(), rows,
                                     cols, by_row.data_ptr<scalar_t>(), nt);
  });
  return by_row;
}

// Returns (by_row [R], by_feature [C]) of a and b (contiguous CPU [R, C] tensors of one float dtype): the row and
// the feature sums of a * b, accumulated in double in a fixed order (the same bits on any number of threads).
std::tuple<torch::Tensor, torch::Tensor> product_sums(torch::Tensor a, torch::Tensor b, int64_t threads) {
  TORCH_CHECK(a.device().is_cpu() && a.dim() == 2 && a.is_contiguous(), "a must be a contiguous CPU [R, C] tensor");
  TORCH_CHECK(b.device().is_cpu() && b.sizes() == a.sizes() && b.is_contiguous() && b.scalar_type() == a.scalar_type(),
              "b must be a contiguous CPU tensor of a's shape and dtype");
  const int64_t rows = a.size(0), cols = a.size(1);
  auto by_row = torch::empty({rows}, a.options());
  auto by_feature = torch::empty({cols}, a.options());
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  auto partial = torch::zeros({blocks, cols}, a.options().dtype(torch::kDouble));
  const int nt = team_for(rows * cols, clamp_threads(threads));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "product_sums", [&] {
    product_sums_impl<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), rows, cols, by_row.data_ptr<scalar_t>(),
                                partial.data_ptr<double>(), by_feature.data_ptr<scalar_t>(), nt);
  });
  return {by_row, by_feature};
}
