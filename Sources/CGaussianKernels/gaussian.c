// The entries of csm's Gaussian random projection: Philox-4×32-10 words → Box–Muller normals.
// Each kernel sits beside its reference. The reference is plain C; the AVX-512 kernel does the
// same operations in the same order on 16 Philox blocks at a time, and both use only exactly
// rounded operations (+, ×, fma, √, exact integer steps), so they agree bit for bit.
#include "CGaussianKernels.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// a·b + c must stay two roundings wherever the code writes it so: both paths must match.
#pragma STDC FP_CONTRACT OFF

// Philox-4×32-10 (Salmon et al., SC'11): multipliers and key increments (Weyl constants).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// ln(1 + t) = t − t²/2 + t³·P(t) on t in [√½ − 1, √2 − 1], P of degree 8 (Cephes' logf
// coefficients), and ln 2 = LN2_HI + LN2_LO with LN2_HI short enough that e·LN2_HI is exact.
static const float LOG_P[9] = {3.3333331174E-1f, -2.4999993993E-1f, 2.0000714765E-1f, -1.6668057665E-1f, 1.4249322787E-1f,
                               -1.2420140846E-1f, 1.1676998740E-1f, -1.1514610310E-1f, 7.0376836292E-2f};
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440E-4f
#define SQRT_HALF_BITS 0x3F3504F3  // the float bits of √½

// sin(π/4·t) = t·(SIN_1_HI + SIN_1_LO + t²·(SIN_3 + …)) and cos(π/4·t) = 1 + t²·(COS_2 + …) on
// t in [−1, 1]: Taylor coefficients (π/4)^k / k! rounded to float; the next terms are below
// 2⁻²⁸. π/4 is split in two so that the leading term keeps full precision.
#define SIN_1_HI 0x1.921fb6p-1f
#define SIN_1_LO -0x1.777a5cp-26f
static const float SIN_P[4] = {-0x1.4abbcep-4f, 0x1.466bc6p-9f, -0x1.32d2ccp-15f, 0x1.507834p-22f};  // t³ … t⁹
static const float COS_P[5] = {-0x1.3bd3ccp-2f, 0x1.03c1f0p-6f, -0x1.55d3c8p-12f, 0x1.e1f506p-19f, -0x1.a6d1f2p-26f};  // t² … t¹⁰

// MARK: - Reference

// Words (c0, c1, c2, c3) of Philox block (counter_low, counter_high) under key `seed`.
static void philox(uint64_t seed, uint64_t counter_low, uint64_t counter_high, uint32_t words[4]) {
    uint32_t c0 = (uint32_t)counter_low, c1 = (uint32_t)(counter_low >> 32);
    uint32_t c2 = (uint32_t)counter_high, c3 = (uint32_t)(counter_high >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t next0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, next2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = next0;
        c2 = next2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    words[0] = c0, words[1] = c1, words[2] = c2, words[3] = c3;
}

// u1 = 2^e·f with f in [√½, √2) (integer steps on the float bits), t = f − 1 (exact), then
// ln u1 = e·ln 2 + ln(1 + t).
float csm_gaussian_log(uint32_t u) {
    float x = (float)(int32_t)((u >> 8) + 1) * 0x1p-24f;  // exact: at most 2²⁴
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = (int32_t)(bits - SQRT_HALF_BITS) >> 23;
    bits -= (uint32_t)e << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    float t = f - 1.0f, z = t * t, exponent = (float)e;
    float p = LOG_P[8];
    for (int i = 7; i >= 0; i--) p = fmaf(p, t, LOG_P[i]);
    float y = (z * t) * p;
    y = fmaf(exponent, LN2_LO, y);
    y = fmaf(-0.5f, z, y);
    return fmaf(exponent, LN2_HI, t + y);
}

// The angle 2π·n·2⁻²⁴ (n = v >> 8) is q·π/2 + π/4·t with quadrant q = round(n / 2²²) and
// t = (n − q·2²²) / 2²¹ in [−1, 1]: the range reduction is exact integer arithmetic.
void csm_gaussian_sincos(uint32_t v, float *cosine, float *sine) {
    int32_t n = (int32_t)(v >> 8), q = (n + (1 << 21)) >> 22;
    float t = (float)(n - (q << 22)) * 0x1p-21f, z = t * t;
    float s = SIN_P[3], c = COS_P[4];
    for (int i = 2; i >= 0; i--) s = fmaf(s, z, SIN_P[i]);
    for (int i = 3; i >= 0; i--) c = fmaf(c, z, COS_P[i]);
    s = fmaf(s, z, SIN_1_LO);
    s = fmaf(t, SIN_1_HI, t * s);
    c = fmaf(c, z, 1.0f);
    // Rotate by q quarter turns: (cos, sin) → (−sin, cos) per quarter.
    if (q & 1) {
        float swap = c;
        c = s, s = swap;
    }
    if ((q + 1) & 2) c = -c;
    if (q & 2) s = -s;
    *cosine = c, *sine = s;
}

static void box_muller(uint32_t u, uint32_t v, float *x, float *y) {
    float radius = sqrtf(-2.0f * csm_gaussian_log(u)), c, s;
    csm_gaussian_sincos(v, &c, &s);
    *x = radius * c, *y = radius * s;
}

// Where the CPU lacks AVX-512 the reference is the fast path: on x86-64 (ELF, where the loader
// picks among clones) it is also compiled for CPUs with FMA, so that fmaf is one instruction.
#if defined(__x86_64__) && defined(__ELF__)
__attribute__((target_clones("fma", "default")))
#endif
void csm_gaussian_fill_reference(uint64_t seed, uint64_t row, uint64_t start, long count, float scale, float *out) {
    if (count <= 0) return;
    uint64_t end = start + (uint64_t)count;
    for (uint64_t block = start / 4; 4 * block < end; block++) {
        uint32_t w[4];
        float values[4];
        philox(seed, block, row, w);
        box_muller(w[0], w[1], &values[0], &values[1]);
        box_muller(w[2], w[3], &values[2], &values[3]);
        for (uint64_t column = 4 * block; column < 4 * block + 4; column++)
            if (column >= start && column < end) out[column - start] = values[column % 4] * scale;
    }
}

// MARK: - AVX-512: 16 blocks (64 entries) at a time, lane i holding block b + i

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))

