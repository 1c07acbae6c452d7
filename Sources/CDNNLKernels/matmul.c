#include "CDNNLKernels.h"
#include "runtime.h"

#include <stdlib.h>

// bf16 batched products: the B matrices rounded and laid out once, one primitive per
// geometry of A and C.

struct csm_bf16_matrices {
    long batch, k, n;
    csm_shared_weights b;  // keyed by rows, lda, a_stride, ldc, c_stride
};

// A batched matmul descriptor for geometry `key` of A (bf16) and C (fp32), B in layout `b`.
static dnnl_status_t descriptor(const void *owner, const long *key, const dnnl_memory_desc_t *b, dnnl_primitive_desc_t *pd) {
    const csm_bf16_matrices *m = owner;
    long rows = key[0], lda = key[1], a_stride = key[2], ldc = key[3], c_stride = key[4];
    dnnl_dims_t a_dims = {m->batch, rows, m->k}, a_strides = {a_stride, lda, 1};
    dnnl_dims_t c_dims = {m->batch, rows, m->n}, c_strides = {c_stride, ldc, 1};
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t description;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a, 3, a_dims, dnnl_bf16, a_strides))
        || (s = dnnl_memory_desc_init_by_strides(&c, 3, c_dims, dnnl_f32, c_strides))
        || (s = dnnl_matmul_desc_init(&description, &a, b, NULL, &c))) return s;
    return csm_dnnl_primitive_desc(pd, &description, NULL);
}

csm_bf16_matrices *csm_bf16_matrices_create(long batch, long k, long n, const float *b, int *status) {
    csm_bf16_matrices *m = calloc(1, sizeof *m);
    if (!m) {
        *status = (int)dnnl_out_of_memory;
        return NULL;
    }
    m->batch = batch;
    m->k = k;
    m->n = n;
    // The layout oneDNN prefers for 96 dense rows of A and C.
    dnnl_dims_t dims = {batch, k, n};
    long typical[CSM_SHAPE_KEY] = {96, k, 96 * k, n, 96 * n};
    dnnl_status_t s = csm_shared_weights_init(&m->b, 3, dims, dnnl_abc, b, descriptor, m, typical);
    *status = (int)s;
    if (s) {
        csm_bf16_matrices_destroy(m);
        return NULL;
    }
    return m;
}

void csm_bf16_matrices_destroy(csm_bf16_matrices *m) {
    if (!m) return;
    csm_shared_weights_free(&m->b);
    free(m);
}

int csm_bf16_matrices_multiply(csm_bf16_matrices *m, long rows, const uint16_t *a, long lda, long a_stride, float *c, long ldc,
                               long c_stride) {
    dnnl_status_t s;
    long key[CSM_SHAPE_KEY] = {rows, lda, a_stride, ldc, c_stride};
    const csm_shape *p = csm_shared_weights_shape(&m->b, key, &s);
    if (!p) return (int)s;
    dnnl_stream_t stream;
    void *scratch;
    if ((s = csm_dnnl_thread(dnnl_memory_desc_get_size(&p->scratch), &stream, &scratch))) return (int)s;
    csm_dnnl_argument arguments[3] = {{DNNL_ARG_SRC, &p->source, a}, {DNNL_ARG_WEIGHTS, p->weights_layout, p->weights},
                                     {DNNL_ARG_DST, &p->destination, c}};
    return (int)csm_dnnl_run(p->primitive, stream, &p->scratch, scratch, arguments, 3);
}
