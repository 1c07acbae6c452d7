// oneDNN primitives behind plain C calls: the bf16 products of csm's `--precision bf16`
// (AMX or AVX512-BF16 kernels where the CPU has them) with the fp32 → bf16 rounding, and the
// fp32 convolutions of training with their gradients. Every call runs on the calling thread
// only (callers parallelise themselves); primitives are made once per shape and kept.
#ifndef CSM_CDNNLKERNELS_H
#define CSM_CDNNLKERNELS_H

#include <stdint.h>

/// Rounds a rows × columns block of floats (rows `source_stride` floats apart) to bf16
/// (nearest, ties to even; NaN stays NaN; subnormals become zero, as the AVX512-BF16
/// instruction makes them), rows `destination_stride` apart.
void csm_bf16_round_rows(const float *source, long source_stride, uint16_t *destination, long destination_stride,
                         long rows, long columns);

/// `batch` weight matrices (k × n) in bf16, in the blocked layout oneDNN's kernels read.
typedef struct csm_bf16_matrices csm_bf16_matrices;

/// Rounds `values` (dense fp32 [batch][k][n]) to bf16 in oneDNN's layout; NULL on failure.
csm_bf16_matrices *csm_bf16_matrices_create(long batch, long k, long n, const float *values);

void csm_bf16_matrices_destroy(csm_bf16_matrices *matrices);

/// Batched row-major product with fp32 results: for i < batch, C_i = A_i · B_i, A dense bf16
/// [batch][m][k], C_i (m × n) at c + i·batch_stride_c with row stride ldc (dense, ldc = n
/// and batch_stride_c = m·n, is fastest). Runs on the calling thread only (callers
/// parallelise themselves); a primitive is made once per shape and kept. Returns 0 on
/// success, else oneDNN's status code.
int csm_bf16_gemm(long m, const uint16_t *a, const csm_bf16_matrices *b, float *c, long ldc, long batch_stride_c);

/// A convolution of `count` images (NHWC, height × width × in_channels, dense) by
/// out_channels filters of kernel × kernel with `stride` and zero `padding` on every side, with
/// a bias or without: its forward, input-gradient and weight-gradient primitives.
typedef struct csm_convolution csm_convolution;

/// The convolution of that shape, made on first use and kept for the process (the gradient
/// primitives are made on their first call); NULL with *status set to oneDNN's status code
/// on failure.
const csm_convolution *csm_convolution_get(long count, long height, long width, long in_channels, long out_channels, long kernel,
                                           long stride, long padding, int bias, int *status);

/// y (NHWC) = conv(x, weights) (+ bias), weights in PyTorch's layout [Cout][Cin][k][k].
/// Returns 0 on success, else oneDNN's status code (likewise below).
int csm_convolution_forward(const csm_convolution *convolution, const float *x, const float *weights, const float *bias, float *y);

/// dL/dx (NHWC, overwritten) for the output gradient dy.
int csm_convolution_input_gradient(const csm_convolution *convolution, const float *dy, const float *weights, float *dx);

/// dL/dweights ([Cout][Cin][k][k]) and, with a bias, dL/dbias, both overwritten, for input x
/// and output gradient dy.
int csm_convolution_weight_gradient(const csm_convolution *convolution, const float *x, const float *dy, float *dweights, float *dbias);

#endif
