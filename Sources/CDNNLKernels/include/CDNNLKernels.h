// oneDNN primitives behind plain C calls: the fp32 convolutions of training with their
// gradients, and the bf16 convolutions of `--precision bf16` (AMX or AVX512-BF16 kernels
// where the CPU has them) with the fp32 → bf16 rounding. Every call runs on the calling thread
// only (callers parallelise themselves); primitives are made once per shape and kept.
#ifndef CSM_CDNNLKERNELS_H
#define CSM_CDNNLKERNELS_H

#include <stdint.h>

/// Rounds a rows × columns block of floats (rows `source_stride` floats apart) to bf16
/// (nearest, ties to even; NaN stays NaN; subnormals become zero, as the AVX512-BF16
/// instruction makes them), rows `destination_stride` apart.
void csm_bf16_round_rows(const float *source, long source_stride, uint16_t *destination, long destination_stride,
                         long rows, long columns);

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

/// Convolution filters in bf16 for inference: rounded from fp32 PyTorch-layout weights
/// [Cout][Cin][k][k] (nearest, ties to even) and laid out once as oneDNN's kernels read them,
/// with an optional fp32 bias [Cout].
typedef struct csm_bf16_filters csm_bf16_filters;

/// NULL with *status set to oneDNN's status code on failure.
csm_bf16_filters *csm_bf16_filters_create(long out_channels, long in_channels, long kernel, const float *weights, const float *bias,
                                          int *status);

void csm_bf16_filters_destroy(csm_bf16_filters *filters);

/// y (fp32 NHWC) = conv(x, filters) + bias for `count` fp32 NHWC images of height × width,
/// with `stride` and zero `padding`: x rounded to bf16 (as `csm_bf16_round_rows` does, into a
/// buffer the calling thread keeps), products accumulated in fp32. A primitive is made per
/// input shape on first use and kept with the filters.
int csm_bf16_convolution_forward(csm_bf16_filters *filters, long count, long height, long width, long stride, long padding,
                                 const float *x, float *y);

/// The `batch` matrices B[p] (k × n each, fp32 row-major, one after another) of a batched
/// product, rounded to bf16 (nearest, ties to even) and laid out once as oneDNN's matmul
/// kernels read them.
typedef struct csm_bf16_matrices csm_bf16_matrices;

/// NULL with *status set to oneDNN's status code on failure.
csm_bf16_matrices *csm_bf16_matrices_create(long batch, long k, long n, const float *b, int *status);

void csm_bf16_matrices_destroy(csm_bf16_matrices *matrices);

/// C[p] = A[p]·B[p] for every p: A[p] is rows × k in bf16 (rows `lda` apart, matrices
/// `a_stride` apart), C[p] rows × n in fp32 (`ldc`, `c_stride`), overwritten; products
/// accumulated in fp32. A primitive is made per geometry on first use and kept.
int csm_bf16_matrices_multiply(csm_bf16_matrices *matrices, long rows, const uint16_t *a, long lda, long a_stride, float *c, long ldc,
                               long c_stride);

#endif
