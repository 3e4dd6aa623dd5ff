// ascendc-emu: device memory (GM) in its own address space, and the ACL runtime calls that reach it.
//
// On a card, aclrtMalloc memory is not host memory: a host memcpy into it faults or corrupts. Here every
// aclrtMalloc carves its allocation out of one reserved mapping that stays PROT_NONE except while a
// kernel runs (ascendc_emu::Launch) or aclrtMemcpy copies. A host load or store into it therefore raises
// SIGSEGV; our handler prints `ascendc-emu: host code touched device memory ...` naming the allocation,
// then lets the fault go on to the previous handler (Python's faulthandler, or the default core dump).
//
// Every GM buffer a kernel may address is known here with its real size: the device heap's allocations
// and, for single-kernel runs, the host buffers the launch wrapper registers (GmScope). SetGlobalBuffer
// looks its pointer up, so GM bounds are checked against the buffer that really exists, not against the
// size the kernel declared (emu_gm.h). The emulated ACL subset: aclrtMalloc, aclrtFree, aclrtMemcpy.
// Included by kernel_operator.h and by the generated host code under emulation.
#ifndef LLMC_ASCENDC_EMU_DEVICE_H
#define LLMC_ASCENDC_EMU_DEVICE_H

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ascendc_emu {

struct GmRange {
    uintptr_t base = 0;
    size_t bytes = 0;
    bool device = false;   // from aclrtMalloc (else a host buffer registered for one launch)
    bool live = false;
};

// The device heap: one PROT_NONE reservation, bump-allocated in whole pages.
struct DeviceHeap {
    uint8_t *base = nullptr;
    size_t reserved = 0;
    size_t used = 0;            // high-water mark of the bump allocator
    int open_depth = 0;         // > 0 while a kernel or aclrtMemcpy may touch the heap
    static constexpr size_t kMaxRanges = 4096;
    GmRange ranges[kMaxRanges];
    size_t n_ranges = 0;
    struct sigaction previous;
    bool handler_installed = false;
    uint64_t blocking_calls = 0;   // aclrtMemcpy and aclrtSynchronizeStream calls: the host waits on each
};

inline DeviceHeap g_heap;

inline size_t PageBytes() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// What aclrtMalloc really hands out for `size` bytes: the size rounded up to 32 bytes plus 32 more (CANN
// aclrtMalloc documentation). A kernel may touch those bytes on a chip, so the GM bounds are these.
inline size_t AclAllocBytes(size_t size) { return (size + 31) / 32 * 32 + 32; }

inline const GmRange *FindRange(const void *p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (size_t i = g_heap.n_ranges; i-- > 0;) {   // newest first: scoped host buffers sit at the end
        const GmRange &r = g_heap.ranges[i];
        if (r.live && a >= r.base && a < r.base + (r.bytes ? r.bytes : 1)) {
            return &r;
        }
    }
    return nullptr;
}

inline void WriteStderr(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        const ssize_t w = write(2, s, n);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= static_cast<size_t>(w);
    }
}

// Async-signal-safe: formats with snprintf into a stack buffer (no allocation), writes with write(2).
inline void OnSegv(int sig, siginfo_t *info, void *ctx) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    const uintptr_t lo = reinterpret_cast<uintptr_t>(g_heap.base);
    if (g_heap.base != nullptr && a >= lo && a < lo + g_heap.reserved) {
        char msg[512];
        const GmRange *r = FindRange(info->si_addr);
        if (r != nullptr) {
            snprintf(msg, sizeof msg,
                     "ascendc-emu: host code touched device memory at %p, byte %zu of a %zu-byte aclrtMalloc "
                     "allocation: on a card this faults or corrupts; copy with aclrtMemcpy or run a kernel\n",
                     info->si_addr, static_cast<size_t>(a - r->base), r->bytes);
        } else {
            snprintf(msg, sizeof msg,
                     "ascendc-emu: host code touched device memory at %p (device heap offset %zu, no live "
                     "allocation): on a card this faults or corrupts\n",
                     info->si_addr, static_cast<size_t>(a - lo));
        }
        WriteStderr(msg);
    }
    // Hand the fault on: the previous handler runs when the instruction faults again.
    sigaction(SIGSEGV, &g_heap.previous, nullptr);
    (void)sig;
    (void)ctx;
}

