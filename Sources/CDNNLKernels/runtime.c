#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t engine_status;
static _Thread_local dnnl_stream_t stream;
static _Thread_local void *scratch;
static _Thread_local size_t scratch_bytes;

static void make_engine(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

dnnl_engine_t csm_dnnl_engine(dnnl_status_t *status) {
    pthread_once(&engine_once, make_engine);
    *status = engine_status;
    return engine_status ? NULL : engine;
}

dnnl_status_t csm_dnnl_thread(size_t needed, dnnl_stream_t *out_stream, void **out_scratch) {
    dnnl_status_t s;
    dnnl_engine_t e = csm_dnnl_engine(&s);
    if (!e) return s;
    omp_set_num_threads(1);  // a team left behind would spin on the other cores
    if (!stream && (s = dnnl_stream_create(&stream, e, dnnl_stream_default_flags))) return s;
    if (needed > scratch_bytes) {
        free(scratch);
        scratch_bytes = 0;
        if (!(scratch = aligned_alloc(64, (needed + 63) / 64 * 64))) return dnnl_out_of_memory;
        scratch_bytes = needed;
    }
    *out_stream = stream;
    *out_scratch = scratch;
    return dnnl_success;
}

dnnl_status_t csm_dnnl_user_scratch_attributes(dnnl_primitive_attr_t *attributes) {
    dnnl_status_t s = dnnl_primitive_attr_create(attributes);
    if (s) return s;
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(*attributes, dnnl_scratchpad_mode_user))) dnnl_primitive_attr_destroy(*attributes);
    return s;
}

dnnl_status_t csm_dnnl_primitive_desc(dnnl_primitive_desc_t *pd, const_dnnl_op_desc_t description, const_dnnl_primitive_desc_t hint) {
    dnnl_status_t s;
    dnnl_engine_t engine = csm_dnnl_engine(&s);
    if (!engine) return s;
    dnnl_primitive_attr_t attributes;
    if ((s = csm_dnnl_user_scratch_attributes(&attributes))) return s;
    s = dnnl_primitive_desc_create(pd, description, attributes, engine, hint);
    dnnl_primitive_attr_destroy(attributes);
    return s;
}

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
