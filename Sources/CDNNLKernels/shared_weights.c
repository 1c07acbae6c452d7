#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// A copy of the weights in another layout.
struct weights_copy {
    dnnl_memory_desc_t layout;
    void *data;
    struct weights_copy *next;
};

// Reorders `from` (layout `from_layout`) into `to` (layout `to_layout`) on a stream of its own.
static dnnl_status_t reorder(const dnnl_memory_desc_t *from_layout, const void *from, const dnnl_memory_desc_t *to_layout, void *to) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t primitive = NULL;
    dnnl_memory_t source = NULL, destination = NULL;
    dnnl_stream_t local = NULL;
    if (!(s = dnnl_memory_create(&source, from_layout, engine, (void *)from)) && !(s = dnnl_memory_create(&destination, to_layout, engine, to))
        && !(s = dnnl_reorder_primitive_desc_create(&pd, from_layout, engine, to_layout, engine, NULL))
        && !(s = dnnl_primitive_create(&primitive, pd)) && !(s = dnnl_stream_create(&local, engine, dnnl_stream_default_flags))) {
        dnnl_exec_arg_t arguments[2] = {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, destination}};
        if (!(s = dnnl_primitive_execute(primitive, local, 2, arguments))) s = dnnl_stream_wait(local);
    }
    if (local) dnnl_stream_destroy(local);
    if (primitive) dnnl_primitive_destroy(primitive);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (source) dnnl_memory_destroy(source);
    if (destination) dnnl_memory_destroy(destination);
    return s;
}

static void *allocate(const dnnl_memory_desc_t *layout) {
    return aligned_alloc(64, (dnnl_memory_desc_get_size(layout) + 63) / 64 * 64);
}

// The weights in `layout`: the first layout, a copy made earlier, or a new copy; NULL with
// *status set on failure. The caller holds the lock.
static const void *weights_in(csm_shared_weights *w, const dnnl_memory_desc_t *layout, const dnnl_memory_desc_t **kept,
                              dnnl_status_t *status) {
    *kept = &w->layout;
    if (dnnl_memory_desc_equal(layout, &w->layout)) return w->data;
    for (struct weights_copy *c = w->copies; c; c = c->next) {
        if (dnnl_memory_desc_equal(layout, &c->layout)) {
            *kept = &c->layout;
            return c->data;
        }
    }
    struct weights_copy *c = calloc(1, sizeof *c);
    if (!c || !(c->data = allocate(layout))) {
        free(c);
        *status = dnnl_out_of_memory;
        return NULL;
    }
    c->layout = *layout;
    if ((*status = reorder(&w->layout, w->data, &c->layout, c->data))) {
        free(c->data);
        free(c);
        return NULL;
    }
    c->next = w->copies;
    w->copies = c;
    *kept = &c->layout;
    return c->data;
}

dnnl_status_t csm_shared_weights_init(csm_shared_weights *w, int dimensions, const dnnl_dims_t dims, dnnl_format_tag_t plain_tag,
                                      const float *values, csm_descriptor_maker maker, const void *owner, const long *typical) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    omp_set_num_threads(1);  // a team left behind would spin on the other cores
    w->dimensions = dimensions;
    memcpy(w->dims, dims, sizeof(dnnl_dims_t));
    w->maker = maker;
    w->owner = owner;
    dnnl_memory_desc_t any, plain;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    if (!(s = dnnl_memory_desc_init_by_tag(&any, dimensions, dims, dnnl_bf16, dnnl_format_tag_any))
        && !(s = dnnl_memory_desc_init_by_tag(&plain, dimensions, dims, dnnl_f32, plain_tag)) && !(s = maker(owner, typical, &any, &pd))) {
        w->layout = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (!(w->data = allocate(&w->layout))) s = dnnl_out_of_memory;
    }
    if (!s) s = reorder(&plain, values, &w->layout, w->data);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return s;
}

void csm_shared_weights_free(csm_shared_weights *w) {
    csm_shape *shape = w->shapes;
    while (shape) {
        csm_shape *next = shape->next;
        dnnl_primitive_destroy(shape->primitive);
        free(shape);
        shape = next;
    }
    struct weights_copy *copy = w->copies;
    while (copy) {
        struct weights_copy *next = copy->next;
        free(copy->data);
        free(copy);
        copy = next;
    }
    free(w->data);
    pthread_mutex_destroy(&w->lock);
    memset(w, 0, sizeof *w);
}

const csm_shape *csm_shared_weights_shape(csm_shared_weights *w, const long key[CSM_SHAPE_KEY], dnnl_status_t *status) {
    pthread_mutex_lock(&w->lock);
    csm_shape *p = w->shapes;
    while (p && memcmp(p->key, key, sizeof p->key)) p = p->next;
    *status = dnnl_success;
    if (!p) {
        dnnl_primitive_desc_t pd = NULL, preferred = NULL;
        dnnl_memory_desc_t any;
        if (!(p = calloc(1, sizeof *p))) {
            *status = dnnl_out_of_memory;
        } else if (!(*status = w->maker(w->owner, key, &w->layout, &pd))) {
            if (csm_dnnl_is_reference(pd) && !dnnl_memory_desc_init_by_tag(&any, w->dimensions, w->dims, dnnl_bf16, dnnl_format_tag_any)
                && !w->maker(w->owner, key, &any, &preferred) && !csm_dnnl_is_reference(preferred)) {
                dnnl_primitive_desc_destroy(pd);
                pd = preferred;
                preferred = NULL;
            }
            p->weights = weights_in(w, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &p->weights_layout, status);
            p->source = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            p->destination = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
            p->bias = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1);
            p->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            if (p->weights) *status = dnnl_primitive_create(&p->primitive, pd);
        }
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (preferred) dnnl_primitive_desc_destroy(preferred);
        if (*status) {
            free(p);
            p = NULL;
        } else {
            memcpy(p->key, key, sizeof p->key);
            p->next = w->shapes;
            w->shapes = p;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return p;
}
