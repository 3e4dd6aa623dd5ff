// ascendc-emu: the pipes of an AI Core and the state of every UB buffer, so a missing sync or a tensor
// used outside the queue discipline stops the kernel instead of passing by luck. Included by
// kernel_operator.h.
//
// Pipes. Copy-in (MTE2), vector (V), copy-out (MTE3) and the scalar unit (S) run concurrently on a chip;
// only a SetFlag/WaitFlag pair, a PipeBarrier<PIPE_ALL> or a queue's EnQue/DeQue orders one against
// another. Each pipe here counts the operations it has issued (a sequence number); `known[p][q]` is the
// last operation of pipe q that pipe p has waited for. SetFlag<Q_P> snapshots what Q knows (its own count
// and what it waited for: syncs are transitive), WaitFlag<Q_P> merges the snapshot into P. Each 32-byte
// UB block remembers the last pipe that wrote it and the last operation of each pipe that read it; an
// access by pipe p is an error (rule pipe-sync) when it reads or overwrites a block another pipe q wrote
// or read in an operation p has not waited for. Same-pipe order needs no sync (the toolkit inserts
// PipeBarrier<PIPE_V> between dependent vector instructions itself).
//
// Queues carry the syncs the real TQue does: VECIN EnQue/DeQue = MTE2 -> V, VECOUT = V -> MTE3; FreeTensor
// -> the next AllocTensor of that buffer = V -> MTE2 (VECIN) and MTE3 -> V (VECOUT).
//
// Tensor state. Every UB block belongs to one buffer of an InitBuffer. A queue buffer is free, allocated
// (AllocTensor or DeQue returned it) or enqueued; a tensor carries the generation of the buffer it was
// handed out from (bumped by FreeTensor). Compute and copy calls refuse a tensor whose buffer is free or
// enqueued, or which is a stale copy from an earlier allocation (rule tensor-state).
#ifndef LLMC_ASCENDC_EMU_PIPES_H
#define LLMC_ASCENDC_EMU_PIPES_H

