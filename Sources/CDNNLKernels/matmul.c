#include "CDNNLKernels.h"
#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>

// bf16 batched products: the B matrices rounded and laid out once, one primitive per
// geometry of A and C.

struct csm_bf16_matrices {
    long batch, k, n;
    csm_packed_weights b;
    struct product_shape *shapes;  // primitives made so far
    pthread_mutex_t lock;
};

struct product_shape {
    long rows, lda, a_stride, ldc, c_stride;
    dnnl_memory_desc_t a, c, scratch;
    const dnnl_memory_desc_t *b_layout;  // the matrices' first layout or a copy's
    const void *b;
    dnnl_primitive_t primitive;
    struct product_shape *next;
};

// A batched matmul descriptor for A (bf16) and C (fp32) with the given strides, and B in
// layout `b` (`any` to let oneDNN choose).
static dnnl_status_t descriptor(const csm_bf16_matrices *m, long rows, long lda, long a_stride, long ldc, long c_stride,
                                const dnnl_memory_desc_t *b, dnnl_primitive_desc_t *pd) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_dims_t a_dims = {m->batch, rows, m->k}, a_strides = {a_stride, lda, 1};
    dnnl_dims_t c_dims = {m->batch, rows, m->n}, c_strides = {c_stride, ldc, 1};
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t description;
    dnnl_primitive_attr_t attributes;
    if ((s = dnnl_memory_desc_init_by_strides(&a, 3, a_dims, dnnl_bf16, a_strides))
        || (s = dnnl_memory_desc_init_by_strides(&c, 3, c_dims, dnnl_f32, c_strides))
        || (s = dnnl_matmul_desc_init(&description, &a, b, NULL, &c))
        || (s = csm_dnnl_user_scratch_attributes(&attributes))) return s;
    s = dnnl_primitive_desc_create(pd, &description, attributes, engine, NULL);
    dnnl_primitive_attr_destroy(attributes);
    return s;
}

csm_bf16_matrices *csm_bf16_matrices_create(long batch, long k, long n, const float *b, int *status) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    *status = (int)s;
    if (!engine) return NULL;
    omp_set_num_threads(1);  // a team left behind would spin on the other cores
    csm_bf16_matrices *m = calloc(1, sizeof *m);
    if (!m) {
        *status = (int)dnnl_out_of_memory;
        return NULL;
    }
    m->batch = batch;
    m->k = k;
    m->n = n;
    pthread_mutex_init(&m->lock, NULL);
    // The layout oneDNN prefers for 96 dense rows of A; other geometries share it where they can.
    dnnl_dims_t dims = {batch, k, n};
    dnnl_memory_desc_t any, plain;
    dnnl_primitive_desc_t pd = NULL;
    if (!(s = dnnl_memory_desc_init_by_tag(&any, 3, dims, dnnl_bf16, dnnl_format_tag_any))
        && !(s = dnnl_memory_desc_init_by_tag(&plain, 3, dims, dnnl_f32, dnnl_abc))
        && !(s = descriptor(m, 96, k, 96 * k, n, 96 * n, &any, &pd)))
        s = csm_packed_weights_init(&m->b, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &plain, b);
    if (pd) dnnl_primitive_desc_destroy(pd);
    *status = (int)s;
    if (s) {
        csm_bf16_matrices_destroy(m);
        return NULL;
    }
    return m;
}

void csm_bf16_matrices_destroy(csm_bf16_matrices *m) {
    if (!m) return;
    struct product_shape *shape = m->shapes;
    while (shape) {
        struct product_shape *next = shape->next;
        dnnl_primitive_destroy(shape->primitive);
        free(shape);
        shape = next;
    }
    csm_packed_weights_free(&m->b);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

// The primitive for one geometry, made on first use; NULL with *status set on failure. As
// for bf16 convolutions, a geometry with only a reference kernel in the shared layout gets
// the layout oneDNN prefers for it.
static struct product_shape *shape_for(csm_bf16_matrices *m, long rows, long lda, long a_stride, long ldc, long c_stride,
                                       dnnl_status_t *status) {
    pthread_mutex_lock(&m->lock);
    struct product_shape *p = m->shapes;
    while (p && !(p->rows == rows && p->lda == lda && p->a_stride == a_stride && p->ldc == ldc && p->c_stride == c_stride)) p = p->next;
    *status = dnnl_success;
    if (!p) {
        dnnl_primitive_desc_t pd = NULL, preferred = NULL;
        dnnl_memory_desc_t any;
        dnnl_dims_t dims = {m->batch, m->k, m->n};
        if (!(p = calloc(1, sizeof *p))) {
            *status = dnnl_out_of_memory;
        } else if (!(*status = descriptor(m, rows, lda, a_stride, ldc, c_stride, &m->b.layout, &pd))) {
            if (csm_dnnl_is_reference(pd) && !dnnl_memory_desc_init_by_tag(&any, 3, dims, dnnl_bf16, dnnl_format_tag_any)
                && !descriptor(m, rows, lda, a_stride, ldc, c_stride, &any, &preferred) && !csm_dnnl_is_reference(preferred)) {
                dnnl_primitive_desc_destroy(pd);
                pd = preferred;
                preferred = NULL;
            }
            p->b = csm_packed_weights_in(&m->b, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &p->b_layout, status);
            p->a = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            p->c = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
            p->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            if (p->b) *status = dnnl_primitive_create(&p->primitive, pd);
        }
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (preferred) dnnl_primitive_desc_destroy(preferred);
        if (*status) {
            free(p);
            p = NULL;
        } else {
            p->rows = rows;
            p->lda = lda;
            p->a_stride = a_stride;
            p->ldc = ldc;
            p->c_stride = c_stride;
            p->next = m->shapes;
            m->shapes = p;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return p;
}

int csm_bf16_matrices_multiply(csm_bf16_matrices *m, long rows, const uint16_t *a, long lda, long a_stride, float *c, long ldc,
                               long c_stride) {
    dnnl_status_t s;
    struct product_shape *p = shape_for(m, rows, lda, a_stride, ldc, c_stride, &s);
    if (!p) return (int)s;
    dnnl_stream_t stream;
    void *scratch;
    if ((s = csm_dnnl_thread(dnnl_memory_desc_get_size(&p->scratch), &stream, &scratch))) return (int)s;
    csm_dnnl_argument arguments[3] = {{DNNL_ARG_SRC, &p->a, a}, {DNNL_ARG_WEIGHTS, p->b_layout, p->b}, {DNNL_ARG_DST, &p->c, c}};
    return (int)csm_dnnl_run(p->primitive, stream, &p->scratch, scratch, arguments, 3);
}
