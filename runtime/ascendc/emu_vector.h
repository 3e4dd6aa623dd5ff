// ascendc-emu: vector compute API, count forms only (docs/ascendc.md §2, §7.6). Included by
// kernel_operator.h.
//
// Numerics: each op widens to float (or a wider int), computes, and rounds the result back to T, so
// half ops round to fp16 after every op. Reductions add pairwise (tree), rounding at every level.
// Exp/Ln/Rsqrt use libm; the hardware uses approximations, so compare with a tolerance.
#ifndef LLMC_ASCENDC_EMU_VECTOR_H
#define LLMC_ASCENDC_EMU_VECTOR_H

namespace AscendC {
namespace emu_detail {

template <typename T> using W = typename ascendc_emu::Wide<T>::type;

template <typename T, typename F>
inline void Unary(const LocalTensor<T> &dst, const LocalTensor<T> &src, uint32_t n, const char *api, F f) {
    dst.EmuWrite(n, api);
    src.EmuRequire(n, api);
    T *d = dst.EmuData();
    const T *s = src.EmuData();
    for (uint32_t i = 0; i < n; ++i) {
        d[i] = static_cast<T>(f(static_cast<W<T>>(s[i])));
    }
    ascendc_emu::NoteVectorOp();
}

template <typename T, typename F>
inline void Binary(const LocalTensor<T> &dst, const LocalTensor<T> &a, const LocalTensor<T> &b, uint32_t n,
                   const char *api, F f) {
    dst.EmuWrite(n, api);
    a.EmuRequire(n, api);
    b.EmuRequire(n, api);
    T *d = dst.EmuData();
    const T *x = a.EmuData();
    const T *y = b.EmuData();
    for (uint32_t i = 0; i < n; ++i) {
        d[i] = static_cast<T>(f(static_cast<W<T>>(x[i]), static_cast<W<T>>(y[i])));
    }
    ascendc_emu::NoteVectorOp();
}

// Pairwise reduction of v[0..n) in place, rounding each partial result to T.
template <typename T> inline float Tree(float *v, uint32_t n, bool is_max) {
    if (n == 0) {
        return 0.0f;
    }
    while (n > 1) {
        const uint32_t half_n = n / 2;
        for (uint32_t i = 0; i < half_n; ++i) {
            const float r = is_max ? (v[2 * i] > v[2 * i + 1] ? v[2 * i] : v[2 * i + 1]) : v[2 * i] + v[2 * i + 1];
            v[i] = static_cast<float>(static_cast<T>(r));
        }
        if (n % 2 == 1) {
            v[half_n] = v[n - 1];
        }
        n = half_n + n % 2;
    }
    return v[0];
}

template <typename T> inline void RequireReduceTmp(const LocalTensor<T> &work, uint32_t n, const char *api) {
    // One partial per 256-byte repeat, rounded up to a 32-byte block.
    const uint32_t per_repeat = ascendc_emu::kRepeatBytes / sizeof(T);
    const uint32_t per_block = ascendc_emu::kBlockBytes / sizeof(T);
    const uint32_t need = ((n + per_repeat - 1) / per_repeat + per_block - 1) / per_block * per_block;
    if (work.GetSize() < need) {
        ascendc_emu::Fail("reduce-tmp", "%s of %u elements needs a work tensor of %u elements, got %u", api, n,
                          need, work.GetSize());
    }
    work.EmuWrite(need, api);
}

}  // namespace emu_detail

// ---- elementwise, two tensors ----
#define ASCENDC_EMU_BINARY(NAME, EXPR)                                                                   \
    template <typename T, bool isSetMask = true>                                                        \
    inline void NAME(const LocalTensor<T> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1, \
                     const int32_t &count) {                                                            \
        ASCENDC_EMU_REQUIRE_MATH(T, #NAME);                                                             \
        emu_detail::Binary(dst, src0, src1, static_cast<uint32_t>(count), #NAME,                        \
                           [](emu_detail::W<T> a, emu_detail::W<T> b) { return EXPR; });                \
    }
ASCENDC_EMU_BINARY(Add, a + b)
ASCENDC_EMU_BINARY(Sub, a - b)
ASCENDC_EMU_BINARY(Mul, a * b)
ASCENDC_EMU_BINARY(Max, a > b ? a : b)
ASCENDC_EMU_BINARY(Min, a < b ? a : b)
#undef ASCENDC_EMU_BINARY

template <typename T, bool isSetMask = true>
inline void Div(const LocalTensor<T> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1,
                const int32_t &count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Div");
    emu_detail::Binary(dst, src0, src1, static_cast<uint32_t>(count), "Div", [](float a, float b) { return a / b; });
}

// ---- elementwise, tensor and scalar (the scalar type must equal T) ----
#define ASCENDC_EMU_SCALAR(NAME, EXPR)                                                                  \
    template <typename T, bool isSetMask = true>                                                        \
    inline void NAME(const LocalTensor<T> &dst, const LocalTensor<T> &src, const T &scalarValue,       \
                     const int32_t &count) {                                                            \
        ASCENDC_EMU_REQUIRE_MATH(T, #NAME);                                                             \
        const emu_detail::W<T> b = static_cast<emu_detail::W<T>>(scalarValue);                          \
        emu_detail::Unary(dst, src, static_cast<uint32_t>(count), #NAME,                                \
                          [b](emu_detail::W<T> a) { return EXPR; });                                    \
    }
ASCENDC_EMU_SCALAR(Adds, a + b)
ASCENDC_EMU_SCALAR(Muls, a * b)
ASCENDC_EMU_SCALAR(Maxs, a > b ? a : b)
ASCENDC_EMU_SCALAR(Mins, a < b ? a : b)
#undef ASCENDC_EMU_SCALAR

// ---- elementwise, one tensor ----
#define ASCENDC_EMU_UNARY(NAME, EXPR)                                                                   \
    template <typename T, bool isSetMask = true>                                                        \
    inline void NAME(const LocalTensor<T> &dst, const LocalTensor<T> &src, const int32_t &count) {     \
        ASCENDC_EMU_REQUIRE_FLOAT(T, #NAME);                                                            \
        emu_detail::Unary(dst, src, static_cast<uint32_t>(count), #NAME, [](float a) { return EXPR; }); \
    }
ASCENDC_EMU_UNARY(Exp, expf(a))
ASCENDC_EMU_UNARY(Ln, logf(a))
ASCENDC_EMU_UNARY(Sqrt, sqrtf(a))
ASCENDC_EMU_UNARY(Rsqrt, 1.0f / sqrtf(a))
ASCENDC_EMU_UNARY(Reciprocal, 1.0f / a)
#undef ASCENDC_EMU_UNARY

template <typename T, bool isSetMask = true>
inline void Abs(const LocalTensor<T> &dst, const LocalTensor<T> &src, const int32_t &count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Abs");
    emu_detail::Unary(dst, src, static_cast<uint32_t>(count), "Abs", [](float a) { return fabsf(a); });
}
template <typename T, bool isSetMask = true>
inline void Relu(const LocalTensor<T> &dst, const LocalTensor<T> &src, const int32_t &count) {
    ASCENDC_EMU_REQUIRE_MATH(T, "Relu");
    emu_detail::Unary(dst, src, static_cast<uint32_t>(count), "Relu",
                      [](emu_detail::W<T> a) { return a > 0 ? a : emu_detail::W<T>(0); });
}

template <typename T>
inline void Duplicate(const LocalTensor<T> &dst, const T &scalarValue, const int32_t &count) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "ascendc-emu: rule dtype: Duplicate takes 16/32-bit types");
    dst.EmuWrite(static_cast<uint32_t>(count), "Duplicate");
    for (int32_t i = 0; i < count; ++i) {
        dst.EmuData()[i] = scalarValue;
    }
    ascendc_emu::NoteVectorOp();
}

// ---- bitwise ----
template <typename T, bool isSetMask = true>
inline void And(const LocalTensor<T> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1,
                const int32_t &count) {
    static_assert(std::is_same<T, int16_t>::value || std::is_same<T, uint16_t>::value,
                  "ascendc-emu: rule dtype: And takes int16_t/uint16_t only");
    emu_detail::Binary(dst, src0, src1, static_cast<uint32_t>(count), "And",
                       [](emu_detail::W<T> a, emu_detail::W<T> b) { return a & b; });
}
template <typename T, bool isSetMask = true>
inline void Or(const LocalTensor<T> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1,
               const int32_t &count) {
    static_assert(std::is_same<T, int16_t>::value || std::is_same<T, uint16_t>::value,
                  "ascendc-emu: rule dtype: Or takes int16_t/uint16_t only");
    emu_detail::Binary(dst, src0, src1, static_cast<uint32_t>(count), "Or",
                       [](emu_detail::W<T> a, emu_detail::W<T> b) { return a | b; });
}

#if ASCENDC_EMU_HAS_SHIFT
template <typename T, bool isSetMask = true>
inline void ShiftRight(const LocalTensor<T> &dst, const LocalTensor<T> &src, const T &scalarValue,
                       const int32_t &count) {
    static_assert(std::is_same<T, int16_t>::value || std::is_same<T, uint16_t>::value ||
                      std::is_same<T, int32_t>::value || std::is_same<T, uint32_t>::value,
                  "ascendc-emu: rule dtype: ShiftRight takes int16/uint16/int32/uint32 only");
    emu_detail::Unary(dst, src, static_cast<uint32_t>(count), "ShiftRight",
                      [scalarValue](emu_detail::W<T> a) { return static_cast<T>(a) >> scalarValue; });
}
template <typename T, bool isSetMask = true>
inline void ShiftLeft(const LocalTensor<T> &dst, const LocalTensor<T> &src, const T &scalarValue,
                      const int32_t &count) {
    static_assert(std::is_same<T, int16_t>::value || std::is_same<T, uint16_t>::value ||
                      std::is_same<T, int32_t>::value || std::is_same<T, uint32_t>::value,
                  "ascendc-emu: rule dtype: ShiftLeft takes int16/uint16/int32/uint32 only");
    emu_detail::Unary(dst, src, static_cast<uint32_t>(count), "ShiftLeft",
                      [scalarValue](emu_detail::W<T> a) { return static_cast<T>(a << scalarValue); });
}
#else
template <typename T, bool isSetMask = true>
inline void ShiftRight(const LocalTensor<T> &, const LocalTensor<T> &, const T &, const int32_t &) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: ShiftRight is not available on the Ascend310P AI Core; "
                  "repack on the host instead");
}
template <typename T, bool isSetMask = true>
inline void ShiftLeft(const LocalTensor<T> &, const LocalTensor<T> &, const T &, const int32_t &) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: ShiftLeft is not available on the Ascend310P AI Core");
}
#endif

