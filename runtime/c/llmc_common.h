/* Shared helpers for llmc's generated C: half/bfloat16 conversions, alignment and restrict.
 *
 * Conversions round to nearest even, as ggml does (F16C hardware when the compiler targets it, ARMv8's
 * fcvt on aarch64, the same result in portable C otherwise), so activations rounded here match
 * llama.cpp bit for bit.
 */
#ifndef LLMC_COMMON_H
#define LLMC_COMMON_H

#include <stdint.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#define LLMC_ALIGN 64

#if defined(__cplusplus)
#define LLMC_RESTRICT __restrict__
#else
#define LLMC_RESTRICT restrict
#endif

#if defined(__GNUC__)
#define LLMC_INLINE static inline __attribute__((always_inline))
#else
#define LLMC_INLINE static inline
#endif

static inline uint32_t llmc_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float llmc_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#if defined(__F16C__)

static inline float llmc_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t llmc_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

#elif defined(__aarch64__)

/* IEEE half is a native type on ARMv8 (fcvt, round to nearest even in the default FPCR mode). */
static inline float llmc_f16_to_f32(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

static inline uint16_t llmc_f32_to_f16(float f) {
    const __fp16 v = (__fp16)f;
    uint16_t h;
    memcpy(&h, &v, sizeof h);
    return h;
}

#else

/* IEEE half -> float, exact (every half is a float). */
static inline float llmc_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) {                     /* inf / nan */
        return llmc_bits_f32(sign | 0x7f800000u | (mant << 13));
    }
    if (exp != 0) {                        /* normal */
        return llmc_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
    }
    if (mant == 0) {
        return llmc_bits_f32(sign);
    }
    /* subnormal half: value = mant * 2^-24, exact in float */
    const float v = (float)mant * 5.9604644775390625e-8f;
    return sign ? -v : v;
}

/* float -> IEEE half, round to nearest even (as F16C with imm 0). */
static inline uint16_t llmc_f32_to_f16(float f) {
    const uint32_t x = llmc_f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {               /* inf / nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    }
    if (ax >= 0x477ff000u) {               /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    }
    if (ax < 0x38800000u) {                /* below the smallest normal half (2^-14) */
        if (ax < 0x33000000u) {            /* < 2^-25: rounds to zero (2^-25 itself ties to 0) */
            return sign;
        }
        const uint32_t e = ax >> 23;       /* 102..112 */
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;    /* 14..24: m >> shift gives the subnormal half mantissa */
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) {
            q++;
        }
        return (uint16_t)(sign | q);
    }
    /* normal: rebias exponent, round 23 -> 10 mantissa bits; a carry may bump the exponent */
    uint32_t r = ax - 0x38000000u;         /* exponent bias 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1);
    return (uint16_t)(sign | (r >> 13));
}

#endif /* __F16C__, __aarch64__ */

static inline float llmc_bf16_to_f32(uint16_t h) { return llmc_bits_f32((uint32_t)h << 16); }

/* float -> bfloat16, round to nearest even; nan stays a quiet nan (as ggml_compute_fp32_to_bf16). */
static inline uint16_t llmc_f32_to_bf16(float f) {
    const uint32_t u = llmc_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 64);
    }
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif /* LLMC_COMMON_H */
