#include "runtime.h"

#include <stdlib.h>
#include <string.h>

dnnl_status_t csm_dnnl_run(dnnl_primitive_t primitive, dnnl_stream_t stream, const dnnl_memory_desc_t *scratch_layout, void *scratch,
                           csm_dnnl_argument *arguments, int count) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_memory_t memories[6] = {NULL};
    dnnl_exec_arg_t exec[6];
    int n = 0;
    for (int i = 0; i < count && !s; i++) {
        if (!arguments[i].data) continue;
        s = dnnl_memory_create(&memories[n], arguments[i].layout, engine, (void *)arguments[i].data);
        exec[n].arg = arguments[i].argument;
        exec[n].memory = memories[n];
        n++;
    }
    if (!s && dnnl_memory_desc_get_size(scratch_layout) > 0 && !(s = dnnl_memory_create(&memories[n], scratch_layout, engine, scratch))) {
        exec[n].arg = DNNL_ARG_SCRATCHPAD;
        exec[n].memory = memories[n];
        n++;
    }
    if (!s) s = dnnl_primitive_execute(primitive, stream, n, exec);
    for (int i = 0; i < n; i++) dnnl_memory_destroy(memories[i]);
    return s;
}

int csm_dnnl_is_reference(dnnl_primitive_desc_t pd) {
    const char *name = NULL;
    return !dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) && name && !strncmp(name, "ref", 3);
}

struct csm_packed_copy {
    dnnl_memory_desc_t layout;
    void *data;
    struct csm_packed_copy *next;
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

dnnl_status_t csm_packed_weights_init(csm_packed_weights *w, const dnnl_memory_desc_t *layout, const dnnl_memory_desc_t *source_layout,
                                      const void *source) {
    memset(w, 0, sizeof *w);
    w->layout = *layout;
    if (!(w->data = allocate(layout))) return dnnl_out_of_memory;
    return reorder(source_layout, source, &w->layout, w->data);
}

void csm_packed_weights_free(csm_packed_weights *w) {
    struct csm_packed_copy *copy = w->copies;
    while (copy) {
        struct csm_packed_copy *next = copy->next;
        free(copy->data);
        free(copy);
        copy = next;
    }
    free(w->data);
    memset(w, 0, sizeof *w);
}

const void *csm_packed_weights_in(csm_packed_weights *w, const dnnl_memory_desc_t *layout, const dnnl_memory_desc_t **kept,
                                  dnnl_status_t *status) {
    *kept = &w->layout;
    if (dnnl_memory_desc_equal(layout, &w->layout)) return w->data;
    for (struct csm_packed_copy *c = w->copies; c; c = c->next) {
        if (dnnl_memory_desc_equal(layout, &c->layout)) {
            *kept = &c->layout;
            return c->data;
        }
    }
    struct csm_packed_copy *c = calloc(1, sizeof *c);
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
