// Debian's oneDNN (libdnnl-dev): its single-precision GEMM, which csm uses for wide layers.
#include <oneapi/dnnl/dnnl.h>

// libgomp, oneDNN's threading runtime: csm runs one GEMM per core itself, so each calling
// thread asks for a team of one.
void omp_set_num_threads(int);
