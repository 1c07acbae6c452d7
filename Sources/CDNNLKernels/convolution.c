#include "CDNNLKernels.h"
#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// One stage of a convolution (forward, input gradient or weight gradient): its primitive,
// the weight layout it reads or writes, and the reorder between that layout and PyTorch's
// [Cout][Cin][k][k] (NULL when they are the same).
typedef struct {
    int made;
    dnnl_status_t status;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t weights;
    dnnl_primitive_t reorder;
    dnnl_memory_desc_t scratch, reorder_scratch;  // each one's scratch memory
    size_t scratch_bytes;  // the larger of the two
} stage;

struct csm_convolution {
    long count, height, width, in_channels, out_channels, kernel, stride, padding;
    int bias;
    dnnl_memory_desc_t source, destination, plain_weights, plain_bias;
    dnnl_primitive_desc_t forward_descriptor;  // kept: the hint the backward stages are made from
    stage forward, input_gradient, weight_gradient;
    struct csm_convolution *next;
};

static csm_convolution *convolutions;
static pthread_mutex_t convolutions_lock = PTHREAD_MUTEX_INITIALIZER;

static const dnnl_memory_desc_t *scratch_layout(dnnl_primitive_desc_t pd) {
    return dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
}

// A reorder between two weight layouts, or NULL (success) when they are the same.
static dnnl_status_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, stage *st) {
    st->reorder = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_primitive_attr_t attributes;
    dnnl_primitive_desc_t pd = NULL;
    if ((s = csm_dnnl_user_scratch_attributes(&attributes))) return s;
    s = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attributes);
    dnnl_primitive_attr_destroy(attributes);
    if (!s) {
        st->reorder_scratch = *scratch_layout(pd);
        size_t bytes = dnnl_memory_desc_get_size(&st->reorder_scratch);
        if (bytes > st->scratch_bytes) st->scratch_bytes = bytes;
        s = dnnl_primitive_create(&st->reorder, pd);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    return s;
}

// Finishes a stage from its primitive descriptor: the primitive, its weight layout and the reorder.
static dnnl_status_t finish_stage(stage *st, dnnl_primitive_desc_t pd, dnnl_query_t weights_query, int to_plain,
                                  const dnnl_memory_desc_t *plain) {
    st->weights = *dnnl_primitive_desc_query_md(pd, weights_query, 0);
    st->scratch = *scratch_layout(pd);
    st->scratch_bytes = dnnl_memory_desc_get_size(&st->scratch);
    dnnl_status_t s = dnnl_primitive_create(&st->primitive, pd);
    if (!s) s = to_plain ? make_reorder(&st->weights, plain, st) : make_reorder(plain, &st->weights, st);
    return s;
}

// Makes stage `which` (0 forward, 1 input gradient, 2 weight gradient), its weight layout
// left to oneDNN. The forward's descriptor is kept: the backward stages are made from it.
static dnnl_status_t make_stage(csm_convolution *c, int which) {
    dnnl_status_t s;
    dnnl_dims_t weight_dims = {c->out_channels, c->in_channels, c->kernel, c->kernel};
    dnnl_dims_t strides = {c->stride, c->stride}, padding = {c->padding, c->padding};
    const dnnl_memory_desc_t *bias = c->bias ? &c->plain_bias : NULL;
    dnnl_memory_desc_t any_weights;
    dnnl_convolution_desc_t description;
    dnnl_primitive_desc_t pd = NULL;
    if ((s = dnnl_memory_desc_init_by_tag(&any_weights, 4, weight_dims, dnnl_f32, dnnl_format_tag_any))) return s;
    if (which == 0) {
        s = dnnl_convolution_forward_desc_init(&description, dnnl_forward_training, dnnl_convolution_direct, &c->source, &any_weights,
                                               bias, &c->destination, strides, padding, padding);
    } else if (which == 1) {
        s = dnnl_convolution_backward_data_desc_init(&description, dnnl_convolution_direct, &c->source, &any_weights, &c->destination,
                                                     strides, padding, padding);
    } else {
        s = dnnl_convolution_backward_weights_desc_init(&description, dnnl_convolution_direct, &c->source, &any_weights, bias,
                                                        &c->destination, strides, padding, padding);
    }
    if (s || (s = csm_dnnl_primitive_desc(&pd, &description, which == 0 ? NULL : c->forward_descriptor))) return s;
    stage *st = which == 0 ? &c->forward : which == 1 ? &c->input_gradient : &c->weight_gradient;
    s = finish_stage(st, pd, which == 2 ? dnnl_query_diff_weights_md : dnnl_query_weights_md, which == 2, &c->plain_weights);
    if (which == 0) {
        c->forward_descriptor = pd;
    } else {
        dnnl_primitive_desc_destroy(pd);
    }
    return s;
}

