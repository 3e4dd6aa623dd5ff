// ascendc-emu: a CPU emulation of the AscendC API subset llmc emits (docs/ascendc.md §7).
//
// Kernels written for the real toolkit (`#include "kernel_operator.h"`, namespace AscendC, CANN 8.0
// names) compile with g++ against this header and run on the CPU, one block after the other.
// The chip is chosen with -D__NPU_ARCH__=3002 (310B), 2002 (310P) or 2201 (910B).
//
// Unlike the hardware, the emulator refuses what the hardware would silently get wrong. Every rule
// violation prints `ascendc-emu: kernel <name>: rule <rule>: <detail>` and throws; the launch wrapper
// (ascendc_emu::Launch) turns that into an error code and message. Rules:
//   ub-budget        sum of InitBuffer sizes above the chip's usable UB
//   ub-align         UB buffer size or tensor address not a multiple of 32 bytes
//   datacopy-align   DataCopy of count*sizeof(T) bytes not a multiple of 32 (hardware rounds down)
//   ub-bounds / gm-bounds   access outside a LocalTensor / GlobalTensor
//   deque-empty, enque-depth, alloc-exhausted, double-free, free-enqueued, queue-leak
//   repeat-limit, reduce-tmp, cast-mode, compare-count, launch
// Chip availability (api-availability, cast-pair) and dtype rules (bf16-math, dtype) fail at compile
// time through static_assert messages that carry the same "ascendc-emu: rule <rule>" prefix.
#ifndef LLMC_ASCENDC_EMU_KERNEL_OPERATOR_H
#define LLMC_ASCENDC_EMU_KERNEL_OPERATOR_H

#include <cmath>
#include <cstdlib>
#include <limits>

#include "emu_types.h"

// A generated model artifact names its chip in ascendc_chip.h next to its kernels (its build passes no -D).
#if !defined(__NPU_ARCH__) && __has_include("ascendc_chip.h")
#include "ascendc_chip.h"
#endif
#ifndef __NPU_ARCH__
#error "ascendc-emu: define __NPU_ARCH__ (3002 = Ascend 310B, 2002 = Ascend 310P, 2201 = Ascend 910B)"
#endif

// ---- per-chip facts (hicann/runtime platform .ini + AscendC TOTAL_UB_SIZE, see docs/ascendc.md §4) ----
#if __NPU_ARCH__ == 3002
#define ASCENDC_EMU_CHIP "Ascend310B"
#define ASCENDC_EMU_UB_BYTES (248u * 1024u)
#define ASCENDC_EMU_HAS_DATA_COPY_PAD 1
#define ASCENDC_EMU_HAS_SHIFT 1
#define ASCENDC_EMU_HAS_NORM_ACT_HIGH_LEVEL 0
#define ASCENDC_EMU_HAS_BF16 1
#define ASCENDC_EMU_HAS_INT4_CAST 0
#elif __NPU_ARCH__ == 2002
#define ASCENDC_EMU_CHIP "Ascend310P"
#define ASCENDC_EMU_UB_BYTES (248u * 1024u)
#define ASCENDC_EMU_HAS_DATA_COPY_PAD 0
#define ASCENDC_EMU_HAS_SHIFT 0
#define ASCENDC_EMU_HAS_NORM_ACT_HIGH_LEVEL 1
#define ASCENDC_EMU_HAS_BF16 0
#define ASCENDC_EMU_HAS_INT4_CAST 0
#elif __NPU_ARCH__ == 2201
#define ASCENDC_EMU_CHIP "Ascend910B"
#define ASCENDC_EMU_UB_BYTES (184u * 1024u)
#define ASCENDC_EMU_HAS_DATA_COPY_PAD 1
#define ASCENDC_EMU_HAS_SHIFT 1
#define ASCENDC_EMU_HAS_NORM_ACT_HIGH_LEVEL 1
#define ASCENDC_EMU_HAS_BF16 1
#define ASCENDC_EMU_HAS_INT4_CAST 1
#else
#error "ascendc-emu: unsupported __NPU_ARCH__ (expected 3002, 2002 or 2201)"
#endif

// ---- keywords and launch macros (CPU twin-debug spelling) ----
#define __global__
#define __aicore__
#define __gm__
#define __ubuf__
#define GM_ADDR uint8_t *
#define KERNEL_TASK_TYPE_DEFAULT(type)

enum pipe_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };
enum event_t { EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7 };

