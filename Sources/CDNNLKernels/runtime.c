#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>

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