// ---- Cast: the pairs each chip's docs list (docs/ascendc.md §2) ----
namespace emu_detail {
template <typename D, typename S> struct CastPair { static constexpr bool value = false; };
#define ASCENDC_EMU_CAST_PAIR(D, S, OK) \
    template <> struct CastPair<D, S> { static constexpr bool value = (OK); };
ASCENDC_EMU_CAST_PAIR(float, half, true)
ASCENDC_EMU_CAST_PAIR(half, float, true)
ASCENDC_EMU_CAST_PAIR(half, int8_t, true)
ASCENDC_EMU_CAST_PAIR(half, uint8_t, true)
ASCENDC_EMU_CAST_PAIR(half, int16_t, true)
ASCENDC_EMU_CAST_PAIR(int16_t, half, true)
ASCENDC_EMU_CAST_PAIR(float, int32_t, true)
ASCENDC_EMU_CAST_PAIR(int32_t, float, true)
ASCENDC_EMU_CAST_PAIR(float, bfloat16_t, ASCENDC_EMU_HAS_BF16)
ASCENDC_EMU_CAST_PAIR(bfloat16_t, float, ASCENDC_EMU_HAS_BF16)
ASCENDC_EMU_CAST_PAIR(half, int4b_t, ASCENDC_EMU_HAS_INT4_CAST)
#undef ASCENDC_EMU_CAST_PAIR

// Directed rounding of x to a 16-bit float format whose RNE conversion is `to`, inverse `from`.
template <typename To, typename From>
inline uint16_t Round16(float x, RoundMode mode, To to, From from) {
    const uint16_t r = to(x);
    const float fr = from(r);
    if (mode == RoundMode::CAST_NONE || mode == RoundMode::CAST_RINT || fr == x || x != x) {
        return r;
    }
    const uint16_t sign = r & 0x8000u;
    const uint16_t mag = r & 0x7FFFu;
    const bool over = fabsf(fr) > fabsf(x);
    const uint16_t low = over ? static_cast<uint16_t>(sign | (mag - 1u)) : r;  // toward zero
    const uint16_t high = over ? r : static_cast<uint16_t>(sign | (mag + 1u)); // away from zero
    switch (mode) {
    case RoundMode::CAST_TRUNC: return low;
    case RoundMode::CAST_FLOOR: return x > 0 ? low : high;
    case RoundMode::CAST_CEIL: return x > 0 ? high : low;
    case RoundMode::CAST_ODD: return (low & 1u) ? low : high;
    case RoundMode::CAST_ROUND: {
        const float mid = 0.5f * (from(low) + from(high));
        return fabsf(x) >= fabsf(mid) ? high : low;
    }
    default: return r;
    }
}

inline float RoundToInt(float x, RoundMode mode) {
    switch (mode) {
    case RoundMode::CAST_FLOOR: return floorf(x);
    case RoundMode::CAST_CEIL: return ceilf(x);
    case RoundMode::CAST_ROUND: return roundf(x);
    case RoundMode::CAST_TRUNC: return truncf(x);
    default: return nearbyintf(x);
    }
}

template <typename D> inline D ConvertOne(float x, RoundMode mode) {
    if constexpr (std::is_same<D, half>::value) {
        half h;
        h.bits = Round16(x, mode, ascendc_emu::FloatToHalfBits, ascendc_emu::HalfBitsToFloat);
        return h;
    } else if constexpr (std::is_same<D, bfloat16_t>::value) {
        bfloat16_t b;
        b.bits = Round16(x, mode, ascendc_emu::FloatToBf16Bits, ascendc_emu::Bf16BitsToFloat);
        return b;
    } else if constexpr (std::is_same<D, float>::value) {
        return x;
    } else {
        const float r = RoundToInt(x, mode);
        const float lo = static_cast<float>(std::numeric_limits<D>::min());
        const float hi = static_cast<float>(std::numeric_limits<D>::max());
        return static_cast<D>(r < lo ? lo : (r > hi ? hi : r));
    }
}
}  // namespace emu_detail

