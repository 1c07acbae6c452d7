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

/// One argument of a primitive execution: its oneDNN name, layout and data (NULL: left out).
typedef struct { int argument; const dnnl_memory_desc_t *layout; const void *data; } csm_dnnl_argument;

/// Runs `primitive` on `stream` with up to 5 arguments and its scratch memory.
dnnl_status_t csm_dnnl_run(dnnl_primitive_t primitive, dnnl_stream_t stream, const dnnl_memory_desc_t *scratch_layout, void *scratch,
                           csm_dnnl_argument *arguments, int count);

/// True when oneDNN gave `pd` its slow reference implementation.
int csm_dnnl_is_reference(dnnl_primitive_desc_t pd);

/// Weights laid out as oneDNN's kernels read them: in the layout chosen first, plus a copy in
/// each other layout a shape's kernel turned out to need (oneDNN may have only its reference
/// kernel for some shapes in the first layout). Copies are made once and kept.
typedef struct csm_packed_copy csm_packed_copy;
typedef struct {
    dnnl_memory_desc_t layout;
    void *data;
    csm_packed_copy *copies;
} csm_packed_weights;

/// `source` (in `source_layout`) reordered into `layout`, the weights' first layout.
dnnl_status_t csm_packed_weights_init(csm_packed_weights *weights, const dnnl_memory_desc_t *layout,
                                      const dnnl_memory_desc_t *source_layout, const void *source);

void csm_packed_weights_free(csm_packed_weights *weights);

/// The weights in `layout` (the first layout, or a copy made earlier or now), with that
/// layout's kept descriptor in *kept; NULL with *status set on failure. Not thread-safe: the
/// owner holds its lock.
const void *csm_packed_weights_in(csm_packed_weights *weights, const dnnl_memory_desc_t *layout, const dnnl_memory_desc_t **kept,
                                  dnnl_status_t *status);

#endif