const csm_convolution *csm_convolution_get(long count, long height, long width, long in_channels, long out_channels, long kernel,
                                           long stride, long padding, int bias, int *status) {
    pthread_mutex_lock(&convolutions_lock);
    csm_convolution *c = convolutions;
    while (c && !(c->count == count && c->height == height && c->width == width && c->in_channels == in_channels
                  && c->out_channels == out_channels && c->kernel == kernel && c->stride == stride && c->padding == padding
                  && c->bias == (bias != 0))) c = c->next;
    dnnl_status_t s = dnnl_success;
    if (!c && !(c = calloc(1, sizeof *c))) s = dnnl_out_of_memory;
    if (!s && !c->forward.made) {
        *c = (csm_convolution){count, height, width, in_channels, out_channels, kernel, stride, padding, bias != 0};
        long out_height = (height + 2 * padding - kernel) / stride + 1, out_width = (width + 2 * padding - kernel) / stride + 1;
        // NCHW logical dimensions; NHWC memory.
        dnnl_dims_t source_dims = {count, in_channels, height, width}, destination_dims = {count, out_channels, out_height, out_width};
        dnnl_dims_t weight_dims = {out_channels, in_channels, kernel, kernel}, bias_dims = {out_channels};
        if (!(s = dnnl_memory_desc_init_by_tag(&c->source, 4, source_dims, dnnl_f32, dnnl_nhwc))
            && !(s = dnnl_memory_desc_init_by_tag(&c->destination, 4, destination_dims, dnnl_f32, dnnl_nhwc))
            && !(s = dnnl_memory_desc_init_by_tag(&c->plain_weights, 4, weight_dims, dnnl_f32, dnnl_oihw))
            && !(s = dnnl_memory_desc_init_by_tag(&c->plain_bias, 1, bias_dims, dnnl_f32, dnnl_a)))
            s = make_stage(c, 0);
        c->forward.made = 1;
        c->forward.status = s;
        c->next = convolutions;
        convolutions = c;
    } else if (c) {
        s = c->forward.status;
    }
    pthread_mutex_unlock(&convolutions_lock);
    *status = (int)s;
    return s ? NULL : c;
}

// The stage, made on first use (under the lock: stages are shared by every thread).
static const stage *stage_for(const csm_convolution *cc, int which, dnnl_status_t *status) {
    csm_convolution *c = (csm_convolution *)cc;
    if (which == 0) {
        *status = dnnl_success;  // made with the convolution
        return &c->forward;
    }
    stage *st = which == 1 ? &c->input_gradient : &c->weight_gradient;
    pthread_mutex_lock(&convolutions_lock);
    if (!st->made) {
        st->status = make_stage(c, which);
        st->made = 1;
    }
    *status = st->status;
    pthread_mutex_unlock(&convolutions_lock);
    return *status ? NULL : st;
}

// The calling thread's buffers: the stage's weights in its layout (when it differs from
// PyTorch's), then the scratch memory.
static dnnl_status_t buffers(const stage *st, dnnl_stream_t *stream, void **weights, void **scratch) {
    size_t weight_bytes = st->reorder ? (dnnl_memory_desc_get_size(&st->weights) + 63) / 64 * 64 : 0;
    void *buffer;
    dnnl_status_t s = csm_dnnl_thread(weight_bytes + st->scratch_bytes, stream, &buffer);
    if (s) return s;
    *weights = buffer;
    *scratch = (char *)buffer + weight_bytes;
    return dnnl_success;
}

