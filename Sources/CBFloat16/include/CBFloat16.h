// bf16 products for csm's `--precision bf16`: oneDNN's matmul primitive (AMX or AVX512-BF16
// kernels where the CPU has them) behind plain C calls, and the fp32 → bf16 rounding.
#ifndef CSM_CBFLOAT16_H
#define CSM_CBFLOAT16_H

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

#endif