inline bool ReserveHeap() {
    if (g_heap.base != nullptr) {
        return true;
    }
    // Address space only (MAP_NORESERVE, PROT_NONE): pages cost memory once a copy or kernel writes them.
    size_t bytes = static_cast<size_t>(64) << 30;
    if (const char *env = getenv("LLMC_ASCENDC_DEVICE_GIB")) {
        bytes = static_cast<size_t>(strtoull(env, nullptr, 10)) << 30;
    }
    void *p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return false;
    }
    g_heap.base = static_cast<uint8_t *>(p);
    g_heap.reserved = bytes;
    if (!g_heap.handler_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = OnSegv;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        g_heap.handler_installed = sigaction(SIGSEGV, &sa, &g_heap.previous) == 0;
    }
    return true;
}

// Makes the used part of the heap reachable (a kernel runs, or aclrtMemcpy copies) or hides it again.
inline void OpenDevice() {
    if (g_heap.open_depth++ == 0 && g_heap.used > 0) {
        mprotect(g_heap.base, g_heap.used, PROT_READ | PROT_WRITE);
    }
}
inline void CloseDevice() {
    if (--g_heap.open_depth == 0 && g_heap.used > 0) {
        mprotect(g_heap.base, g_heap.used, PROT_NONE);
    }
}

inline GmRange *AddRange(uintptr_t base, size_t bytes, bool device) {
    for (size_t i = 0; i < g_heap.n_ranges; ++i) {
        if (!g_heap.ranges[i].live) {
            g_heap.ranges[i] = GmRange{base, bytes, device, true};
            return &g_heap.ranges[i];
        }
    }
    if (g_heap.n_ranges == DeviceHeap::kMaxRanges) {
        return nullptr;
    }
    g_heap.ranges[g_heap.n_ranges] = GmRange{base, bytes, device, true};
    return &g_heap.ranges[g_heap.n_ranges++];
}

// Host buffers a single-kernel launch passes as GM (runtime/ascendc/launch.py), known for its duration
// with the size aclrtMalloc would give them on a board (the launcher allocates them that large).
class GmScope {
public:
    GmScope(const void *const *ptrs, const size_t *bytes, int n) : n_(n) {
        for (int i = 0; i < n && i < 16; ++i) {
            ranges_[i] = AddRange(reinterpret_cast<uintptr_t>(ptrs[i]), AclAllocBytes(bytes[i]), false);
        }
    }
    ~GmScope() {
        for (int i = 0; i < n_ && i < 16; ++i) {
            if (ranges_[i] != nullptr) {
                ranges_[i]->live = false;
            }
        }
    }
    GmScope(const GmScope &) = delete;
    GmScope &operator=(const GmScope &) = delete;

private:
    GmRange *ranges_[16] = {nullptr};
    int n_;
};

}  // namespace ascendc_emu

// ---- the emulated ACL runtime subset (names and meanings of CANN's acl/acl_rt.h) ----
#ifndef LLMC_ASCEND_REAL
typedef int aclError;
typedef void *aclrtStream;
constexpr aclError ACL_SUCCESS = 0;
constexpr aclError ACL_ERROR_BAD_ALLOC = 200000;
constexpr aclError ACL_ERROR_INVALID_PARAM = 100000;
enum aclrtMemMallocPolicy { ACL_MEM_MALLOC_HUGE_FIRST = 0, ACL_MEM_MALLOC_HUGE_ONLY, ACL_MEM_MALLOC_NORMAL_ONLY };
enum aclrtMemcpyKind {
    ACL_MEMCPY_HOST_TO_HOST = 0,
    ACL_MEMCPY_HOST_TO_DEVICE,
    ACL_MEMCPY_DEVICE_TO_HOST,
    ACL_MEMCPY_DEVICE_TO_DEVICE,
};

inline aclError aclrtMalloc(void **dev, size_t size, aclrtMemMallocPolicy) {
    using namespace ascendc_emu;
    if (dev == nullptr || !ReserveHeap()) {
        return ACL_ERROR_BAD_ALLOC;
    }
    const size_t page = PageBytes();
    const size_t real = AclAllocBytes(size);
    const size_t rounded = (real + page - 1) / page * page;
    if (size == 0 || g_heap.used + rounded > g_heap.reserved) {
        return ACL_ERROR_BAD_ALLOC;
    }
    uint8_t *p = g_heap.base + g_heap.used;
    if (AddRange(reinterpret_cast<uintptr_t>(p), real, true) == nullptr) {
        return ACL_ERROR_BAD_ALLOC;
    }
    g_heap.used += rounded;
    if (g_heap.open_depth > 0) {
        mprotect(p, rounded, PROT_READ | PROT_WRITE);
    }
    *dev = p;
    return ACL_SUCCESS;
}