namespace ascendc_emu {

constexpr uint32_t kBlockBytes = 32;     // one UB data block
constexpr uint32_t kRepeatBytes = 256;   // one vector repeat
constexpr int32_t kMaxRepeat = 255;

alignas(64) inline uint8_t g_ub[ASCENDC_EMU_UB_BYTES];
alignas(64) inline float g_reduce_scratch[ASCENDC_EMU_UB_BYTES / 2];

template <typename T> struct Wide { using type = float; };
template <> struct Wide<int16_t> { using type = int32_t; };
template <> struct Wide<int32_t> { using type = int64_t; };
template <> struct Wide<uint16_t> { using type = uint32_t; };
template <> struct Wide<uint32_t> { using type = uint64_t; };

template <typename T> struct IsVectorMath {
    static constexpr bool value = std::is_same<T, half>::value || std::is_same<T, float>::value ||
                                  std::is_same<T, int16_t>::value || std::is_same<T, int32_t>::value;
};
template <typename T> struct IsFloatMath {
    static constexpr bool value = std::is_same<T, half>::value || std::is_same<T, float>::value;
};
template <typename T> struct AlwaysFalse { static constexpr bool value = false; };

inline void NoteVectorOp() { g_state.vector_pending = true; }

inline void BeginBlock(const char *kernel, int64_t idx, int64_t num) {
    g_state = BlockState();
    g_state.kernel = kernel;
    g_state.block_idx = idx;
    g_state.block_num = num;
    memset(g_ub, 0xFF, sizeof(g_ub));  // garbage (NaN) so reads of never-written UB show up
}

inline void EndBlock() {
    if (g_state.leaked) {
        Fail("queue-leak", "%s", g_state.leak);
    }
}

// Runs every block of a launch in sequence; returns 0, or 1 with the rule message copied to err.
template <typename F>
inline int Launch(const char *kernel, uint32_t block_dim, char *err, size_t err_len, F &&body) {
    try {
        g_state.kernel = kernel;
        if (block_dim < 1 || block_dim > 65535) {
            Fail("launch", "block_dim %u outside [1, 65535]", block_dim);
        }
        for (uint32_t b = 0; b < block_dim; ++b) {
            BeginBlock(kernel, b, block_dim);
            body();
            EndBlock();
        }
    } catch (const RuleViolation &v) {
        if (err != nullptr && err_len > 0) {
            snprintf(err, err_len, "%s", v.message);
        }
        return 1;
    }
    return 0;
}

}  // namespace ascendc_emu

#define ASCENDC_EMU_REQUIRE_MATH(T, api)                                                              \
    static_assert(!std::is_same<T, bfloat16_t>::value,                                               \
                  "ascendc-emu: rule bf16-math: " api " does not take bfloat16_t on any chip; Cast to " \
                  "float first");                                                                   \
    static_assert(ascendc_emu::IsVectorMath<T>::value, "ascendc-emu: rule dtype: " api               \
                                                       " takes half, float, int16_t or int32_t only")
#define ASCENDC_EMU_REQUIRE_FLOAT(T, api)                                                             \
    static_assert(!std::is_same<T, bfloat16_t>::value,                                               \
                  "ascendc-emu: rule bf16-math: " api " does not take bfloat16_t on any chip; Cast to " \
                  "float first");                                                                   \
    static_assert(ascendc_emu::IsFloatMath<T>::value, "ascendc-emu: rule dtype: " api                \
                                                      " takes half or float only")

