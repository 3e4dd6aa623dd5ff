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
//   pipe-sync        a pipe reads or overwrites UB another pipe wrote or read with no sync in between
//   flag-unset, flag-id   WaitFlag with no SetFlag before it (the chip hangs); event id outside 0..7
//   tensor-state     a LocalTensor used after FreeTensor, while enqueued, or stale (emu_pipes.h)
//   gm-unknown       SetGlobalBuffer on an address that is no device buffer
//   gm-overlap       two blocks of one launch write the same GM bytes (emu_gm.h)
//   gm-race          a block reads GM bytes another block of the same launch writes
// Device memory lives in its own mapping that host code cannot touch (emu_device.h).
// Chip availability (api-availability, cast-pair) and dtype rules (bf16-math, dtype) fail at compile
// time through static_assert messages that carry the same "ascendc-emu: rule <rule>" prefix.
#ifndef LLMC_ASCENDC_EMU_KERNEL_OPERATOR_H
#define LLMC_ASCENDC_EMU_KERNEL_OPERATOR_H

#include <cmath>
#include <cstdlib>
#include <limits>

#include "emu_types.h"
#include "emu_device.h"
#include "emu_pipes.h"
#include "emu_gm.h"

// A generated model artifact names its chip in ascendc_chip.h next to its kernels (its build passes no -D).
#if !defined(__NPU_ARCH__) && __has_include("ascendc_chip.h")
#include "ascendc_chip.h"
#endif
#ifndef __NPU_ARCH__
#error "ascendc-emu: define __NPU_ARCH__ (3002 = Ascend 310B, 2002 = Ascend 310P, 2201 = Ascend 910B)"
#endif

// ---- per-chip facts (docs/ascendc.md §4) ----
// ASCENDC_EMU_UB_BYTES is what a vector kernel may allocate: asc-devkit's TOTAL_VEC_LOCAL_SIZE
// (impl/basic_api/utils/kernel_utils_constants.h), not the chip's whole UB (TOTAL_UB_SIZE): 310B 184 KB of
// 248, 310P 248 KB of 256, 910B 184 KB of 192.
#if __NPU_ARCH__ == 3002
#define ASCENDC_EMU_CHIP "Ascend310B"
#define ASCENDC_EMU_UB_BYTES (184u * 1024u)
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

// Sized for the largest chip, not this one: inline variables are one object per process even across
// kernel libraries built for different chips (g++ emits them as unique symbols), so their sizes must agree.
constexpr uint32_t kUbArrayBytes = 256u * 1024u;
alignas(64) inline uint8_t g_ub[kUbArrayBytes];
alignas(64) inline float g_reduce_scratch[kUbArrayBytes / 2];

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

inline void BeginBlock(const char *kernel, int64_t idx, int64_t num) {
    g_state = BlockState();
    g_state.kernel = kernel;
    g_state.block_idx = idx;
    g_state.block_num = num;
    ResetPipes();
    memset(g_ub, 0xFF, sizeof(g_ub));  // garbage (NaN) so reads of never-written UB show up
}

inline void EndBlock() {
    if (g_state.leaked) {
        Fail("queue-leak", "%s", g_state.leak);
    }
    EndBlockCost();
}

// Runs every block of a launch in sequence with device memory reachable, then checks the blocks' GM
// writes for overlap; returns 0, or 1 with the rule message copied to err.
template <typename F>
inline int Launch(const char *kernel, uint32_t block_dim, char *err, size_t err_len, F &&body) {
    OpenDevice();
    try {
        g_state.kernel = kernel;
        if (block_dim < 1 || block_dim > 65535) {
            Fail("launch", "block_dim %u outside [1, 65535]", block_dim);
        }
        BeginLaunch();
        for (uint32_t b = 0; b < block_dim; ++b) {
            BeginBlock(kernel, b, block_dim);
            body();
            EndBlock();
        }
        EndLaunch(kernel, block_dim);
    } catch (const RuleViolation &v) {
        CloseDevice();
        if (err != nullptr && err_len > 0) {
            snprintf(err, err_len, "%s", v.message);
        }
        return 1;
    }
    CloseDevice();
    return 0;
}