inline aclError aclrtFree(void *dev) {
    using namespace ascendc_emu;
    for (size_t i = 0; i < g_heap.n_ranges; ++i) {
        GmRange &r = g_heap.ranges[i];
        if (r.live && r.device && r.base == reinterpret_cast<uintptr_t>(dev)) {
            r.live = false;
            const size_t page = PageBytes();
            const size_t rounded = (r.bytes + page - 1) / page * page;
            madvise(dev, rounded, MADV_DONTNEED);   // give the pages back; the range stays reserved
            if (reinterpret_cast<uint8_t *>(dev) + rounded == g_heap.base + g_heap.used) {
                g_heap.used -= rounded;             // the newest allocation: the bump pointer steps back
            }
            return ACL_SUCCESS;
        }
    }
    return ACL_ERROR_INVALID_PARAM;
}

namespace ascendc_emu {
// A copy through the device window after checking that each side is where `kind` says it is (device
// memory = a live allocation holding the whole copy).
inline aclError CheckedCopy(void *dst, size_t dst_max, const void *src, size_t count, aclrtMemcpyKind kind,
                            const char *api) {
    if (count > dst_max) {
        return ACL_ERROR_INVALID_PARAM;
    }
    auto on_device = [](const void *p, size_t n) {
        const GmRange *r = FindRange(p);
        return r != nullptr && r->device && reinterpret_cast<uintptr_t>(p) + n <= r->base + r->bytes;
    };
    const bool dst_dev = kind == ACL_MEMCPY_HOST_TO_DEVICE || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    const bool src_dev = kind == ACL_MEMCPY_DEVICE_TO_HOST || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    if (dst_dev != on_device(dst, count) || src_dev != on_device(src, count)) {
        char msg[256];
        snprintf(msg, sizeof msg, "ascendc-emu: %s of %zu bytes: kind %d does not match where dst %p and src %p are\n",
                 api, count, static_cast<int>(kind), dst, src);
        WriteStderr(msg);
        return ACL_ERROR_INVALID_PARAM;
    }
    if (count == 0 || dst == src) {
        return ACL_SUCCESS;
    }
    OpenDevice();
    memmove(dst, src, count);
    CloseDevice();
    return ACL_SUCCESS;
}
}  // namespace ascendc_emu

// Blocking: the host waits for the copy (a blocking call for the cost model).
inline aclError aclrtMemcpy(void *dst, size_t dst_max, const void *src, size_t count, aclrtMemcpyKind kind) {
    ++ascendc_emu::g_heap.blocking_calls;
    return ascendc_emu::CheckedCopy(dst, dst_max, src, count, kind, "aclrtMemcpy");
}

// Queued on the stream on a board; here launches and copies run at once, so it copies now (not blocking:
// the aclrtSynchronizeStream that a board needs before touching the host side is what waits).
inline aclError aclrtMemcpyAsync(void *dst, size_t dst_max, const void *src, size_t count, aclrtMemcpyKind kind,
                                 aclrtStream) {
    return ascendc_emu::CheckedCopy(dst, dst_max, src, count, kind, "aclrtMemcpyAsync");
}

// Launches run synchronously here, so a stream is a token; a sync still counts as a blocking call.
inline aclError aclrtCreateStream(aclrtStream *stream) {
    static int token;
    *stream = &token;
    return ACL_SUCCESS;
}
inline aclError aclrtDestroyStream(aclrtStream) { return ACL_SUCCESS; }
inline aclError aclrtSynchronizeStream(aclrtStream) {
    ++ascendc_emu::g_heap.blocking_calls;
    return ACL_SUCCESS;
}

// For the cost model: blocking host calls since the last reset.
extern "C" __attribute__((used, visibility("default"))) inline uint64_t ascendc_emu_blocking_calls(int reset) {
    const uint64_t n = ascendc_emu::g_heap.blocking_calls;
    if (reset) {
        ascendc_emu::g_heap.blocking_calls = 0;
    }
    return n;
}
#endif  // !LLMC_ASCEND_REAL

#endif  // LLMC_ASCENDC_EMU_DEVICE_H