template <typename T, typename U>
inline void Cast(const LocalTensor<T> &dst, const LocalTensor<U> &src, const RoundMode &round_mode,
                 const uint32_t count) {
    static_assert(emu_detail::CastPair<T, U>::value,
                  "ascendc-emu: rule cast-pair: this Cast source/destination pair is not available on the "
                  "selected chip (see docs/ascendc.md §2)");
#if __NPU_ARCH__ == 2002
    if (std::is_same<T, half>::value && std::is_same<U, float>::value && round_mode != RoundMode::CAST_NONE &&
        round_mode != RoundMode::CAST_ODD) {
        ascendc_emu::Fail("cast-mode", "Cast float->half on Ascend310P takes CAST_NONE or CAST_ODD only");
    }
    if (std::is_same<T, int16_t>::value && std::is_same<U, half>::value && round_mode != RoundMode::CAST_RINT) {
        ascendc_emu::Fail("cast-mode", "Cast half->int16 on Ascend310P takes CAST_RINT only");
    }
#endif
    dst.EmuWrite(count, "Cast");
    if constexpr (std::is_same<U, int4b_t>::value) {
        src.EmuRequire((count + 1) / 2, "Cast");
        const uint8_t *s = reinterpret_cast<const uint8_t *>(src.EmuData());
        for (uint32_t i = 0; i < count; ++i) {
            int v = (s[i / 2] >> (4 * (i % 2))) & 0xF;
            dst.EmuData()[i] = static_cast<T>(static_cast<float>(v >= 8 ? v - 16 : v));
        }
    } else {
        src.EmuRequire(count, "Cast");
        for (uint32_t i = 0; i < count; ++i) {
            dst.EmuData()[i] = emu_detail::ConvertOne<T>(static_cast<float>(src.EmuData()[i]), round_mode);
        }
    }
    ascendc_emu::NoteVectorOp();
}

