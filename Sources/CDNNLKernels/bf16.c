#include "CDNNLKernels.h"
#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>


static uint16_t round_one(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);  // quiet NaN
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);  // subnormal: ±0, as vcvtneps2bf16 does
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

__attribute__((target("avx512f,avx512bf16")))
static void round_avx512(const float *source, uint16_t *destination, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(source + i));
        _mm256_storeu_si256((__m256i *)(destination + i), (__m256i)packed);
    }
    for (; i < count; i++) destination[i] = round_one(source[i]);
}

void csm_bf16_round_rows(const float *source, long source_stride, uint16_t *destination, long destination_stride,
                         long rows, long columns) {
    static int native = -1;
    if (native < 0) native = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    for (long r = 0; r < rows; r++) {
        const float *from = source + r * source_stride;
        uint16_t *to = destination + r * destination_stride;
        if (native) {
            round_avx512(from, to, columns);
        } else {
            for (long i = 0; i < columns; i++) to[i] = round_one(from[i]);
        }
    }
}

struct csm_bf16_matrices {
    long batch, k, n;
    dnnl_memory_desc_t layout;
    void *data;
};

// Descriptors of a product: A dense bf16, C f32 with the given strides.
static dnnl_status_t describe(long batch, long m, long n, long k, long ldc, long batch_stride_c,
                              dnnl_memory_desc_t *a, dnnl_memory_desc_t *c) {
    dnnl_dims_t a_dims = {batch, m, k}, c_dims = {batch, m, n}, c_strides = {batch_stride_c, ldc, 1};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(a, 3, a_dims, dnnl_bf16, dnnl_abc);
    return s ? s : dnnl_memory_desc_init_by_strides(c, 3, c_dims, dnnl_f32, c_strides);
}

// A matmul primitive descriptor for A (m rows) times weights `b` with scratch memory from
// the caller: with the library's own, threads running the same primitive would share it.
static dnnl_status_t product_descriptor(long batch, long m, long n, long k, long ldc, long batch_stride_c,
                                        const dnnl_memory_desc_t *b, dnnl_primitive_desc_t *pd) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t description;
    dnnl_primitive_attr_t attributes;
    if ((s = describe(batch, m, n, k, ldc, batch_stride_c, &a, &c))) return s;
    if ((s = dnnl_matmul_desc_init(&description, &a, b, NULL, &c))) return s;
    if ((s = csm_dnnl_user_scratch_attributes(&attributes))) return s;
    s = dnnl_primitive_desc_create(pd, &description, attributes, engine, NULL);
    dnnl_primitive_attr_destroy(attributes);
    return s;
}

csm_bf16_matrices *csm_bf16_matrices_create(long batch, long k, long n, const float *values) {
    dnnl_status_t status;
    dnnl_engine_t engine = csm_dnnl_engine(&status);
    if (!engine) return NULL;
    omp_set_num_threads(1);  // a team left behind would spin on the other cores
    csm_bf16_matrices *matrices = calloc(1, sizeof *matrices);
    if (!matrices) return NULL;
    matrices->batch = batch;
    matrices->k = k;
    matrices->n = n;
    // The layout oneDNN prefers for products of a typical row count (it serves every count).
    dnnl_dims_t dims = {batch, k, n};
    dnnl_memory_desc_t any, plain;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t local = NULL;
    int ok = !dnnl_memory_desc_init_by_tag(&any, 3, dims, dnnl_bf16, dnnl_format_tag_any)
          && !dnnl_memory_desc_init_by_tag(&plain, 3, dims, dnnl_f32, dnnl_abc)
          && !product_descriptor(batch, 96, n, k, n, 96 * n, &any, &pd);
    if (ok) {
        matrices->layout = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        ok = (matrices->data = aligned_alloc(64, (dnnl_memory_desc_get_size(&matrices->layout) + 63) / 64 * 64)) != NULL;
    }
    ok = ok && !dnnl_memory_create(&from, &plain, engine, (void *)values)
            && !dnnl_memory_create(&to, &matrices->layout, engine, matrices->data)
            && !dnnl_reorder_primitive_desc_create(&reorder_pd, &plain, engine, &matrices->layout, engine, NULL)
            && !dnnl_primitive_create(&reorder, reorder_pd)
            && !dnnl_stream_create(&local, engine, dnnl_stream_default_flags);
    if (ok) {
        dnnl_exec_arg_t arguments[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = !dnnl_primitive_execute(reorder, local, 2, arguments) && !dnnl_stream_wait(local);
    }
    if (local) dnnl_stream_destroy(local);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        csm_bf16_matrices_destroy(matrices);
        return NULL;
    }
    return matrices;
}

