// Debian's OpenBLAS (libopenblas-dev): CBLAS plus the OpenBLAS runtime controls csm uses.
#include <cblas.h>

// OpenBLAS's dynamic-architecture dispatch. csm re-runs it after setting
// OPENBLAS_CORETYPE when the library picked a kernel family below what the CPU supports.
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);
