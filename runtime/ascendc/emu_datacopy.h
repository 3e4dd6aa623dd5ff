// ascendc-emu: GM <-> UB data movement (DataCopy, DataCopyPad). Included by kernel_operator.h.
//
// DataCopy (contiguous): count*sizeof(T) must be a multiple of 32 bytes; the hardware silently rounds
// the copy down, the emulator stops with rule datacopy-align. DataCopyParams counts in 32-byte blocks.
// DataCopyPad (310B, 910B only): blockLen and the GM-side stride count bytes, the UB-side stride counts
// 32-byte blocks, and each UB row starts on a 32-byte boundary.
#ifndef LLMC_ASCENDC_EMU_DATACOPY_H
#define LLMC_ASCENDC_EMU_DATACOPY_H

namespace AscendC {

struct DataCopyParams {
    DataCopyParams() = default;
    DataCopyParams(uint16_t count, uint16_t len, uint16_t src_stride, uint16_t dst_stride)
        : blockCount(count), blockLen(len), srcStride(src_stride), dstStride(dst_stride) {}
    uint16_t blockCount = 1;
    uint16_t blockLen = 0;   // 32-byte blocks
    uint16_t srcStride = 0;  // 32-byte blocks between blocks at the source
    uint16_t dstStride = 0;  // 32-byte blocks between blocks at the destination
};

struct DataCopyExtParams {
    DataCopyExtParams() = default;
    DataCopyExtParams(uint16_t count, uint32_t len, uint32_t src_stride, uint32_t dst_stride, uint32_t reserved)
        : blockCount(count), blockLen(len), srcStride(src_stride), dstStride(dst_stride), rsv(reserved) {}
    uint16_t blockCount = 1;
    uint32_t blockLen = 0;   // bytes
    uint32_t srcStride = 0;  // GM side: bytes; UB side: 32-byte blocks
    uint32_t dstStride = 0;  // GM side: bytes; UB side: 32-byte blocks
    uint32_t rsv = 0;
};

template <typename T> struct DataCopyPadExtParams {
    DataCopyPadExtParams() = default;
    DataCopyPadExtParams(bool is_pad, uint8_t left, uint8_t right, T value)
        : isPad(is_pad), leftPadding(left), rightPadding(right), paddingValue(value) {}
    bool isPad = false;
    uint8_t leftPadding = 0;
    uint8_t rightPadding = 0;
    T paddingValue = T();
};

namespace emu_detail {
template <typename T> inline void RequireAlignedCount(uint32_t count, const char *api) {
    const uint64_t bytes = static_cast<uint64_t>(count) * sizeof(T);
    if (bytes % ascendc_emu::kBlockBytes != 0) {
        ascendc_emu::Fail("datacopy-align",
                          "%s of %u elements = %llu bytes is not a multiple of 32 (the hardware would copy "
                          "only %llu bytes); use DataCopyPad or pad on the host",
                          api, count, static_cast<unsigned long long>(bytes),
                          static_cast<unsigned long long>(bytes / 32 * 32));
    }
}
}  // namespace emu_detail

// GM -> UB, contiguous.
template <typename T>
inline void DataCopy(const LocalTensor<T> &dst, const GlobalTensor<T> &src, const uint32_t count) {
    emu_detail::RequireAlignedCount<T>(count, "DataCopy(GM->UB)");
    dst.EmuWrite(count, "DataCopy(GM->UB)", ascendc_emu::kPipeMte2);
    src.EmuRequire(count, "DataCopy(GM->UB)");
    ascendc_emu::NoteGmRead(src.GetPhyAddr(), static_cast<uint64_t>(count) * sizeof(T), ascendc_emu::g_state.block_idx,
                            "DataCopy(GM->UB)");
    memcpy(dst.EmuData(), src.GetPhyAddr(), static_cast<size_t>(count) * sizeof(T));
}

// UB -> GM, contiguous.
template <typename T>
inline void DataCopy(const GlobalTensor<T> &dst, const LocalTensor<T> &src, const uint32_t count) {
    emu_detail::RequireAlignedCount<T>(count, "DataCopy(UB->GM)");
    src.EmuRequire(count, "DataCopy(UB->GM)", ascendc_emu::kPipeMte3);
    dst.EmuRequire(count, "DataCopy(UB->GM)");
    ascendc_emu::NoteGmWrite(dst.GetPhyAddr(), static_cast<uint64_t>(count) * sizeof(T),
                             ascendc_emu::g_state.block_idx, "DataCopy(UB->GM)");
    memcpy(dst.GetPhyAddr(), src.EmuData(), static_cast<size_t>(count) * sizeof(T));
}

// GM -> UB, strided in 32-byte blocks.
template <typename T>
inline void DataCopy(const LocalTensor<T> &dst, const GlobalTensor<T> &src, const DataCopyParams &p) {
    const uint64_t per = 32 / sizeof(T);
    const uint64_t src_end = ((p.blockCount - 1ull) * (p.blockLen + p.srcStride) + p.blockLen) * per;
    const uint64_t dst_end = ((p.blockCount - 1ull) * (p.blockLen + p.dstStride) + p.blockLen) * per;
    dst.EmuWrite(static_cast<uint32_t>(dst_end), "DataCopy(GM->UB, DataCopyParams)", ascendc_emu::kPipeMte2);
    src.EmuRequire(src_end, "DataCopy(GM->UB, DataCopyParams)");
    for (uint32_t i = 0; i < p.blockCount; ++i) {
        ascendc_emu::NoteGmRead(reinterpret_cast<const uint8_t *>(src.GetPhyAddr()) + i * (p.blockLen + p.srcStride) * 32ull,
                                p.blockLen * 32u, ascendc_emu::g_state.block_idx, "DataCopy(GM->UB, DataCopyParams)");
        memcpy(reinterpret_cast<uint8_t *>(dst.EmuData()) + i * (p.blockLen + p.dstStride) * 32u,
               reinterpret_cast<const uint8_t *>(src.GetPhyAddr()) + i * (p.blockLen + p.srcStride) * 32ull,
               p.blockLen * 32u);
    }
}

// UB -> GM, strided in 32-byte blocks.
template <typename T>
inline void DataCopy(const GlobalTensor<T> &dst, const LocalTensor<T> &src, const DataCopyParams &p) {
    const uint64_t per = 32 / sizeof(T);
    const uint64_t src_end = ((p.blockCount - 1ull) * (p.blockLen + p.srcStride) + p.blockLen) * per;
    const uint64_t dst_end = ((p.blockCount - 1ull) * (p.blockLen + p.dstStride) + p.blockLen) * per;
    src.EmuRequire(static_cast<uint32_t>(src_end), "DataCopy(UB->GM, DataCopyParams)", ascendc_emu::kPipeMte3);
    dst.EmuRequire(dst_end, "DataCopy(UB->GM, DataCopyParams)");
    for (uint32_t i = 0; i < p.blockCount; ++i) {
        ascendc_emu::NoteGmWrite(reinterpret_cast<uint8_t *>(dst.GetPhyAddr()) + i * (p.blockLen + p.dstStride) * 32ull,
                                 p.blockLen * 32u, ascendc_emu::g_state.block_idx, "DataCopy(UB->GM, DataCopyParams)");
        memcpy(reinterpret_cast<uint8_t *>(dst.GetPhyAddr()) + i * (p.blockLen + p.dstStride) * 32ull,
               reinterpret_cast<const uint8_t *>(src.EmuData()) + i * (p.blockLen + p.srcStride) * 32u,
               p.blockLen * 32u);
    }
}

#if ASCENDC_EMU_HAS_DATA_COPY_PAD

// GM -> UB, byte-granular rows; each row lands on a 32-byte boundary in UB.
template <typename T>
inline void DataCopyPad(const LocalTensor<T> &dst, const GlobalTensor<T> &src, const DataCopyExtParams &p,
                        const DataCopyPadExtParams<T> &pad) {
    if (p.blockLen % sizeof(T) != 0 || pad.leftPadding != 0) {
        ascendc_emu::Fail("datacopy-align", "DataCopyPad blockLen %u must be whole elements (leftPadding "
                          "is not emulated)", p.blockLen);
    }
    const uint32_t row_ub = (p.blockLen + 31u) / 32u * 32u + p.dstStride * 32u;
    const uint64_t gm_bytes = (p.blockCount - 1ull) * (p.blockLen + p.srcStride) + p.blockLen;
    dst.EmuWrite(static_cast<uint32_t>(((p.blockCount - 1u) * row_ub + (p.blockLen + 31u) / 32u * 32u) /
                                       sizeof(T)), "DataCopyPad(GM->UB)", ascendc_emu::kPipeMte2);
    src.EmuRequire(gm_bytes / sizeof(T), "DataCopyPad(GM->UB)");
    for (uint32_t i = 0; i < p.blockCount; ++i) {
        ascendc_emu::NoteGmRead(reinterpret_cast<const uint8_t *>(src.GetPhyAddr()) + i * (p.blockLen + p.srcStride),
                                p.blockLen, ascendc_emu::g_state.block_idx, "DataCopyPad(GM->UB)");
        uint8_t *row = reinterpret_cast<uint8_t *>(dst.EmuData()) + i * row_ub;
        memcpy(row, reinterpret_cast<const uint8_t *>(src.GetPhyAddr()) + i * (p.blockLen + p.srcStride),
               p.blockLen);
        const uint32_t tail = (p.blockLen + 31u) / 32u * 32u - p.blockLen;
        if (pad.isPad) {
            for (uint32_t k = 0; k < tail / sizeof(T); ++k) {
                memcpy(row + p.blockLen + k * sizeof(T), &pad.paddingValue, sizeof(T));
            }
        } else {
            memset(row + p.blockLen, 0xFF, tail);  // undefined on hardware: garbage here
        }
    }
}

// UB -> GM, byte-granular rows read from 32-byte aligned UB rows.
template <typename T>
inline void DataCopyPad(const GlobalTensor<T> &dst, const LocalTensor<T> &src, const DataCopyExtParams &p) {
    if (p.blockLen % sizeof(T) != 0) {
        ascendc_emu::Fail("datacopy-align", "DataCopyPad blockLen %u must be whole elements", p.blockLen);
    }
    const uint32_t row_ub = (p.blockLen + 31u) / 32u * 32u + p.srcStride * 32u;
    const uint64_t gm_bytes = (p.blockCount - 1ull) * (p.blockLen + p.dstStride) + p.blockLen;
    src.EmuRequire(static_cast<uint32_t>(((p.blockCount - 1u) * row_ub + p.blockLen) / sizeof(T)),
                   "DataCopyPad(UB->GM)", ascendc_emu::kPipeMte3);
    dst.EmuRequire(gm_bytes / sizeof(T), "DataCopyPad(UB->GM)");
    for (uint32_t i = 0; i < p.blockCount; ++i) {
        ascendc_emu::NoteGmWrite(reinterpret_cast<uint8_t *>(dst.GetPhyAddr()) + i * (p.blockLen + p.dstStride),
                                 p.blockLen, ascendc_emu::g_state.block_idx, "DataCopyPad(UB->GM)");
        memcpy(reinterpret_cast<uint8_t *>(dst.GetPhyAddr()) + i * (p.blockLen + p.dstStride),
               reinterpret_cast<const uint8_t *>(src.EmuData()) + i * row_ub, p.blockLen);
    }
}

#else  // 310P: the API does not exist on this chip

template <typename T>
inline void DataCopyPad(const LocalTensor<T> &, const GlobalTensor<T> &, const DataCopyExtParams &,
                        const DataCopyPadExtParams<T> &) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: DataCopyPad is not available on Ascend310P "
                  "(__NPU_ARCH__ 2002); pad on the host or use aligned tiles");
}
template <typename T>
inline void DataCopyPad(const GlobalTensor<T> &, const LocalTensor<T> &, const DataCopyExtParams &) {
    static_assert(ascendc_emu::AlwaysFalse<T>::value,
                  "ascendc-emu: rule api-availability: DataCopyPad is not available on Ascend310P "
                  "(__NPU_ARCH__ 2002); pad on the host or use aligned tiles");
}

#endif

}  // namespace AscendC

#endif  // LLMC_ASCENDC_EMU_DATACOPY_H