namespace ascendc_emu {

enum Pipe : uint8_t { kPipeS = 0, kPipeV, kPipeMte2, kPipeMte3, kNumPipes };
inline const char *PipeName(int p) {
    static const char *const names[kNumPipes] = {"S", "V", "MTE2", "MTE3"};
    return p >= 0 && p < kNumPipes ? names[p] : "?";
}

// What a pipe has seen: its own count and, per other pipe, the last operation it waited for.
struct Clock {
    uint32_t v[kNumPipes] = {0, 0, 0, 0};
    void Merge(const Clock &o) {
        for (int i = 0; i < kNumPipes; ++i) {
            v[i] = o.v[i] > v[i] ? o.v[i] : v[i];
        }
    }
};

constexpr uint32_t kUbBlocks = (256u * 1024u) / 32u;
constexpr int kMaxBuffers = 64;
constexpr int kNoBuffer = -1;

enum BufferKind : uint8_t { kQueueBuffer = 0, kScratchBuffer };
enum BufferState : uint8_t { kFree = 0, kAllocated, kQueued };

struct UbBuffer {
    BufferKind kind = kScratchBuffer;
    BufferState state = kFree;
    uint32_t generation = 1;
    uint32_t offset = 0, bytes = 0;
    const char *position = "VECCALC";
};

struct BlockAccess {
    int8_t writer = -1;          // pipe of the last write, -1 = never written in this block's run
    uint32_t write_op = 0;       // that pipe's operation number
    const char *write_api = "";
    uint32_t read_op[kNumPipes] = {0, 0, 0, 0};
};

// Per-block state of the pipes and of UB (reset by BeginBlock).
struct PipeState {
    Clock known[kNumPipes];                 // known[p]: what pipe p has waited for (known[p].v[p] = its count)
    Clock flags[12][8];                     // SetFlag snapshots per HardEvent and event id
    bool flag_set[12][8] = {};
    BlockAccess ub[kUbBlocks];
    int16_t owner[kUbBlocks];               // buffer index owning each 32-byte block, or kNoBuffer
    UbBuffer buffers[kMaxBuffers];
    int n_buffers = 0;
    PipeState() {
        for (uint32_t i = 0; i < kUbBlocks; ++i) {
            owner[i] = kNoBuffer;
        }
    }
};

// One core runs at a time (like g_ub, the emulated UB): plain globals, reset per block.
inline PipeState g_pipes;
inline uint32_t g_pipes_used_blocks = 0;   // UB blocks InitBuffer handed out: what a reset must clear

inline PipeState &Pipes() { return g_pipes; }

inline void ResetPipes() {
    PipeState &s = g_pipes;
    for (uint32_t k = 0; k < g_pipes_used_blocks; ++k) {
        s.ub[k] = BlockAccess();
        s.owner[k] = kNoBuffer;
    }
    g_pipes_used_blocks = 0;
    for (int p = 0; p < kNumPipes; ++p) {
        s.known[p] = Clock();
    }
    memset(s.flag_set, 0, sizeof s.flag_set);
    s.n_buffers = 0;
}

inline int RegisterBuffer(uint32_t offset, uint32_t bytes, BufferKind kind, const char *position) {
    PipeState &s = Pipes();
    if (s.n_buffers == kMaxBuffers) {
        Fail("ub-budget", "more than %d UB buffers", kMaxBuffers);
    }
    const int id = s.n_buffers++;
    UbBuffer &b = s.buffers[id];
    b.kind = kind;
    b.state = kind == kScratchBuffer ? kAllocated : kFree;
    b.offset = offset;
    b.bytes = bytes;
    b.position = position;
    for (uint32_t k = offset / 32; k < (offset + bytes) / 32 && k < kUbBlocks; ++k) {
        s.owner[k] = static_cast<int16_t>(id);
    }
    if ((offset + bytes) / 32 > g_pipes_used_blocks) {
        g_pipes_used_blocks = (offset + bytes) / 32 < kUbBlocks ? (offset + bytes) / 32 : kUbBlocks;
    }
    return id;
}

// Tensor state: the buffer behind UB byte `offset` must be handed out, in the tensor's generation.
inline void CheckTensor(uint32_t offset, uint32_t generation, const char *api) {
    PipeState &s = Pipes();
    const int id = offset / 32 < kUbBlocks ? s.owner[offset / 32] : kNoBuffer;
    if (id == kNoBuffer) {
        Fail("tensor-state", "%s on UB offset %u, which no TPipe::InitBuffer gave out (a LocalTensor that "
             "came from no queue or TBuf)", api, offset);
    }
    const UbBuffer &b = s.buffers[id];
    if (b.kind == kScratchBuffer) {
        return;
    }
    if (b.state == kFree) {
        Fail("tensor-state", "%s on a %s tensor (UB offset %u) after its FreeTensor", api, b.position, offset);
    }
    if (b.state == kQueued) {
        Fail("tensor-state", "%s on a %s tensor (UB offset %u) while it is enqueued: use the tensor DeQue "
             "returns", api, b.position, offset);
    }
    if (generation != b.generation) {
        Fail("tensor-state", "%s on a stale %s tensor (UB offset %u): its buffer was freed and handed out "
             "again since", api, b.position, offset);
    }
}

// One operation of `pipe` reading UB [r0, r1) and writing [w0, w1) (byte ranges; empty when r0 == r1).
inline void PipeOp(Pipe pipe, const char *api, uint32_t r0, uint32_t r1, uint32_t w0, uint32_t w1) {
    PipeState &s = Pipes();
    Clock &me = s.known[pipe];
    const uint32_t op = ++me.v[pipe];
    for (uint32_t k = r0 / 32; k < (r1 + 31) / 32 && k < kUbBlocks; ++k) {
        BlockAccess &a = s.ub[k];
        if (a.writer >= 0 && a.writer != pipe && a.write_op > me.v[a.writer]) {
            Fail("pipe-sync", "%s on pipe %s reads UB offset %u, written by %s on pipe %s with no sync "
                 "from %s to %s in between (SetFlag/WaitFlag<HardEvent::%s_%s>, or a queue's EnQue/DeQue)",
                 api, PipeName(pipe), k * 32, a.write_api, PipeName(a.writer), PipeName(a.writer),
                 PipeName(pipe), PipeName(a.writer), PipeName(pipe));
        }
        a.read_op[pipe] = op;
    }
    for (uint32_t k = w0 / 32; k < (w1 + 31) / 32 && k < kUbBlocks; ++k) {
        BlockAccess &a = s.ub[k];
        if (a.writer >= 0 && a.writer != pipe && a.write_op > me.v[a.writer]) {
            Fail("pipe-sync", "%s on pipe %s overwrites UB offset %u, written by %s on pipe %s with no sync "
                 "from %s to %s in between", api, PipeName(pipe), k * 32, a.write_api, PipeName(a.writer),
                 PipeName(a.writer), PipeName(pipe));
        }
        for (int q = 0; q < kNumPipes; ++q) {
            if (q != pipe && a.read_op[q] > me.v[q]) {
                Fail("pipe-sync", "%s on pipe %s overwrites UB offset %u while pipe %s may still read it "
                     "(no sync from %s to %s since that read)", api, PipeName(pipe), k * 32, PipeName(q),
                     PipeName(q), PipeName(pipe));
            }
        }
        a.writer = static_cast<int8_t>(pipe);
        a.write_op = op;
        a.write_api = api;
    }
}

// A flag from pipe `from` to pipe `to`: Set snapshots `from`, Wait merges the snapshot into `to`.
inline void SetEvent(int event, int id, Pipe from, const char *what) {
    PipeState &s = Pipes();
    if (id < 0 || id > 7) {
        Fail("flag-id", "%s with event id %d outside [0, 7]", what, id);
    }
    s.flags[event][id] = s.known[from];
    s.flag_set[event][id] = true;
}
inline void WaitEvent(int event, int id, Pipe to, const char *what) {
    PipeState &s = Pipes();
    if (id < 0 || id > 7) {
        Fail("flag-id", "%s with event id %d outside [0, 7]", what, id);
    }
    if (!s.flag_set[event][id]) {
        Fail("flag-unset", "WaitFlag<%s>(%d) with no SetFlag before it: the chip would wait forever", what, id);
    }
    const uint32_t own = s.known[to].v[to];
    s.known[to].Merge(s.flags[event][id]);
    s.known[to].v[to] = own;
    s.flag_set[event][id] = false;
}
// A queue's own sync (its private event): the same snapshot and merge.
inline void QueueSync(Clock &slot, Pipe from, bool set, Pipe to) {
    PipeState &s = Pipes();
    if (set) {
        slot = s.known[from];
    } else {
        const uint32_t own = s.known[to].v[to];
        s.known[to].Merge(slot);
        s.known[to].v[to] = own;
    }
}
inline void BarrierAll() {
    PipeState &s = Pipes();
    Clock all;
    for (int p = 0; p < kNumPipes; ++p) {
        all.v[p] = s.known[p].v[p];
    }
    for (int p = 0; p < kNumPipes; ++p) {
        const uint32_t own = s.known[p].v[p];
        s.known[p] = all;
        s.known[p].v[p] = own;
    }
}

}  // namespace ascendc_emu

#endif  // LLMC_ASCENDC_EMU_PIPES_H