// Launch for a single kernel whose GM arguments are host buffers (runtime/ascendc/launch.py): they are
// registered with their real sizes for the launch's duration.
template <typename F>
inline int LaunchOnBuffers(const char *kernel, uint32_t block_dim, const void *const *ptrs, const size_t *bytes,
                           int n, char *err, size_t err_len, F &&body) {
    GmScope scope(ptrs, bytes, n);
    return Launch(kernel, block_dim, err, err_len, body);
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
    LocalTensor(uint32_t byte_offset, uint32_t elems, uint32_t generation = 0)
        : offset_(byte_offset), elems_(elems), gen_(generation) {}

    // The scalar unit (pipe S) reading and writing UB: a vector result needs a V->S sync first, and a
    // scalar write an S->V (or S->MTE3) sync before another pipe reads it.
    T GetValue(uint32_t i) const {
        CheckIndex(i, "GetValue");
        const uint32_t at = offset_ + i * static_cast<uint32_t>(sizeof(T));
        ascendc_emu::PipeOp(ascendc_emu::kPipeS, "GetValue", at, at + sizeof(T), 0, 0);
        ++ascendc_emu::Cost().scalar_accesses;
        T v;
        memcpy(&v, ascendc_emu::g_ub + at, sizeof(T));
        return v;
    }
    void SetValue(uint32_t i, T v) const {
        CheckIndex(i, "SetValue");
        const uint32_t at = offset_ + i * static_cast<uint32_t>(sizeof(T));
        ascendc_emu::PipeOp(ascendc_emu::kPipeS, "SetValue", 0, 0, at, at + sizeof(T));
        ++ascendc_emu::Cost().scalar_accesses;
        memcpy(ascendc_emu::g_ub + at, &v, sizeof(T));
    }
    LocalTensor operator[](uint32_t offset) const {
        if (offset > elems_) {
            ascendc_emu::Fail("ub-bounds", "operator[](%u) on a LocalTensor of %u elements", offset, elems_);
        }
        return LocalTensor(offset_ + offset * static_cast<uint32_t>(sizeof(T)), elems_ - offset, gen_);
    }
    uint32_t GetSize() const { return elems_; }
    template <typename U> LocalTensor<U> ReinterpretCast() const {
        return LocalTensor<U>(offset_, static_cast<uint32_t>(elems_ * sizeof(T) / sizeof(U)), gen_);
    }

    // emulator-only accessors (not part of the AscendC API; never used by generated kernels)
    T *EmuData() const { return reinterpret_cast<T *>(ascendc_emu::g_ub + offset_); }
    uint32_t EmuOffset() const { return offset_; }
    uint32_t EmuGeneration() const { return gen_; }
    // An operation of `pipe` reads `count` elements of this tensor: bounds, alignment, tensor state and
    // pipe order are checked; vector reads count toward the launch's repeats.
    void EmuRequire(uint32_t count, const char *api, ascendc_emu::Pipe pipe = ascendc_emu::kPipeV) const {
        Check(count, api);
        ascendc_emu::PipeOp(pipe, api, offset_, offset_ + count * static_cast<uint32_t>(sizeof(T)), 0, 0);
        ascendc_emu::NoteOperand(pipe, static_cast<uint64_t>(count) * sizeof(T));
    }
    // The same for an operation that writes `count` elements of this tensor.
    void EmuWrite(uint32_t count, const char *api, ascendc_emu::Pipe pipe = ascendc_emu::kPipeV) const {
        Check(count, api);
        ascendc_emu::PipeOp(pipe, api, 0, 0, offset_, offset_ + count * static_cast<uint32_t>(sizeof(T)));
        ascendc_emu::NoteOperand(pipe, static_cast<uint64_t>(count) * sizeof(T));
    }

private:
    void Check(uint32_t count, const char *api) const {
        if (offset_ % ascendc_emu::kBlockBytes != 0) {
            ascendc_emu::Fail("ub-align", "%s operand at UB offset %u is not 32-byte aligned", api, offset_);
        }
        if (count > elems_) {
            ascendc_emu::Fail("ub-bounds", "%s of %u elements on a LocalTensor of %u", api, count, elems_);
        }
        ascendc_emu::CheckTensor(offset_, gen_, api);
    }
    void CheckIndex(uint32_t i, const char *api) const {
        if (i >= elems_) {
            ascendc_emu::Fail("ub-bounds", "%s(%u) on a LocalTensor of %u elements", api, i, elems_);
        }
        ascendc_emu::CheckTensor(offset_, gen_, api);
    }
    uint32_t offset_ = 0;
    uint32_t elems_ = 0;
    uint32_t gen_ = 0;
};