void csm_bf16_matrices_destroy(csm_bf16_matrices *matrices) {
    if (!matrices) return;
    free(matrices->data);
    free(matrices);
}

// Primitives made so far, one per (shape, weight layout).
typedef struct product {
    long m, ldc, batch_stride_c;
    const csm_bf16_matrices *shape;  // batch, k, n and layout (compared by value)
    dnnl_memory_desc_t a, c, scratchpad;
    dnnl_primitive_t primitive;
    struct product *next;
} product;

static product *products;
static pthread_mutex_t products_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_weights(const csm_bf16_matrices *x, const csm_bf16_matrices *y) {
    return x->batch == y->batch && x->k == y->k && x->n == y->n && dnnl_memory_desc_equal(&x->layout, &y->layout);
}

// The primitive for a product, made on first use; NULL with *status set on failure.
static product *product_for(long m, const csm_bf16_matrices *b, long ldc, long batch_stride_c, dnnl_status_t *status) {
    if (b->batch == 1) batch_stride_c = m * ldc;  // irrelevant for one product; one key for it
    pthread_mutex_lock(&products_lock);
    product *p = products;
    while (p && !(p->m == m && p->ldc == ldc && p->batch_stride_c == batch_stride_c && same_weights(p->shape, b))) p = p->next;
    *status = dnnl_success;
    if (!p && (p = calloc(1, sizeof *p))) {
        dnnl_primitive_desc_t pd = NULL;
        csm_bf16_matrices *shape = malloc(sizeof *shape);
        if (shape) {
            *shape = *b;
            shape->data = NULL;
        }
        if (!shape) {
            *status = dnnl_out_of_memory;
        } else if (!(*status = product_descriptor(b->batch, m, b->n, b->k, ldc, batch_stride_c, &b->layout, &pd))) {
            p->a = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            p->c = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
            p->scratchpad = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            *status = dnnl_primitive_create(&p->primitive, pd);
            dnnl_primitive_desc_destroy(pd);
        }
        if (*status) {
            free(shape);
            free(p);
            p = NULL;
        } else {
            p->m = m;
            p->ldc = ldc;
            p->batch_stride_c = batch_stride_c;
            p->shape = shape;
            p->next = products;
            products = p;
        }
    } else if (!p) {
        *status = dnnl_out_of_memory;
    }
    pthread_mutex_unlock(&products_lock);
    return p;
}

int csm_bf16_gemm(long m, const uint16_t *a, const csm_bf16_matrices *b, float *c, long ldc, long batch_stride_c) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return (int)s;
    product *p = product_for(m, b, ldc, batch_stride_c, &s);
    if (!p) return (int)s;
    dnnl_stream_t stream;
    void *scratch;
    if ((s = csm_dnnl_thread(dnnl_memory_desc_get_size(&p->scratchpad), &stream, &scratch))) return (int)s;
    dnnl_memory_t memories[4] = {NULL, NULL, NULL, NULL};
    if (!(s = dnnl_memory_create(&memories[0], &p->a, engine, (void *)a))
        && !(s = dnnl_memory_create(&memories[1], &b->layout, engine, b->data))
        && !(s = dnnl_memory_create(&memories[2], &p->c, engine, c))
        && !(s = dnnl_memory_create(&memories[3], &p->scratchpad, engine, scratch))) {
        dnnl_exec_arg_t arguments[4] = {
            {DNNL_ARG_SRC, memories[0]}, {DNNL_ARG_WEIGHTS, memories[1]}, {DNNL_ARG_DST, memories[2]},
            {DNNL_ARG_SCRATCHPAD, memories[3]}};
        s = dnnl_primitive_execute(p->primitive, stream, 4, arguments);
    }
    for (int i = 0; i < 4; i++) if (memories[i]) dnnl_memory_destroy(memories[i]);
    return (int)s;
}