// ---- reductions ----
template <typename T>
inline void ReduceSum(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<T> &work,
                      const int32_t count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "ReduceSum");
    const uint32_t n = static_cast<uint32_t>(count);
    src.EmuRequire(n, "ReduceSum");
    dst.EmuWrite(1, "ReduceSum");
    emu_detail::RequireReduceTmp(work, n, "ReduceSum");
    float *v = ascendc_emu::g_reduce_scratch;
    for (uint32_t i = 0; i < n; ++i) {
        v[i] = static_cast<float>(src.EmuData()[i]);
    }
    dst.EmuData()[0] = static_cast<T>(emu_detail::Tree<T>(v, n, false));
    ascendc_emu::NoteVectorOp();
}

template <typename T>
inline void ReduceMax(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<T> &work,
                      const int32_t count, bool calIndex = false) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "ReduceMax");
    const uint32_t n = static_cast<uint32_t>(count);
    src.EmuRequire(n, "ReduceMax");
    dst.EmuWrite(calIndex ? 2 : 1, "ReduceMax");
    emu_detail::RequireReduceTmp(work, n, "ReduceMax");
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; ++i) {
        if (static_cast<float>(src.EmuData()[i]) > static_cast<float>(src.EmuData()[best])) {
            best = i;
        }
    }
    dst.EmuData()[0] = src.EmuData()[best];
    if (calIndex) {
        memcpy(&dst.EmuData()[1], &best, sizeof(T) < 4 ? sizeof(T) : 4);
    }
    ascendc_emu::NoteVectorOp();
}