// GM bounds: `size_` is what the kernel declared, `real_` the elements left in the device buffer the
// pointer lies in (emu_device.h knows every buffer's real size); an access must fit both.
template <typename T> class GlobalTensor {
public:
    void SetGlobalBuffer(__gm__ T *buffer, uint64_t buffer_size) {
        const ascendc_emu::GmRange *r = ascendc_emu::FindRange(buffer);
        if (r == nullptr) {
            ascendc_emu::Fail("gm-unknown", "SetGlobalBuffer(%p): the address is in no device buffer (host "
                              "memory, or outside every aclrtMalloc allocation)", static_cast<void *>(buffer));
        }
        base_ = buffer;
        size_ = buffer_size;
        real_ = (r->base + r->bytes - reinterpret_cast<uintptr_t>(buffer)) / sizeof(T);
    }
    void SetGlobalBuffer(__gm__ T *buffer) { SetGlobalBuffer(buffer, UINT64_MAX); }
    GlobalTensor operator[](uint64_t offset) const {
        GlobalTensor g;
        g.base_ = base_ + offset;
        g.size_ = size_ == UINT64_MAX ? UINT64_MAX : (offset <= size_ ? size_ - offset : 0);
        g.real_ = offset <= real_ ? real_ - offset : 0;
        return g;
    }
    // scalar GM access (pipe S): no UB involved; a write counts toward the blocks' GM overlap check
    T GetValue(uint64_t i) const {
        EmuRequire(i + 1, "GetValue");
        ascendc_emu::NoteGmRead(base_ + i, sizeof(T), ascendc_emu::g_state.block_idx, "GlobalTensor::GetValue");
        return base_[i];
    }
    void SetValue(uint64_t i, T v) const {
        EmuRequire(i + 1, "SetValue");
        ascendc_emu::NoteGmWrite(base_ + i, sizeof(T), ascendc_emu::g_state.block_idx, "GlobalTensor::SetValue");
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
        if (count > real_) {
            ascendc_emu::Fail("gm-bounds", "%s of %llu elements where the device buffer has %llu left (the "
                              "kernel declared %llu)", api, static_cast<unsigned long long>(count),
                              static_cast<unsigned long long>(real_), static_cast<unsigned long long>(size_));
        }
    }

private:
    T *base_ = nullptr;
    uint64_t size_ = 0;
    uint64_t real_ = 0;
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
        ascendc_emu::RegisterBuffer(offset, bytes, ascendc_emu::kScratchBuffer, "VECCALC");
    }

private:
    uint32_t offset_ = 0;
    uint32_t bytes_ = 0;
    bool init_ = false;
};

