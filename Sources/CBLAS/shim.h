// Debian's OpenBLAS (libopenblas-dev): CBLAS plus the OpenBLAS runtime controls csm uses.
#include <cblas.h>

// OpenBLAS's dynamic-architecture dispatch. csm re-runs it after setting
// OPENBLAS_CORETYPE when the library picked a kernel family below what the CPU supports.
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);

// LAPACK's Cholesky factorisation and inverse of a symmetric positive-definite matrix
// (column-major, Fortran calling convention). OpenBLAS carries LAPACK; Debian's
// libopenblas-dev ships no LAPACKE header for it.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
