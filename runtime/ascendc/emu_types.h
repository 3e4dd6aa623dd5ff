// ascendc-emu: scalar types of the AscendC emulation (half, bfloat16_t, int4b_t) and the failure path.
//
// `half` is a soft IEEE fp16: storage is 16 bits, every conversion from float rounds to nearest even.
// Vector ops on half round after every op (emu_vector.h); scalar kernel code computes in float and
// rounds when the result is stored back into a half.
// Included by kernel_operator.h; not meant to be included on its own.
#ifndef LLMC_ASCENDC_EMU_TYPES_H
#define LLMC_ASCENDC_EMU_TYPES_H

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

namespace ascendc_emu {

// ---- failure path: every rule violation prints one line and throws; the launch wrapper catches ----

struct RuleViolation {
    char message[512];
};

struct BlockState {
    const char *kernel = "<unnamed>";
    int64_t block_idx = 0;
    int64_t block_num = 1;
    bool leaked = false;
    char leak[256] = {0};
};

inline thread_local BlockState g_state;

[[noreturn]] inline void Fail(const char *rule, const char *fmt, ...) {
    char detail[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    RuleViolation v;
    snprintf(v.message, sizeof(v.message), "ascendc-emu: kernel %s: rule %s: %s", g_state.kernel, rule, detail);
    fprintf(stderr, "%s\n", v.message);
    throw v;
}

inline void Warn(const char *what, const char *detail) {
    fprintf(stderr, "ascendc-emu: kernel %s: warning %s: %s\n", g_state.kernel, what, detail);
}

// ---- fp16 / bf16 bit conversions (round to nearest even) ----

inline uint16_t FloatToHalfBits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t exp = (x >> 23) & 0xFFu;
    uint32_t mant = x & 0x7FFFFFu;
    if (exp == 0xFFu) {  // inf or nan
        return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0u));
    }
    const int32_t e = static_cast<int32_t>(exp) - 127 + 15;
    if (e >= 31) {
        return static_cast<uint16_t>(sign | 0x7C00u);
    }
    if (e <= 0) {  // subnormal half or zero
        if (e < -10) {
            return static_cast<uint16_t>(sign);
        }
        mant |= 0x800000u;
        const uint32_t shift = static_cast<uint32_t>(14 - e);
        uint32_t h = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u))) {
            ++h;
        }
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) {
        ++h;  // may carry into the exponent, which is the correct rounding (up to inf)
    }
    return static_cast<uint16_t>(sign | h);
}

inline float HalfBitsToFloat(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {
            int32_t e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 0x1F) {
        x = sign | 0x7F800000u | (mant << 13);
    } else {
        x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

inline uint16_t FloatToBf16Bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) {
        return static_cast<uint16_t>((x >> 16) | 0x40u);
    }
    x += 0x7FFFu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
}

inline float Bf16BitsToFloat(uint16_t b) {
    const uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

}  // namespace ascendc_emu

// ---- the scalar types kernels see (global names, as in the real toolkit) ----

struct half {
    uint16_t bits;
    half() = default;
    template <typename U, typename = typename std::enable_if<std::is_arithmetic<U>::value>::type>
    half(U v) : bits(ascendc_emu::FloatToHalfBits(static_cast<float>(v))) {}
    operator float() const { return ascendc_emu::HalfBitsToFloat(bits); }
};

struct bfloat16_t {
    uint16_t bits;
    bfloat16_t() = default;
    template <typename U, typename = typename std::enable_if<std::is_arithmetic<U>::value>::type>
    bfloat16_t(U v) : bits(ascendc_emu::FloatToBf16Bits(static_cast<float>(v))) {}
    operator float() const { return ascendc_emu::Bf16BitsToFloat(bits); }
};

// Storage only: two 4-bit values per byte. No arithmetic is defined on purpose.
struct int4b_t {
    uint8_t storage;
};

#endif  // LLMC_ASCENDC_EMU_TYPES_H