// A queue of `num` UB buffers. Its syncs are the real TQue's (emu_pipes.h): VECIN carries MTE2 -> V from
// EnQue to DeQue and V -> MTE2 from FreeTensor to the buffer's next AllocTensor; VECOUT carries V -> MTE3
// and MTE3 -> V the same way.
template <TPosition pos, int32_t depth> class TQue {
    static_assert(depth >= 1 && depth <= 8, "ascendc-emu: rule queue-depth: TQue depth must be in [1, 8]");
    static constexpr bool kIn = pos == TPosition::VECIN;
    static constexpr bool kOut = pos == TPosition::VECOUT;
    static constexpr const char *kName = kIn ? "VECIN" : (kOut ? "VECOUT" : "TQue");
    // producer and consumer pipes of this queue position
    static constexpr ascendc_emu::Pipe kProducer = kIn ? ascendc_emu::kPipeMte2 : ascendc_emu::kPipeV;
    static constexpr ascendc_emu::Pipe kConsumer = kOut ? ascendc_emu::kPipeMte3 : ascendc_emu::kPipeV;

public:
    ~TQue() {
        for (int32_t i = 0; i < num_; ++i) {
            const ascendc_emu::BufferState st = Buf(i).state;
            if (st != ascendc_emu::kFree && !ascendc_emu::g_state.leaked) {
                ascendc_emu::g_state.leaked = true;
                snprintf(ascendc_emu::g_state.leak, sizeof(ascendc_emu::g_state.leak),
                         "a tensor of a %s queue (UB offset %u) is still %s at kernel end", kName, Buf(i).offset,
                         st == ascendc_emu::kQueued ? "enqueued" : "allocated");
            }
        }
    }
    template <typename T> LocalTensor<T> AllocTensor() {
        for (int32_t i = 0; i < num_; ++i) {
            ascendc_emu::UbBuffer &b = Buf(i);
            if (b.state == ascendc_emu::kFree) {
                b.state = ascendc_emu::kAllocated;
                if (freed_[i] && kProducer != kConsumer) {   // wait for the consumer of the last use
                    ascendc_emu::QueueSync(free_clock_[i], kConsumer, false, kProducer);
                    ++ascendc_emu::Cost().waits;
                }
                return LocalTensor<T>(b.offset, bytes_ / sizeof(T), b.generation);
            }
        }
        ascendc_emu::Fail("alloc-exhausted", "AllocTensor with all %d buffers of the queue in use", num_);
    }
    template <typename T> bool EnQue(const LocalTensor<T> &t) {
        const int32_t i = Slot(t, "EnQue");
        if (Buf(i).state != ascendc_emu::kAllocated) {
            ascendc_emu::Fail("enque-depth", "EnQue of a tensor that is not allocated (state %d)", Buf(i).state);
        }
        if (count_ >= depth) {
            ascendc_emu::Fail("enque-depth", "EnQue past the queue depth %d", depth);
        }
        Buf(i).state = ascendc_emu::kQueued;
        ascendc_emu::QueueSync(enque_clock_[i], kProducer, true, kConsumer);
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
        ascendc_emu::UbBuffer &b = Buf(i);
        b.state = ascendc_emu::kAllocated;
        ascendc_emu::QueueSync(enque_clock_[i], kProducer, false, kConsumer);
        ++ascendc_emu::Cost().waits;
        return LocalTensor<T>(b.offset, bytes_ / sizeof(T), b.generation);
    }
    template <typename T> void FreeTensor(LocalTensor<T> &t) {
        const int32_t i = Slot(t, "FreeTensor");
        ascendc_emu::UbBuffer &b = Buf(i);
        if (b.state == ascendc_emu::kFree) {
            ascendc_emu::Fail("double-free", "FreeTensor of a tensor that is already free");
        }
        if (b.state == ascendc_emu::kQueued) {
            ascendc_emu::Fail("free-enqueued", "FreeTensor of a tensor that is still enqueued");
        }
        if (t.EmuGeneration() != b.generation) {
            ascendc_emu::Fail("tensor-state", "FreeTensor of a stale %s tensor (its buffer was freed and "
                              "handed out again since)", kName);
        }
        b.state = ascendc_emu::kFree;
        ++b.generation;
        ascendc_emu::QueueSync(free_clock_[i], kConsumer, true, kProducer);
        freed_[i] = true;
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
            id_[i] = ascendc_emu::RegisterBuffer(first_offset + static_cast<uint32_t>(i) * bytes, bytes,
                                                 ascendc_emu::kQueueBuffer, kName);
        }
    }

private:
    ascendc_emu::UbBuffer &Buf(int32_t i) const { return ascendc_emu::Pipes().buffers[id_[i]]; }
    template <typename T> int32_t Slot(const LocalTensor<T> &t, const char *api) const {
        for (int32_t i = 0; i < num_; ++i) {
            if (Buf(i).offset == t.EmuOffset()) {
                return i;
            }
        }
        ascendc_emu::Fail("ub-bounds", "%s of a tensor that does not belong to this queue", api);
    }
    int32_t num_ = 0;
    uint32_t bytes_ = 0;
    int id_[8] = {0};
    ascendc_emu::Clock enque_clock_[8];   // the producer's pipes at EnQue, merged into the consumer at DeQue
    ascendc_emu::Clock free_clock_[8];    // the consumer's at FreeTensor, merged into the producer at Alloc
    bool freed_[8] = {false};
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

