// ascendc-emu: the few high-level APIs llmc may use, declared per chip. Included by kernel_operator.h.
//
// RmsNorm, SwiGLU and Silu exist on 310P and 910B, not on 310B (docs/ascendc.md §2): on 310B they are
// declared so that any use fails to compile with rule api-availability. llmc's own kernels build these
// from basic ops on every chip; the emulations here only keep the real signatures honest.
#ifndef LLMC_ASCENDC_EMU_HIGHLEVEL_H
#define LLMC_ASCENDC_EMU_HIGHLEVEL_H

namespace AscendC {

// Host-computed tiling of RmsNorm (subset of the fields the real RmsNormTiling carries).
struct RmsNormTiling {
    uint32_t bLength = 0;
    uint32_t sLength = 0;
    uint32_t hLength = 0;
    uint32_t originalHLength = 0;
};

#if ASCENDC_EMU_HAS_NORM_ACT_HIGH_LEVEL

template <typename T, bool isBasicBlock = false>
inline void RmsNorm(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<T> &gamma,
                    const LocalTensor<uint8_t> &sharedTmpBuffer, const T epsilon, const RmsNormTiling &tiling) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "RmsNorm");
    (void)sharedTmpBuffer;
    const uint32_t rows = tiling.bLength * tiling.sLength;
    const uint32_t h = tiling.hLength;
    const uint32_t n = tiling.originalHLength ? tiling.originalHLength : h;
    dst.EmuWrite(rows * h, "RmsNorm");
    src.EmuRequire(rows * h, "RmsNorm");
    gamma.EmuRequire(n, "RmsNorm");
    for (uint32_t r = 0; r < rows; ++r) {
        float ss = 0.0f;
        for (uint32_t i = 0; i < n; ++i) {
            const float x = src.EmuData()[r * h + i];
            ss += x * x;
        }
        const float scale = 1.0f / sqrtf(ss / static_cast<float>(n) + static_cast<float>(epsilon));
        for (uint32_t i = 0; i < n; ++i) {
            dst.EmuData()[r * h + i] = static_cast<T>(static_cast<float>(src.EmuData()[r * h + i]) * scale *
                                                      static_cast<float>(gamma.EmuData()[i]));
        }
    }
    ascendc_emu::NoteVectorOp();
}

// dst = src0 * sigmoid(beta * src0) * src1
template <typename T, bool isReuseSource = false>
inline void SwiGLU(const LocalTensor<T> &dst, const LocalTensor<T> &src0, const LocalTensor<T> &src1,
                   const float &scalarValue, const uint32_t calCount) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "SwiGLU");
    const float beta = scalarValue;
    emu_detail::Binary(dst, src0, src1, calCount, "SwiGLU",
                       [beta](float a, float b) { return a / (1.0f + expf(-beta * a)) * b; });
}

template <typename T, bool isReuseSource = false>
inline void Silu(const LocalTensor<T> &dst, const LocalTensor<T> &src, uint32_t dataSize) {
    ASCENDC_EMU_REQUIRE_FLOAT(T, "Silu");
    emu_detail::Unary(dst, src, dataSize, "Silu", [](float a) { return a / (1.0f + expf(-a)); });
}

#else  // 310B

template <typename T, bool isBasicBlock = false>
inline void RmsNorm(const LocalTensor<T> &, const LocalTensor<T> &, const LocalTensor<T> &,
                    const LocalTensor<uint8_t> &, const T, const RmsNormTiling &) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: the RmsNorm high-level API is not available on "
                  "Ascend310B (__NPU_ARCH__ 3002); build it from Mul/ReduceSum/Rsqrt/Muls");
}
template <typename T, bool isReuseSource = false>
inline void SwiGLU(const LocalTensor<T> &, const LocalTensor<T> &, const LocalTensor<T> &, const float &,
                   const uint32_t) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: the SwiGLU high-level API is not available on "
                  "Ascend310B (__NPU_ARCH__ 3002); build it from Muls/Exp/Adds/Reciprocal/Mul");
}
template <typename T, bool isReuseSource = false>
inline void Silu(const LocalTensor<T> &, const LocalTensor<T> &, uint32_t) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: the Silu high-level API is not available on "
                  "Ascend310B (__NPU_ARCH__ 3002)");
}

#endif

}  // namespace AscendC

#endif  // LLMC_ASCENDC_EMU_HIGHLEVEL_H