// The 64-bit products x·m of the 16 lanes, as low and high words: _mm512_mul_epu32 multiplies
// the even lanes; the odd lanes are shifted down to be multiplied.
AVX512 static inline void multiply(__m512i x, __m512i m, __m512i *low, __m512i *high) {
    __m512i even = _mm512_mul_epu32(x, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), m);
    *low = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

AVX512 static inline void philox16(uint64_t seed, __m512i *c0, __m512i *c1, __m512i *c2, __m512i *c3) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    for (int round = 0; round < 10; round++) {
        __m512i low0, high0, low1, high1;
        multiply(*c0, m0, &low0, &high0);
        multiply(*c2, m1, &low1, &high1);
        *c0 = _mm512_xor_si512(_mm512_xor_si512(high1, *c1), _mm512_set1_epi32((int)k0));
        *c2 = _mm512_xor_si512(_mm512_xor_si512(high0, *c3), _mm512_set1_epi32((int)k1));
        *c1 = low1;
        *c3 = low0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

AVX512 static inline __m512 log16(__m512i u) {
    __m512i m = _mm512_add_epi32(_mm512_srli_epi32(u, 8), _mm512_set1_epi32(1));
    __m512i bits = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(0x1p-24f)));
    __m512i e = _mm512_srai_epi32(_mm512_sub_epi32(bits, _mm512_set1_epi32(SQRT_HALF_BITS)), 23);
    bits = _mm512_sub_epi32(bits, _mm512_slli_epi32(e, 23));
    __m512 t = _mm512_sub_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(1.0f)), z = _mm512_mul_ps(t, t);
    __m512 exponent = _mm512_cvtepi32_ps(e), p = _mm512_set1_ps(LOG_P[8]);
    for (int i = 7; i >= 0; i--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LOG_P[i]));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(z, t), p);
    y = _mm512_fmadd_ps(exponent, _mm512_set1_ps(LN2_LO), y);
    y = _mm512_fmadd_ps(_mm512_set1_ps(-0.5f), z, y);
    return _mm512_fmadd_ps(exponent, _mm512_set1_ps(LN2_HI), _mm512_add_ps(t, y));
}

AVX512 static inline void sincos16(__m512i v, __m512 *cosine, __m512 *sine) {
    __m512i n = _mm512_srli_epi32(v, 8), q = _mm512_srai_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(1 << 21)), 22);
    __m512i r = _mm512_sub_epi32(n, _mm512_slli_epi32(q, 22));
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(r), _mm512_set1_ps(0x1p-21f)), z = _mm512_mul_ps(t, t);
    __m512 s = _mm512_set1_ps(SIN_P[3]), c = _mm512_set1_ps(COS_P[4]);
    for (int i = 2; i >= 0; i--) s = _mm512_fmadd_ps(s, z, _mm512_set1_ps(SIN_P[i]));
    for (int i = 3; i >= 0; i--) c = _mm512_fmadd_ps(c, z, _mm512_set1_ps(COS_P[i]));
    s = _mm512_fmadd_ps(s, z, _mm512_set1_ps(SIN_1_LO));
    s = _mm512_fmadd_ps(t, _mm512_set1_ps(SIN_1_HI), _mm512_mul_ps(t, s));
    c = _mm512_fmadd_ps(c, z, _mm512_set1_ps(1.0f));
    __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    __mmask16 negate_cosine = _mm512_test_epi32_mask(_mm512_add_epi32(q, _mm512_set1_epi32(1)), _mm512_set1_epi32(2));
    __mmask16 negate_sine = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));
    __m512 swapped_cosine = _mm512_mask_blend_ps(odd, c, s), swapped_sine = _mm512_mask_blend_ps(odd, s, c);
    const __m512 sign = _mm512_set1_ps(-0.0f);
    *cosine = _mm512_mask_xor_ps(swapped_cosine, negate_cosine, swapped_cosine, sign);
    *sine = _mm512_mask_xor_ps(swapped_sine, negate_sine, swapped_sine, sign);
}