namespace emu_detail {
template <typename T>
inline void WholeReduce(const LocalTensor<T> &dst, const LocalTensor<T> &src, int32_t mask, int32_t repeat,
                        int32_t dst_rep_stride, int32_t src_blk_stride, int32_t src_rep_stride, bool is_max,
                        uint32_t out_width, const char *api) {
    const int32_t per_repeat = static_cast<int32_t>(ascendc_emu::kRepeatBytes / sizeof(T));
    const int32_t per_block = static_cast<int32_t>(ascendc_emu::kBlockBytes / sizeof(T));
    if (mask < 1 || mask > per_repeat) {
        ascendc_emu::Fail("repeat-limit", "%s mask %d outside [1, %d]", api, mask, per_repeat);
    }
    if (repeat < 0 || repeat > ascendc_emu::kMaxRepeat) {
        ascendc_emu::Fail("repeat-limit", "%s repeatTimes %d outside [0, 255]", api, repeat);
    }
    if (repeat == 0) {
        return;
    }
    const uint32_t last = static_cast<uint32_t>((repeat - 1) * src_rep_stride * per_block +
                                                ((mask - 1) / per_block) * src_blk_stride * per_block +
                                                (mask - 1) % per_block + 1);
    src.EmuRequire(last, api);
    dst.EmuWrite(static_cast<uint32_t>((repeat - 1) * dst_rep_stride) * out_width + out_width, api);
    float *v = ascendc_emu::g_reduce_scratch;
    for (int32_t r = 0; r < repeat; ++r) {
        const T *base = src.EmuData() + r * src_rep_stride * per_block;
        uint32_t best = 0;
        for (int32_t k = 0; k < mask; ++k) {
            v[k] = static_cast<float>(base[(k / per_block) * src_blk_stride * per_block + k % per_block]);
            if (v[k] > v[best]) {
                best = static_cast<uint32_t>(k);
            }
        }
        T *out = dst.EmuData() + r * dst_rep_stride * static_cast<int32_t>(out_width);
        if (is_max) {
            out[0] = static_cast<T>(v[best]);
            if (out_width == 2) {
                memcpy(&out[1], &best, sizeof(T));
            }
        } else {
            out[0] = static_cast<T>(Tree<T>(v, static_cast<uint32_t>(mask), false));
        }
    }
    ascendc_emu::NoteVectorOp();
}
}  // namespace emu_detail

