// What every oneDNN call in this target shares: one engine for the process, and per calling
// thread one stream, one scratch buffer and a team of one (csm runs one call per core itself).
#ifndef CSM_DNNL_RUNTIME_H
#define CSM_DNNL_RUNTIME_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

/// The process's CPU engine, made on first use; NULL with *status set on failure.
dnnl_engine_t csm_dnnl_engine(dnnl_status_t *status);

/// Prepares the calling thread for one primitive execution: a team of one, its stream, and
/// its scratch buffer of at least `scratch_bytes` (written to *scratch). Primitives run with
/// user-managed scratch memory: with the library's own, threads running the same primitive
/// would share one buffer.
dnnl_status_t csm_dnnl_thread(size_t scratch_bytes, dnnl_stream_t *stream, void **scratch);

/// Primitive attributes asking for user-managed scratch memory (destroy after use).
dnnl_status_t csm_dnnl_user_scratch_attributes(dnnl_primitive_attr_t *attributes);

void omp_set_num_threads(int);

#endif