// Stage `which` (0 forward, 1 input gradient, 2 weight gradient) on the calling thread.
static int run_stage(const csm_convolution *c, int which, const float *a, const float *weights, const float *bias, float *out,
                     float *bias_out) {
    dnnl_status_t s;
    const stage *st = stage_for(c, which, &s);
    if (!st) return (int)s;
    dnnl_stream_t stream;
    void *blocked, *scratch;
    if ((s = buffers(st, &stream, &blocked, &scratch))) return (int)s;
    if (which == 2) {
        // dW in the primitive's layout, then reordered into PyTorch's.
        void *target = st->reorder ? blocked : out;
        csm_dnnl_argument arguments[4] = {{DNNL_ARG_SRC, &c->source, a}, {DNNL_ARG_DIFF_DST, &c->destination, weights},
                                             {DNNL_ARG_DIFF_WEIGHTS, &st->weights, target}, {DNNL_ARG_DIFF_BIAS, &c->plain_bias, bias_out}};
        if ((s = csm_dnnl_run(st->primitive, stream, &st->scratch, scratch, arguments, 4))) return (int)s;
        if (st->reorder) {
            csm_dnnl_argument reorder[2] = {{DNNL_ARG_FROM, &st->weights, blocked}, {DNNL_ARG_TO, &c->plain_weights, out}};
            s = csm_dnnl_run(st->reorder, stream, &st->reorder_scratch, scratch, reorder, 2);
        }
        return (int)s;
    }
    const void *w = weights;
    if (st->reorder) {
        csm_dnnl_argument reorder[2] = {{DNNL_ARG_FROM, &c->plain_weights, weights}, {DNNL_ARG_TO, &st->weights, blocked}};
        if ((s = csm_dnnl_run(st->reorder, stream, &st->reorder_scratch, scratch, reorder, 2))) return (int)s;
        w = blocked;
    }
    if (which == 0) {
        csm_dnnl_argument arguments[4] = {{DNNL_ARG_SRC, &c->source, a}, {DNNL_ARG_WEIGHTS, &st->weights, w},
                                             {DNNL_ARG_BIAS, &c->plain_bias, c->bias ? bias : NULL}, {DNNL_ARG_DST, &c->destination, out}};
        return (int)csm_dnnl_run(st->primitive, stream, &st->scratch, scratch, arguments, 4);
    }
    csm_dnnl_argument arguments[3] = {{DNNL_ARG_DIFF_DST, &c->destination, a}, {DNNL_ARG_WEIGHTS, &st->weights, w},
                                     {DNNL_ARG_DIFF_SRC, &c->source, out}};
    return (int)csm_dnnl_run(st->primitive, stream, &st->scratch, scratch, arguments, 3);
}

int csm_convolution_forward(const csm_convolution *c, const float *x, const float *weights, const float *bias, float *y) {
    return run_stage(c, 0, x, weights, bias, y, NULL);
}

int csm_convolution_input_gradient(const csm_convolution *c, const float *dy, const float *weights, float *dx) {
    return run_stage(c, 1, dy, weights, NULL, dx, NULL);
}

int csm_convolution_weight_gradient(const csm_convolution *c, const float *x, const float *dy, float *dweights, float *dbias) {
    return run_stage(c, 2, x, dy, NULL, dweights, c->bias ? dbias : NULL);
}

// bf16 inference: filters rounded and laid out once, one primitive per input shape.

struct csm_bf16_filters {
    long out_channels, in_channels, kernel;
    int bias;
    float *bias_values;
    csm_shared_weights filters;  // keyed by count, height, width, stride, padding
};