// One sum per repeat: repeat r reads `mask` elements starting at src + r*srcRepStride blocks and writes
// dst[r*dstRepStride]. CANN 8.0 name (newest asc-devkit: ReduceRepeat).
template <typename T, bool isSetMask = true>
inline void WholeReduceSum(const LocalTensor<T> &dst, const LocalTensor<T> &src, const int32_t mask,
                           const int32_t repeatTimes, const int32_t dstRepStride, const int32_t srcBlkStride,
                           const int32_t srcRepStride) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "WholeReduceSum");
    emu_detail::WholeReduce(dst, src, mask, repeatTimes, dstRepStride, srcBlkStride, srcRepStride, false, 1,
                            "WholeReduceSum");
}

template <typename T, bool isSetMask = true>
inline void WholeReduceMax(const LocalTensor<T> &dst, const LocalTensor<T> &src, const int32_t mask,
                           const int32_t repeatTimes, const int32_t dstRepStride, const int32_t srcBlkStride,
                           const int32_t srcRepStride, ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "WholeReduceMax");
    if (order != ReduceOrder::ORDER_VALUE_INDEX && order != ReduceOrder::ORDER_ONLY_VALUE) {
        ascendc_emu::Fail("dtype", "WholeReduceMax: only ORDER_VALUE_INDEX and ORDER_ONLY_VALUE are emulated");
    }
    emu_detail::WholeReduce(dst, src, mask, repeatTimes, dstRepStride, srcBlkStride, srcRepStride, true,
                            order == ReduceOrder::ORDER_VALUE_INDEX ? 2 : 1, "WholeReduceMax");
}

// ---- compare and select (bit masks, one bit per element) ----
namespace emu_detail {
inline bool CompareOne(float a, float b, CMPMODE mode) {
    switch (mode) {
    case CMPMODE::LT: return a < b;
    case CMPMODE::GT: return a > b;
    case CMPMODE::EQ: return a == b;
    case CMPMODE::LE: return a <= b;
    case CMPMODE::GE: return a >= b;
    default: return a != b;
    }
}
template <typename T> inline void RequireCompareCount(uint32_t n, const char *api) {
    if (n * sizeof(T) % ascendc_emu::kRepeatBytes != 0) {
        ascendc_emu::Fail("compare-count", "%s count %u: count*sizeof(T) must be a multiple of 256 bytes", api, n);
    }
}
}  // namespace emu_detail

template <typename T, typename U>
inline void Compare(const LocalTensor<U> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1,
                    CMPMODE cmpMode, uint32_t count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Compare");
    emu_detail::RequireCompareCount<T>(count, "Compare");
    src0.EmuRequire(count, "Compare");
    src1.EmuRequire(count, "Compare");
    dst.EmuWrite(static_cast<uint32_t>((count / 8 + sizeof(U) - 1) / sizeof(U)), "Compare");
    uint8_t *bits = reinterpret_cast<uint8_t *>(dst.EmuData());
    memset(bits, 0, count / 8);
    for (uint32_t i = 0; i < count; ++i) {
        if (emu_detail::CompareOne(src0.EmuData()[i], src1.EmuData()[i], cmpMode)) {
            bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
        }
    }
    ascendc_emu::NoteVectorOp();
}

