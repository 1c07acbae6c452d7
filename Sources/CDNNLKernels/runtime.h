// What every oneDNN call in this target shares: one engine for the process, and per calling
// thread one stream, one scratch buffer and a team of one (csm runs one call per core itself).
#ifndef CSM_DNNL_RUNTIME_H
#define CSM_DNNL_RUNTIME_H

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
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

/// The primitive descriptor of operation `description` on the process's engine, with
/// user-managed scratch memory (`hint`: the forward descriptor of a backward operation, or NULL).
dnnl_status_t csm_dnnl_primitive_desc(dnnl_primitive_desc_t *pd, const_dnnl_op_desc_t description, const_dnnl_primitive_desc_t hint);

void omp_set_num_threads(int);

/// One argument of a primitive execution: its oneDNN name, layout and data (NULL: left out).
typedef struct { int argument; const dnnl_memory_desc_t *layout; const void *data; } csm_dnnl_argument;

/// Runs `primitive` on `stream` with up to 5 arguments and its scratch memory.
dnnl_status_t csm_dnnl_run(dnnl_primitive_t primitive, dnnl_stream_t stream, const dnnl_memory_desc_t *scratch_layout, void *scratch,
                           csm_dnnl_argument *arguments, int count);

/// True when oneDNN gave `pd` its slow reference implementation.
int csm_dnnl_is_reference(dnnl_primitive_desc_t pd);

/// Up to this many numbers tell one geometry of a primitive from another (unused ones 0).
#define CSM_SHAPE_KEY 5

/// Makes the primitive descriptor of `owner`'s operation for geometry `key`, its weights in
/// layout `weights` (`any` to let oneDNN choose).
typedef dnnl_status_t (*csm_descriptor_maker)(const void *owner, const long *key, const dnnl_memory_desc_t *weights,
                                              dnnl_primitive_desc_t *pd);

/// One geometry's primitive and what running it needs.
typedef struct csm_shape {
    long key[CSM_SHAPE_KEY];
    dnnl_memory_desc_t source, destination, bias, scratch;
    const dnnl_memory_desc_t *weights_layout;  // the weights' first layout or a copy's
    const void *weights;
    dnnl_primitive_t primitive;
    struct csm_shape *next;
} csm_shape;

/// bf16 weights laid out once as oneDNN's kernels read them, and the primitives that share
/// them, one per geometry, made on first use and kept (under the lock). The layout is the
/// one oneDNN prefers at a typical geometry; a geometry for which oneDNN has only its slow
/// reference kernel in that layout gets the layout oneDNN prefers for it, with the weights
/// copied into it once (it happens on some CPUs, e.g. for small images).
typedef struct {
    dnnl_memory_desc_t layout;
    void *data;
    struct weights_copy *copies;
    csm_shape *shapes;
    int dimensions;
    dnnl_dims_t dims;
    csm_descriptor_maker maker;
    const void *owner;
    pthread_mutex_t lock;
} csm_shared_weights;

/// Rounds `values` (fp32, dense in `plain_tag` order, dims `dims`) to bf16 in the layout
/// oneDNN prefers at geometry `typical`.
dnnl_status_t csm_shared_weights_init(csm_shared_weights *weights, int dimensions, const dnnl_dims_t dims, dnnl_format_tag_t plain_tag,
                                      const float *values, csm_descriptor_maker maker, const void *owner, const long *typical);

void csm_shared_weights_free(csm_shared_weights *weights);

/// The primitive for geometry `key` (made now if new); NULL with *status set on failure.
const csm_shape *csm_shared_weights_shape(csm_shared_weights *weights, const long key[CSM_SHAPE_KEY], dnnl_status_t *status);

#endif