AVX512 static inline void box_muller16(__m512i u, __m512i v, __m512 *x, __m512 *y) {
    __m512 radius = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), log16(u))), c, s;
    sincos16(v, &c, &s);
    *x = _mm512_mul_ps(radius, c), *y = _mm512_mul_ps(radius, s);
}

AVX512 static void fill_avx512(uint64_t seed, uint64_t row, uint64_t start, long count, float scale, float *out) {
    const uint64_t end = start + (uint64_t)count;
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Interleave (x0, x1) lane by lane, then (x0 x1, x2 x3) pair by pair: entry 4i + j = x_j[i].
    const __m512i pairs_low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i pairs_high = _mm512_add_epi32(pairs_low, _mm512_set1_epi32(8));
    const __m512i quads_low = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i quads_high = _mm512_add_epi64(quads_low, _mm512_set1_epi64(4));
    const __m512 factor = _mm512_set1_ps(scale);
    for (uint64_t block = start / 4; 4 * block < end; block += 16) {
        // Counter low = block + lane (a carry may reach its high word), high = row.
        __m512i base = _mm512_set1_epi32((int)(uint32_t)block);
        __m512i c0 = _mm512_add_epi32(base, lanes), c1 = _mm512_set1_epi32((int)(uint32_t)(block >> 32));
        c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, base), c1, _mm512_set1_epi32(1));
        __m512i c2 = _mm512_set1_epi32((int)(uint32_t)row), c3 = _mm512_set1_epi32((int)(uint32_t)(row >> 32));
        philox16(seed, &c0, &c1, &c2, &c3);
        __m512 x0, x1, x2, x3;
        box_muller16(c0, c1, &x0, &x1);
        box_muller16(c2, c3, &x2, &x3);
        x0 = _mm512_mul_ps(x0, factor), x1 = _mm512_mul_ps(x1, factor);
        x2 = _mm512_mul_ps(x2, factor), x3 = _mm512_mul_ps(x3, factor);
        __m512d p01_low = _mm512_castps_pd(_mm512_permutex2var_ps(x0, pairs_low, x1));
        __m512d p01_high = _mm512_castps_pd(_mm512_permutex2var_ps(x0, pairs_high, x1));
        __m512d p23_low = _mm512_castps_pd(_mm512_permutex2var_ps(x2, pairs_low, x3));
        __m512d p23_high = _mm512_castps_pd(_mm512_permutex2var_ps(x2, pairs_high, x3));
        __m512 entries[4] = {
            _mm512_castpd_ps(_mm512_permutex2var_pd(p01_low, quads_low, p23_low)),
            _mm512_castpd_ps(_mm512_permutex2var_pd(p01_low, quads_high, p23_low)),
            _mm512_castpd_ps(_mm512_permutex2var_pd(p01_high, quads_low, p23_high)),
            _mm512_castpd_ps(_mm512_permutex2var_pd(p01_high, quads_high, p23_high)),
        };
        uint64_t first = 4 * block;
        if (first >= start && first + 64 <= end) {
            for (int i = 0; i < 4; i++) _mm512_storeu_ps(out + (first - start) + 16 * i, entries[i]);
        } else {
            float group[64];
            for (int i = 0; i < 4; i++) _mm512_storeu_ps(group + 16 * i, entries[i]);
            for (uint64_t column = first; column < first + 64; column++)
                if (column >= start && column < end) out[column - start] = group[column - first];
        }
    }
}

AVX512 static void box_muller_avx512(const uint32_t *u, const uint32_t *v, long count, float *cosines, float *sines) {
    for (long i = 0; i < count; i += 16) {
        __mmask16 mask = count - i >= 16 ? 0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        __m512 x, y;
        box_muller16(_mm512_maskz_loadu_epi32(mask, u + i), _mm512_maskz_loadu_epi32(mask, v + i), &x, &y);
        _mm512_mask_storeu_ps(cosines + i, mask, x);
        _mm512_mask_storeu_ps(sines + i, mask, y);
    }
}

static int has_avx512(void) { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"); }
#endif

// MARK: - Entry points

void csm_gaussian_fill(uint64_t seed, uint64_t row, uint64_t start, long count, float scale, float *out) {
    if (count <= 0) return;
#if defined(__x86_64__)
    if (has_avx512()) {
        fill_avx512(seed, row, start, count, scale, out);
        return;
    }
#endif
    csm_gaussian_fill_reference(seed, row, start, count, scale, out);
}

void csm_gaussian_box_muller(const uint32_t *u, const uint32_t *v, long count, int reference, float *cosines, float *sines) {
#if defined(__x86_64__)
    if (!reference && has_avx512()) {
        box_muller_avx512(u, v, count, cosines, sines);
        return;
    }
#endif
    for (long i = 0; i < count; i++) box_muller(u[i], v[i], &cosines[i], &sines[i]);
}
