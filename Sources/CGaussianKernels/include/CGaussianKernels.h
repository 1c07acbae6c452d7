// The entries of csm's Gaussian random projection (GaussianProjection), generated on the fly:
// Philox-4×32-10 blocks turned into normal numbers by a single-precision Box–Muller transform
// with csm's own polynomial log and sincos. An AVX-512 kernel where the CPU has it, else the
// portable reference; both give the same floats bit for bit. Pure functions, safe on any thread.
#ifndef CSM_CGAUSSIANKERNELS_H
#define CSM_CGAUSSIANKERNELS_H

#include <stdint.h>

/// Writes entries start ..< start + count of row `row` of the projection keyed by `seed`, times
/// `scale`, into out[0 ..< count]. Entry 4b + i of a row comes from Philox block b of key `seed`
/// with counter (low = b, high = row), words (w0, w1, w2, w3): Box–Muller of (w0, w1) gives
/// entries 4b and 4b + 1, of (w2, w3) entries 4b + 2 and 4b + 3. Any start and count give the
/// same values as a full-row fill. Nothing is written when count <= 0.
void csm_gaussian_fill(uint64_t seed, uint64_t row, uint64_t start, long count, float scale, float *out);

/// The same entries by the portable reference code alone (tests check csm_gaussian_fill against it).
void csm_gaussian_fill_reference(uint64_t seed, uint64_t row, uint64_t start, long count, float scale, float *out);

/// For tests: the Box–Muller transform of the word pairs (u[i], v[i]), i < count: with
/// u1 = ((u >> 8) + 1)·2⁻²⁴ in (0, 1] and u2 = (v >> 8)·2⁻²⁴ in [0, 1), cosines[i] =
/// √(−2 ln u1)·cos 2πu2 and sines[i] = √(−2 ln u1)·sin 2πu2, by the reference code when
/// `reference` is nonzero, else by the path csm_gaussian_fill takes.
void csm_gaussian_box_muller(const uint32_t *u, const uint32_t *v, long count, int reference, float *cosines, float *sines);

/// For tests: csm's polynomial ln u1 for u1 = ((u >> 8) + 1)·2⁻²⁴.
float csm_gaussian_log(uint32_t u);

/// For tests: csm's polynomial cos 2πu2 and sin 2πu2 for u2 = (v >> 8)·2⁻²⁴.
void csm_gaussian_sincos(uint32_t v, float *cosine, float *sine);

#endif