// A bf16 forward-inference descriptor for input shape `key` with the given filter layout.
static dnnl_status_t bf16_descriptor(const void *owner, const long *key, const dnnl_memory_desc_t *filters, dnnl_primitive_desc_t *pd) {
    const csm_bf16_filters *f = owner;
    long count = key[0], height = key[1], width = key[2], stride = key[3], padding = key[4];
    long out_height = (height + 2 * padding - f->kernel) / stride + 1, out_width = (width + 2 * padding - f->kernel) / stride + 1;
    dnnl_dims_t source_dims = {count, f->in_channels, height, width}, destination_dims = {count, f->out_channels, out_height, out_width};
    dnnl_dims_t bias_dims = {f->out_channels}, strides = {stride, stride}, pads = {padding, padding};
    dnnl_memory_desc_t source, destination, bias;
    dnnl_convolution_desc_t description;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&source, 4, source_dims, dnnl_bf16, dnnl_nhwc))
        || (s = dnnl_memory_desc_init_by_tag(&destination, 4, destination_dims, dnnl_f32, dnnl_nhwc))
        || (s = dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_a))
        || (s = dnnl_convolution_forward_desc_init(&description, dnnl_forward_inference, dnnl_convolution_direct, &source, filters,
                                                   f->bias ? &bias : NULL, &destination, strides, pads, pads))) return s;
    return csm_dnnl_primitive_desc(pd, &description, NULL);
}

csm_bf16_filters *csm_bf16_filters_create(long out_channels, long in_channels, long kernel, const float *weights, const float *bias,
                                          int *status) {
    csm_bf16_filters *f = calloc(1, sizeof *f);
    if (!f) {
        *status = (int)dnnl_out_of_memory;
        return NULL;
    }
    f->out_channels = out_channels;
    f->in_channels = in_channels;
    f->kernel = kernel;
    f->bias = bias != NULL;
    // The layout oneDNN prefers at a typical shape: 16 images of 16×16, size-preserving.
    dnnl_dims_t dims = {out_channels, in_channels, kernel, kernel};
    long typical[CSM_SHAPE_KEY] = {16, 16, 16, 1, (kernel - 1) / 2};
    dnnl_status_t s = csm_shared_weights_init(&f->filters, 4, dims, dnnl_oihw, weights, bf16_descriptor, f, typical);
    if (!s && bias && !(f->bias_values = malloc(sizeof(float) * out_channels))) s = dnnl_out_of_memory;
    if (!s && bias) memcpy(f->bias_values, bias, sizeof(float) * out_channels);
    *status = (int)s;
    if (s) {
        csm_bf16_filters_destroy(f);
        return NULL;
    }
    return f;
}

void csm_bf16_filters_destroy(csm_bf16_filters *f) {
    if (!f) return;
    csm_shared_weights_free(&f->filters);
    free(f->bias_values);
    free(f);
}

// The calling thread's buffer for the rounded input, kept between calls (allocating it per
// call would page-fault it in every time).
static _Thread_local uint16_t *rounded;
static _Thread_local size_t rounded_count;

int csm_bf16_convolution_forward(csm_bf16_filters *f, long count, long height, long width, long stride, long padding, const float *x,
                                 float *y) {
    dnnl_status_t s;
    long key[CSM_SHAPE_KEY] = {count, height, width, stride, padding};
    const csm_shape *p = csm_shared_weights_shape(&f->filters, key, &s);
    if (!p) return (int)s;
    dnnl_stream_t stream;
    void *scratch;
    if ((s = csm_dnnl_thread(dnnl_memory_desc_get_size(&p->scratch), &stream, &scratch))) return (int)s;
    size_t values = (size_t)(count * height * width * f->in_channels);
    if (values > rounded_count) {
        free(rounded);
        rounded_count = 0;
        if (!(rounded = aligned_alloc(64, (values * sizeof *rounded + 63) / 64 * 64))) return (int)dnnl_out_of_memory;
        rounded_count = values;
    }
    csm_bf16_round_rows(x, (long)values, rounded, (long)values, 1, (long)values);
    csm_dnnl_argument arguments[4] = {{DNNL_ARG_SRC, &p->source, rounded}, {DNNL_ARG_WEIGHTS, p->weights_layout, p->weights},
                                     {DNNL_ARG_BIAS, &p->bias, f->bias_values}, {DNNL_ARG_DST, &p->destination, y}};
    return (int)csm_dnnl_run(p->primitive, stream, &p->scratch, scratch, arguments, 4);
}