namespace AscendC {

enum class TPosition { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC, LCM = VECCALC, SPM, MAX };
using QuePosition = TPosition;
enum class RoundMode { CAST_NONE, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };
enum class CMPMODE { LT, GT, EQ, LE, GE, NE };
enum class SELMODE { VSEL_CMPMASK_SPR, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class ReduceOrder { ORDER_VALUE_INDEX, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };
enum class HardEvent { MTE2_V, V_MTE2, MTE3_V, V_MTE3, V_S, S_V, MTE2_S, S_MTE2, MTE3_S, S_MTE3,
                       MTE2_MTE3, MTE3_MTE2 };
enum class KernelMode { AIV_MODE, AIC_MODE, MIX_MODE };
using TEventID = int8_t;

inline int64_t GetBlockIdx() { return ascendc_emu::g_state.block_idx; }
inline int64_t GetBlockNum() { return ascendc_emu::g_state.block_num; }
inline void SetKernelMode(KernelMode) {}

// ---- tensors ----

template <typename T> class LocalTensor {
public:
    LocalTensor() = default;
    LocalTensor(uint32_t byte_offset, uint32_t elems) : offset_(byte_offset), elems_(elems) {}

    T GetValue(uint32_t i) const {
        CheckIndex(i, "GetValue");
        if (ascendc_emu::g_state.vector_pending && !ascendc_emu::g_state.sync_warned) {
            ascendc_emu::g_state.sync_warned = true;
            ascendc_emu::Warn("sync", "GetValue after a vector op without SetFlag/WaitFlag<HardEvent::V_S>");
        }
        T v;
        memcpy(&v, ascendc_emu::g_ub + offset_ + i * sizeof(T), sizeof(T));
        return v;
    }
    void SetValue(uint32_t i, T v) const {
        CheckIndex(i, "SetValue");
        memcpy(ascendc_emu::g_ub + offset_ + i * sizeof(T), &v, sizeof(T));
    }
    LocalTensor operator[](uint32_t offset) const {
        if (offset > elems_) {
            ascendc_emu::Fail("ub-bounds", "operator[](%u) on a LocalTensor of %u elements", offset, elems_);
        }
        return LocalTensor(offset_ + offset * static_cast<uint32_t>(sizeof(T)), elems_ - offset);
    }
    uint32_t GetSize() const { return elems_; }
    template <typename U> LocalTensor<U> ReinterpretCast() const {
        return LocalTensor<U>(offset_, static_cast<uint32_t>(elems_ * sizeof(T) / sizeof(U)));
    }

    // emulator-only accessors (not part of the AscendC API; never used by generated kernels)
    T *EmuData() const { return reinterpret_cast<T *>(ascendc_emu::g_ub + offset_); }
    uint32_t EmuOffset() const { return offset_; }
    void EmuRequire(uint32_t count, const char *api) const {
        if (offset_ % ascendc_emu::kBlockBytes != 0) {
            ascendc_emu::Fail("ub-align", "%s operand at UB offset %u is not 32-byte aligned", api, offset_);
        }
        if (count > elems_) {
            ascendc_emu::Fail("ub-bounds", "%s of %u elements on a LocalTensor of %u", api, count, elems_);
        }
    }

private:
    void CheckIndex(uint32_t i, const char *api) const {
        if (i >= elems_) {
            ascendc_emu::Fail("ub-bounds", "%s(%u) on a LocalTensor of %u elements", api, i, elems_);
        }
    }
    uint32_t offset_ = 0;
    uint32_t elems_ = 0;
};

template <typename T> class GlobalTensor {
public:
    void SetGlobalBuffer(__gm__ T *buffer, uint64_t buffer_size) {
        base_ = buffer;
        size_ = buffer_size;
    }
    void SetGlobalBuffer(__gm__ T *buffer) { SetGlobalBuffer(buffer, UINT64_MAX); }
    GlobalTensor operator[](uint64_t offset) const {
        GlobalTensor g;
        g.base_ = base_ + offset;
        g.size_ = size_ == UINT64_MAX ? UINT64_MAX : (offset <= size_ ? size_ - offset : 0);
        return g;
    }
    T GetValue(uint64_t i) const {
        EmuRequire(i + 1, "GetValue");
        return base_[i];
    }
    void SetValue(uint64_t i, T v) const {
        EmuRequire(i + 1, "SetValue");
        base_[i] = v;
    }
    __gm__ T *GetPhyAddr() const { return base_; }
    uint64_t GetSize() const { return size_; }
    template <typename U> GlobalTensor<U> ReinterpretCast() const {
        GlobalTensor<U> g;
        g.SetGlobalBuffer(reinterpret_cast<__gm__ U *>(base_),
                          size_ == UINT64_MAX ? UINT64_MAX : size_ * sizeof(T) / sizeof(U));
        return g;
    }

    void EmuRequire(uint64_t count, const char *api) const {
        if (base_ == nullptr) {
            ascendc_emu::Fail("gm-bounds", "%s on a GlobalTensor without SetGlobalBuffer", api);
        }
        if (count > size_) {
            ascendc_emu::Fail("gm-bounds", "%s of %llu elements on a GlobalTensor of %llu", api,
                              static_cast<unsigned long long>(count), static_cast<unsigned long long>(size_));
        }
    }

private:
    T *base_ = nullptr;
    uint64_t size_ = 0;
};

// ---- pipe, queues and scratch buffers ----

template <TPosition pos> class TBuf {
public:
    template <typename T> LocalTensor<T> Get() const { return Get<T>(bytes_ / sizeof(T)); }
    template <typename T> LocalTensor<T> Get(uint32_t len) const {
        if (!init_) {
            ascendc_emu::Fail("ub-bounds", "TBuf::Get before TPipe::InitBuffer");
        }
        if (len * sizeof(T) > bytes_) {
            ascendc_emu::Fail("ub-bounds", "TBuf::Get(%u) exceeds the %u-byte buffer", len, bytes_);
        }
        return LocalTensor<T>(offset_, len);
    }
    void EmuInit(uint32_t offset, uint32_t bytes) {
        offset_ = offset;
        bytes_ = bytes;
        init_ = true;
    }

private:
    uint32_t offset_ = 0;
    uint32_t bytes_ = 0;
    bool init_ = false;
};

template <TPosition pos, int32_t depth> class TQue {
    static_assert(depth >= 1 && depth <= 8, "ascendc-emu: rule queue-depth: TQue depth must be in [1, 8]");

public:
    ~TQue() {
        for (int32_t i = 0; i < num_; ++i) {
            if (state_[i] != kFree && !ascendc_emu::g_state.leaked) {
                ascendc_emu::g_state.leaked = true;
                snprintf(ascendc_emu::g_state.leak, sizeof(ascendc_emu::g_state.leak),
                         "a tensor of a %s queue (UB offset %u) is still %s at kernel end",
                         pos == TPosition::VECIN ? "VECIN" : (pos == TPosition::VECOUT ? "VECOUT" : "TQue"),
                         offset_[i], state_[i] == kQueued ? "enqueued" : "allocated");
            }
        }
    }
    template <typename T> LocalTensor<T> AllocTensor() {
        for (int32_t i = 0; i < num_; ++i) {
            if (state_[i] == kFree) {
                state_[i] = kAllocated;
                return LocalTensor<T>(offset_[i], bytes_ / sizeof(T));
            }
        }
        ascendc_emu::Fail("alloc-exhausted", "AllocTensor with all %d buffers of the queue in use", num_);
    }
    template <typename T> bool EnQue(const LocalTensor<T> &t) {
        const int32_t i = Slot(t.EmuOffset(), "EnQue");
        if (state_[i] != kAllocated) {
            ascendc_emu::Fail("enque-depth", "EnQue of a tensor that is not allocated (state %d)", state_[i]);
        }
        if (count_ >= depth) {
            ascendc_emu::Fail("enque-depth", "EnQue past the queue depth %d", depth);
        }
        state_[i] = kQueued;
        fifo_[(head_ + count_) % 8] = i;
        ++count_;
        return true;
    }
    template <typename T> LocalTensor<T> DeQue() {
        if (count_ == 0) {
            ascendc_emu::Fail("deque-empty", "DeQue on an empty queue");
        }
        const int32_t i = fifo_[head_];
        head_ = (head_ + 1) % 8;
        --count_;
        state_[i] = kAllocated;
        return LocalTensor<T>(offset_[i], bytes_ / sizeof(T));
    }
    template <typename T> void FreeTensor(LocalTensor<T> &t) {
        const int32_t i = Slot(t.EmuOffset(), "FreeTensor");
        if (state_[i] == kFree) {
            ascendc_emu::Fail("double-free", "FreeTensor of a tensor that is already free");
        }
        if (state_[i] == kQueued) {
            ascendc_emu::Fail("free-enqueued", "FreeTensor of a tensor that is still enqueued");
        }
        state_[i] = kFree;
    }
    bool HasTensorInQue() const { return count_ > 0; }
    int32_t GetTensorCountInQue() const { return count_; }
    bool VacantInQue() const { return count_ < depth; }

    void EmuInit(uint8_t num, uint32_t first_offset, uint32_t bytes) {
        if (num < 1 || num > 8) {
            ascendc_emu::Fail("queue-depth", "InitBuffer with %u buffers; expected 1..8", num);
        }
        num_ = num;
        bytes_ = bytes;
        for (int32_t i = 0; i < num_; ++i) {
            offset_[i] = first_offset + static_cast<uint32_t>(i) * bytes;
            state_[i] = kFree;
        }
    }

private:
    enum SlotState { kFree = 0, kAllocated = 1, kQueued = 2 };
    int32_t Slot(uint32_t offset, const char *api) const {
        for (int32_t i = 0; i < num_; ++i) {
            if (offset_[i] == offset) {
                return i;
            }
        }
        ascendc_emu::Fail("ub-bounds", "%s of a tensor that does not belong to this queue", api);
    }
    int32_t num_ = 0;
    uint32_t bytes_ = 0;
    uint32_t offset_[8] = {0};
    int32_t state_[8] = {0};
    int32_t fifo_[8] = {0};
    int32_t head_ = 0;
    int32_t count_ = 0;
};

class TPipe {
public:
    template <TPosition pos, int32_t depth> bool InitBuffer(TQue<pos, depth> &que, uint8_t num, uint32_t len) {
        que.EmuInit(num, Reserve(static_cast<uint64_t>(num) * len, len), len);
        return true;
    }
    template <TPosition pos> bool InitBuffer(TBuf<pos> &buf, uint32_t len) {
        buf.EmuInit(Reserve(len, len), len);
        return true;
    }
    void Reset() { used_ = 0; }
    void Destroy() {}

private:
    uint32_t Reserve(uint64_t total, uint32_t len) {
        if (len == 0 || len % ascendc_emu::kBlockBytes != 0) {
            ascendc_emu::Fail("ub-align", "InitBuffer length %u bytes is not a positive multiple of 32", len);
        }
        if (used_ + total > ASCENDC_EMU_UB_BYTES) {
            ascendc_emu::Fail("ub-budget", "InitBuffer needs %llu bytes, %llu already used, %s has %u",
                              static_cast<unsigned long long>(total), static_cast<unsigned long long>(used_),
                              ASCENDC_EMU_CHIP, ASCENDC_EMU_UB_BYTES);
        }
        const uint32_t offset = static_cast<uint32_t>(used_);
        used_ += total;
        return offset;
    }
    uint64_t used_ = 0;
};

// ---- synchronisation (no-ops apart from the V->S bookkeeping behind the GetValue warning) ----

template <pipe_t pipe> inline void PipeBarrier() {
    if (pipe == PIPE_ALL) {
        ascendc_emu::g_state.vector_pending = false;
    }
}
template <HardEvent event> inline void SetFlag(int32_t) {}
template <HardEvent event> inline void WaitFlag(int32_t) {
    if (event == HardEvent::V_S) {
        ascendc_emu::g_state.vector_pending = false;
    }
}

}  // namespace AscendC

#include "emu_datacopy.h"
#include "emu_vector.h"
#include "emu_highlevel.h"

// ---- CPU twin-debug entry points ----
namespace AscendC {
inline uint8_t *GmAlloc(size_t size) {
    return static_cast<uint8_t *>(aligned_alloc(64, (size + 63) / 64 * 64));
}
inline void GmFree(void *ptr) { free(ptr); }
}  // namespace AscendC

#define ICPU_RUN_KF(func, block_dim, ...)                                                               \
    do {                                                                                             \
        char ascendc_emu_err[512];                                                                   \
        if (ascendc_emu::Launch(#func, (block_dim), ascendc_emu_err, sizeof(ascendc_emu_err),        \
                                [&] { func(__VA_ARGS__); }) != 0) {                                  \
            abort();                                                                                 \
        }                                                                                            \
    } while (0)

// ---- kernel code must not use the C/C++ runtime: bisheng rejects it, so the emulator does too ----
#define ASCENDC_EMU_FORBID(name)                                                                        \
    ([] { static_assert(ascendc_emu::AlwaysFalse<void>::value,                                         \
                        "ascendc-emu: rule no-stdlib: " name " is not available in AscendC kernel code"); }, 0)
#define printf(...) ASCENDC_EMU_FORBID("printf")
#define fprintf(...) ASCENDC_EMU_FORBID("fprintf")
#define puts(...) ASCENDC_EMU_FORBID("puts")
#define malloc(...) ASCENDC_EMU_FORBID("malloc")
#define calloc(...) ASCENDC_EMU_FORBID("calloc")
#define realloc(...) ASCENDC_EMU_FORBID("realloc")
#define free(...) ASCENDC_EMU_FORBID("free")
#define exit(...) ASCENDC_EMU_FORBID("exit")
#define std ASCENDC_EMU_FORBID("the std namespace")
#pragma GCC poison new delete

#endif  // LLMC_ASCENDC_EMU_KERNEL_OPERATOR_H