// ---- synchronisation: flags between pipes and barriers (emu_pipes.h keeps the order they establish) ----

namespace emu_detail {
struct EventPipes {
    ascendc_emu::Pipe from, to;
    const char *name;
};
constexpr EventPipes kEvents[] = {
    {ascendc_emu::kPipeMte2, ascendc_emu::kPipeV, "HardEvent::MTE2_V"},
    {ascendc_emu::kPipeV, ascendc_emu::kPipeMte2, "HardEvent::V_MTE2"},
    {ascendc_emu::kPipeMte3, ascendc_emu::kPipeV, "HardEvent::MTE3_V"},
    {ascendc_emu::kPipeV, ascendc_emu::kPipeMte3, "HardEvent::V_MTE3"},
    {ascendc_emu::kPipeV, ascendc_emu::kPipeS, "HardEvent::V_S"},
    {ascendc_emu::kPipeS, ascendc_emu::kPipeV, "HardEvent::S_V"},
    {ascendc_emu::kPipeMte2, ascendc_emu::kPipeS, "HardEvent::MTE2_S"},
    {ascendc_emu::kPipeS, ascendc_emu::kPipeMte2, "HardEvent::S_MTE2"},
    {ascendc_emu::kPipeMte3, ascendc_emu::kPipeS, "HardEvent::MTE3_S"},
    {ascendc_emu::kPipeS, ascendc_emu::kPipeMte3, "HardEvent::S_MTE3"},
    {ascendc_emu::kPipeMte2, ascendc_emu::kPipeMte3, "HardEvent::MTE2_MTE3"},
    {ascendc_emu::kPipeMte3, ascendc_emu::kPipeMte2, "HardEvent::MTE3_MTE2"},
};
}  // namespace emu_detail

// PIPE_ALL waits for every pipe; a barrier on one pipe orders that pipe against itself only, which the
// emulator's in-order pipes already are.
template <pipe_t pipe> inline void PipeBarrier() {
    if (pipe == PIPE_ALL) {
        ascendc_emu::BarrierAll();
        ++ascendc_emu::Cost().waits;
    }
}
template <HardEvent event> inline void SetFlag(int32_t id) {
    const emu_detail::EventPipes &e = emu_detail::kEvents[static_cast<int>(event)];
    ascendc_emu::SetEvent(static_cast<int>(event), id, e.from, e.name);
}
template <HardEvent event> inline void WaitFlag(int32_t id) {
    const emu_detail::EventPipes &e = emu_detail::kEvents[static_cast<int>(event)];
    ascendc_emu::WaitEvent(static_cast<int>(event), id, e.to, e.name);
    ++ascendc_emu::Cost().waits;
}

}  // namespace AscendC

#include "emu_datacopy.h"
#include "emu_vector.h"
#include "emu_highlevel.h"

// ---- CPU twin-debug entry points ----
namespace AscendC {
// Twin-debug GM is host memory by design (the toolkit's CPU mode shares it with the host): known as GM
// with its real size until GmFree.
inline uint8_t *GmAlloc(size_t size) {
    uint8_t *p = static_cast<uint8_t *>(aligned_alloc(64, (size + 63) / 64 * 64));
    if (p != nullptr) {
        ascendc_emu::AddRange(reinterpret_cast<uintptr_t>(p), size, false);
    }
    return p;
}
inline void GmFree(void *ptr) {
    for (size_t i = 0; i < ascendc_emu::g_heap.n_ranges; ++i) {
        if (ascendc_emu::g_heap.ranges[i].live && ascendc_emu::g_heap.ranges[i].base == reinterpret_cast<uintptr_t>(ptr)) {
            ascendc_emu::g_heap.ranges[i].live = false;
        }
    }
    free(ptr);
}
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
