// ascendc-emu: what the blocks of one launch do to GM, and what a launch costs. Included by
// kernel_operator.h.
//
// Blocks run one after another here but concurrently on a chip, so two blocks writing the same GM bytes
// in one launch race (rule gm-overlap), and so does a block reading bytes another block of the launch
// writes (rule gm-race: there is no cross-core sync here; it would read old or new data by timing).
// Every GM write (DataCopy/DataCopyPad UB->GM, GlobalTensor::SetValue) and read (GM->UB copies,
// GlobalTensor::GetValue) is logged as a byte range with its block; at the end of the launch the ranges
// are sorted and checked.
//
// Cost counters (the cost model of llmc/bench.py reads them through ascendc_emu_cost): per launch the GM
// bytes each block moved in (MTE2) and out (MTE3), its vector repeats (one per 256 bytes an operation
// touches, at least one per call), its scalar UB accesses (GetValue/SetValue) and the flag waits its
// pipes did. A chip runs the blocks in parallel, so a launch's time is set by its largest block.
#ifndef LLMC_ASCENDC_EMU_GM_H
#define LLMC_ASCENDC_EMU_GM_H

#include <algorithm>
#include <vector>

namespace ascendc_emu {

struct GmWrite {
    uintptr_t begin, end;
    int64_t block;
    const char *api;
};

using GmRead = GmWrite;

struct BlockCost {
    uint64_t gm_in = 0, gm_out = 0, vector_repeats = 0, scalar_accesses = 0, waits = 0;
};

// One launch, as the cost model sees it (plain C layout: read from Python through ctypes/cffi).
struct LaunchRecord {
    char kernel[48];
    uint32_t blocks;
    uint32_t pad;
    uint64_t gm_in, gm_out;                     // all blocks
    uint64_t max_block_gm;                      // the busiest block's GM bytes (in + out)
    uint64_t max_block_vector_repeats;
    uint64_t max_block_scalar_accesses;
    uint64_t max_block_waits;
    uint64_t blocking_before;                   // host blocking calls counted before this launch (emu_device.h)
};

constexpr size_t kMaxLaunchRecords = 1u << 17;

struct LaunchLog {
    std::vector<GmWrite> writes;
    std::vector<GmRead> reads;
    BlockCost block, max;
    uint64_t gm_in = 0, gm_out = 0;
    LaunchRecord *records = nullptr;            // kMaxLaunchRecords, allocated on first use
    uint64_t n_records = 0;                     // launches since the last reset (may exceed the array)
};

inline LaunchLog g_launch;

inline BlockCost &Cost() { return g_launch.block; }

// One GM access of a block: extends the block's previous range when contiguous with it (the checks at the
// launch's end sweep ranges, not single copies).
inline void NoteGmRange(std::vector<GmWrite> &ranges, uint64_t &total, const void *p, uint64_t bytes, int64_t block,
                        const char *api) {
    if (bytes == 0) {
        return;
    }
    const uintptr_t b = reinterpret_cast<uintptr_t>(p);
    if (!ranges.empty() && ranges.back().block == block && ranges.back().end == b) {
        ranges.back().end = b + bytes;
    } else {
        ranges.push_back(GmWrite{b, b + bytes, block, api});
    }
    total += bytes;
}

inline void NoteGmWrite(const void *p, uint64_t bytes, int64_t block, const char *api) {
    NoteGmRange(g_launch.writes, g_launch.block.gm_out, p, bytes, block, api);
}

inline void NoteGmRead(const void *p, uint64_t bytes, int64_t block, const char *api) {
    NoteGmRange(g_launch.reads, g_launch.block.gm_in, p, bytes, block, api);
}

// A vector operation costs one repeat per 256 bytes of its largest operand (at least one): the operand
// checks note their sizes, NoteVectorOp (called once per operation) turns the largest into repeats.
inline uint64_t g_vector_operand_bytes = 0;
inline void NoteOperand(int pipe, uint64_t bytes) {
    if (pipe == 1 /* kPipeV */ && bytes > g_vector_operand_bytes) {
        g_vector_operand_bytes = bytes;
    }
}
inline void NoteVectorOp() {
    const uint64_t b = g_vector_operand_bytes;
    g_launch.block.vector_repeats += b / 256 + (b % 256 != 0) + (b == 0);
    g_vector_operand_bytes = 0;
}

inline void BeginLaunch() {
    g_launch.writes.clear();
    g_launch.reads.clear();
    g_launch.max = BlockCost();
    g_launch.gm_in = g_launch.gm_out = 0;
}

inline void EndBlockCost() {
    BlockCost &b = g_launch.block, &m = g_launch.max;
    g_launch.gm_in += b.gm_in;
    g_launch.gm_out += b.gm_out;
    if (b.gm_in + b.gm_out > m.gm_in) {
        m.gm_in = b.gm_in + b.gm_out;   // max.gm_in holds the busiest block's total
    }
    m.vector_repeats = std::max(m.vector_repeats, b.vector_repeats);
    m.scalar_accesses = std::max(m.scalar_accesses, b.scalar_accesses);
    m.waits = std::max(m.waits, b.waits);
    b = BlockCost();
}

// Sweep step over writes in start order: i1 is the furthest-reaching write so far, i2 the furthest-reaching
// one of a block other than i1's (SIZE_MAX = none).
inline void KeepFurthest(const std::vector<GmWrite> &w, size_t i, size_t &i1, size_t &i2) {
    if (i1 == SIZE_MAX || w[i].block == w[i1].block) {
        if (i1 == SIZE_MAX || w[i].end > w[i1].end) {
            i1 = i;
        }
    } else if (w[i].end > w[i1].end) {
        i2 = i1;
        i1 = i;
    } else if (i2 == SIZE_MAX || w[i].end > w[i2].end) {
        i2 = i;
    }
}

// A read of bytes another block writes in the same launch (writes sorted by start). For each prefix of the
// writes, the furthest-reaching write and the furthest-reaching one of any other block: a read overlaps a
// write of another block iff, among the writes starting before the read ends, such a write reaches past
// the read's start.
inline void CheckReadsAgainstWrites(const std::vector<GmWrite> &w, const std::vector<GmRead> &reads) {
    if (w.empty() || reads.empty()) {
        return;
    }
    std::vector<std::pair<size_t, size_t>> top(w.size());   // (i1, i2) per prefix, SIZE_MAX = none
    size_t i1 = SIZE_MAX, i2 = SIZE_MAX;
    for (size_t i = 0; i < w.size(); ++i) {
        KeepFurthest(w, i, i1, i2);
        top[i] = {i1, i2};
    }
    for (const GmRead &r : reads) {
        const auto after = std::lower_bound(w.begin(), w.end(), r.end,
                                            [](const GmWrite &x, uintptr_t end) { return x.begin < end; });
        if (after == w.begin()) {
            continue;
        }
        const auto [a, b] = top[static_cast<size_t>(after - w.begin()) - 1];
        const size_t other = w[a].block != r.block ? a : b;
        if (other != SIZE_MAX && w[other].end > r.begin) {
            Fail("gm-race", "block %lld reads GM bytes %p..%p (%s) that block %lld writes (%s) in the same launch: "
                 "on a chip the cores race", static_cast<long long>(r.block), reinterpret_cast<void *>(r.begin),
                 reinterpret_cast<void *>(r.end), r.api, static_cast<long long>(w[other].block), w[other].api);
        }
    }
}

// Called after the last block: overlap and race checks, then the launch's cost record.
inline void EndLaunch(const char *kernel, uint32_t blocks) {
    std::vector<GmWrite> &w = g_launch.writes;
    std::sort(w.begin(), w.end(), [](const GmWrite &a, const GmWrite &b) { return a.begin < b.begin; });
    // Sweep in start order keeping the furthest-reaching range (i1) and the furthest-reaching one of any
    // other block (i2): a range overlaps another block's write iff the furthest of the other blocks
    // reaches past its start.
    size_t i1 = SIZE_MAX, i2 = SIZE_MAX;
    for (size_t i = 0; i < w.size(); ++i) {
        const size_t other = (i1 != SIZE_MAX && w[i1].block != w[i].block) ? i1 : i2;
        if (other != SIZE_MAX && w[other].end > w[i].begin) {
            Fail("gm-overlap", "blocks %lld (%s) and %lld (%s) both write GM bytes %p..%p in one launch: on a "
                 "chip the cores race", static_cast<long long>(w[other].block), w[other].api,
                 static_cast<long long>(w[i].block), w[i].api, reinterpret_cast<void *>(w[i].begin),
                 reinterpret_cast<void *>(std::min(w[i].end, w[other].end)));
        }
        KeepFurthest(w, i, i1, i2);
    }
    CheckReadsAgainstWrites(w, g_launch.reads);
    if (g_launch.records == nullptr) {
        g_launch.records = static_cast<LaunchRecord *>(calloc(kMaxLaunchRecords, sizeof(LaunchRecord)));
    }
    if (g_launch.records != nullptr && g_launch.n_records < kMaxLaunchRecords) {
        LaunchRecord &r = g_launch.records[g_launch.n_records];
        snprintf(r.kernel, sizeof r.kernel, "%s", kernel);
        r.blocks = blocks;
        r.gm_in = g_launch.gm_in;
        r.gm_out = g_launch.gm_out;
        r.max_block_gm = g_launch.max.gm_in;
        r.max_block_vector_repeats = g_launch.max.vector_repeats;
        r.max_block_scalar_accesses = g_launch.max.scalar_accesses;
        r.max_block_waits = g_launch.max.waits;
        r.blocking_before = g_heap.blocking_calls;
    }
    ++g_launch.n_records;
}

}  // namespace ascendc_emu

// The cost log for the cost model: the number of launches since the last reset, and a pointer to their
// records (at most kMaxLaunchRecords). `reset` != 0 empties the log after reading.
extern "C" __attribute__((used, visibility("default"))) inline uint64_t ascendc_emu_cost(const ascendc_emu::LaunchRecord **records,
                                                                 int reset) {
    const uint64_t n = ascendc_emu::g_launch.n_records;
    if (records != nullptr) {
        *records = ascendc_emu::g_launch.records;
    }
    if (reset) {
        ascendc_emu::g_launch.n_records = 0;
    }
    return n;
}

#endif  // LLMC_ASCENDC_EMU_GM_H