template <typename T, typename U>
inline void Compares(const LocalTensor<U> &dst, const LocalTensor<T> &src, const T src1Scalar, CMPMODE cmpMode,
                     uint32_t count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Compares");
    emu_detail::RequireCompareCount<T>(count, "Compares");
    src.EmuRequire(count, "Compares");
    dst.EmuWrite(static_cast<uint32_t>((count / 8 + sizeof(U) - 1) / sizeof(U)), "Compares");
    uint8_t *bits = reinterpret_cast<uint8_t *>(dst.EmuData());
    memset(bits, 0, count / 8);
    for (uint32_t i = 0; i < count; ++i) {
        if (emu_detail::CompareOne(src.EmuData()[i], src1Scalar, cmpMode)) {
            bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
        }
    }
    ascendc_emu::NoteVectorOp();
}

template <typename T, typename U>
inline void Select(const LocalTensor<T> &dst, const LocalTensor<U> &selMask, const LocalTensor<T> &src0,
                   const LocalTensor<T> &src1, SELMODE selMode, uint32_t count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Select");
    if (selMode != SELMODE::VSEL_TENSOR_TENSOR_MODE) {
        ascendc_emu::Fail("dtype", "Select with two tensors needs SELMODE::VSEL_TENSOR_TENSOR_MODE");
    }
    dst.EmuWrite(count, "Select");
    src0.EmuRequire(count, "Select");
    src1.EmuRequire(count, "Select");
    const uint8_t *bits = reinterpret_cast<const uint8_t *>(selMask.EmuData());
    for (uint32_t i = 0; i < count; ++i) {
        dst.EmuData()[i] = ((bits[i / 8] >> (i % 8)) & 1u) ? src0.EmuData()[i] : src1.EmuData()[i];
    }
    ascendc_emu::NoteVectorOp();
}

template <typename T, typename U>
inline void Select(const LocalTensor<T> &dst, const LocalTensor<U> &selMask, const LocalTensor<T> &src0,
                   T src1, SELMODE selMode, uint32_t count) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Select");
    if (selMode != SELMODE::VSEL_TENSOR_SCALAR_MODE) {
        ascendc_emu::Fail("dtype", "Select with a scalar needs SELMODE::VSEL_TENSOR_SCALAR_MODE");
    }
    dst.EmuWrite(count, "Select");
    src0.EmuRequire(count, "Select");
    const uint8_t *bits = reinterpret_cast<const uint8_t *>(selMask.EmuData());
    for (uint32_t i = 0; i < count; ++i) {
        dst.EmuData()[i] = ((bits[i / 8] >> (i % 8)) & 1u) ? src0.EmuData()[i] : src1;
    }
    ascendc_emu::NoteVectorOp();
}

// ---- Gather: dst[i] = *(T *)((uint8_t *)src + srcBaseAddr + offset[i]), offsets in bytes ----
template <typename T>
inline void Gather(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<uint32_t> &srcOffset,
                   const uint32_t srcBaseAddr, const uint32_t count) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "ascendc-emu: rule dtype: Gather takes 16/32-bit types");
    dst.EmuWrite(count, "Gather");
    srcOffset.EmuRequire(count, "Gather");
    const uint64_t src_bytes = static_cast<uint64_t>(src.GetSize()) * sizeof(T);
    for (uint32_t i = 0; i < count; ++i) {
        const uint64_t off = static_cast<uint64_t>(srcBaseAddr) + srcOffset.EmuData()[i];
        if (off % sizeof(T) != 0 || off + sizeof(T) > src_bytes) {
            ascendc_emu::Fail("ub-bounds", "Gather offset %llu bytes outside a %llu-byte source",
                              static_cast<unsigned long long>(off), static_cast<unsigned long long>(src_bytes));
        }
        memcpy(&dst.EmuData()[i], reinterpret_cast<const uint8_t *>(src.EmuData()) + off, sizeof(T));
    }
    ascendc_emu::NoteVectorOp();
}

}  // namespace AscendC

#endif  // LLMC_ASCENDC_EMU_VECTOR_H
