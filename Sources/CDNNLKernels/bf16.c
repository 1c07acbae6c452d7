#include "CDNNLKernels.h"

#include <string.h>
#include <immintrin.h>


static uint16_t round_one(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);  // quiet NaN
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);  // subnormal: ±0, as vcvtneps2bf16 does
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

__attribute__((target("avx512f,avx512bf16")))
static void round_avx512(const float *source, uint16_t *destination, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(source + i));
        _mm256_storeu_si256((__m256i *)(destination + i), (__m256i)packed);
    }
    for (; i < count; i++) destination[i] = round_one(source[i]);
}

void csm_bf16_round_rows(const float *source, long source_stride, uint16_t *destination, long destination_stride,
                         long rows, long columns) {
    static int native = -1;
    if (native < 0) native = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    for (long r = 0; r < rows; r++) {
        const float *from = source + r * source_stride;
        uint16_t *to = destination + r * destination_stride;
        if (native) {
            round_avx512(from, to, columns);
        } else {
            for (long i = 0; i < columns; i++) to[i] = round_one(from[i]);
        }
    }
}
