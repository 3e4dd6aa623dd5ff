/* See llmc_runtime.h. */
#include "llmc_runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "llmc_common.h"
#include "llmc_kernels.h"

int llmc_fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* Zeroes p[0, bytes). On Linux the whole pages inside are handed back with madvise(MADV_DONTNEED) instead
 * of written: the kernel maps zero pages on first touch, so a KV cache sized for n_ctx costs resident
 * memory only for the positions actually used (llama.cpp clears its cache, which makes all of it
 * resident). Only the partial pages at either end are written. */
static void zero_lazily(uint8_t *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_DONTNEED)
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && bytes >= 4 * (size_t)page) {
        uintptr_t first = ((uintptr_t)p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
        uintptr_t last = ((uintptr_t)p + bytes) / (uintptr_t)page * (uintptr_t)page;
        if (madvise((void *)first, last - first, MADV_DONTNEED) == 0) {
            memset(p, 0, first - (uintptr_t)p);
            memset((void *)last, 0, (uintptr_t)p + bytes - last);
            return;
        }
    }
#endif
    memset(p, 0, bytes);
}

void *llmc_aligned_alloc(size_t bytes)
{
    size_t rounded = (bytes + LLMC_ALIGN - 1) / LLMC_ALIGN * LLMC_ALIGN;
    void *p = aligned_alloc(LLMC_ALIGN, rounded ? rounded : LLMC_ALIGN);
    if (p) zero_lazily(p, rounded);
    return p;
}

/* The weight types the kernels handle. */
static int supported_type(int type)
{
    switch (type) {
#define CASE(id, name) case id:
    LLMC_FOR_TYPES(CASE)
#undef CASE
        return 1;
    default: return 0;
    }
}

static void format_ne(char *buf, size_t len, int n_dims, const int64_t *ne)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n_dims && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

int llmc_bind_weight(const llmc_gguf *g, const char *name, const char *fallback, int optional, int kind,
                     int want_type, int n_dims, const int64_t *ne, llmc_weight *out, char *err, size_t err_len)
{
    const llmc_gguf_tensor *t = llmc_gguf_find_tensor(g, name);
    if (!t && fallback) t = llmc_gguf_find_tensor(g, fallback);
    if (!t) {
        out->data = NULL;
        out->type = -1;
        out->name = name;
        return optional ? 1 : llmc_fail(err, err_len, "the GGUF file has no tensor '%s'", name);
    }
    char want[96], have[96];
    format_ne(want, sizeof want, n_dims, ne);
    format_ne(have, sizeof have, (int)t->n_dims, t->ne);
    int same = (int)t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = t->ne[i] == ne[i];
    if (!same)
        return llmc_fail(err, err_len, "tensor '%s' (data at byte %llu) has ne %s, the model expects %s", t->name,
                         (unsigned long long)t->offset, have, want);
    if (!supported_type((int)t->type) || (kind == LLMC_WEIGHT_F32 && t->type != 0))
        return llmc_fail(err, err_len, "tensor '%s' (data at byte %llu) has type %s, which this use does not take (%s)",
                         t->name, (unsigned long long)t->offset, llmc_gguf_type_name((int)t->type),
                         kind == LLMC_WEIGHT_F32 ? "F32 only" : LLMC_WEIGHT_TYPE_NAMES);
    if (want_type >= 0 && (int)t->type != want_type)
        return llmc_fail(err, err_len, "tensor '%s' has type %s but this artifact was specialized for %s; "
                         "compile a generic artifact or specialize it for this file", t->name,
                         llmc_gguf_type_name((int)t->type), llmc_gguf_type_name(want_type));
    out->data = t->data;
    out->type = (int)t->type;
    out->name = t->name;
    return 1;
}

size_t llmc_max_scratch_bytes(const llmc_gguf *g, int n_batch)
{
    /* the widest activation format is 4 bytes per element (f16/bf16 kept as f32), plus block headers */
    int64_t widest = 0;
    for (int i = 0; i < llmc_gguf_n_tensors(g); i++) {
        const llmc_gguf_tensor *t = llmc_gguf_tensor_at(g, i);
        if (t->ne[0] > widest) widest = t->ne[0];
    }
    return (size_t)widest * (size_t)n_batch * 4 + 4096;
}

void llmc_matmul_any(int type, llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                     int n_tokens, void *scratch)
{
    switch (type) {
#define CASE(id, name) case id: llmc_matmul_##name(th, y, w, x, n_in, n_out, n_tokens, scratch); return;
    LLMC_FOR_TYPES(CASE)
#undef CASE
    default: abort();   /* unreachable: llmc_bind_weight refused the type */
    }
}

void llmc_matmul_group_any(llmc_threads *th, int n, const int *types, float *const *ys, const void *const *ws,
                           const int *n_outs, const float *x, int n_in, int n_tokens, void *scratch)
{
    int same = 1;
    for (int i = 1; i < n; i++) same = same && types[i] == types[0];
    if (!same) {
        for (int i = 0; i < n; i++) llmc_matmul_any(types[i], th, ys[i], ws[i], x, n_in, n_outs[i], n_tokens, scratch);
        return;
    }
    switch (types[0]) {
#define CASE(id, name) case id: llmc_matmul_##name##_group(th, n, ys, ws, n_outs, x, n_in, n_tokens, scratch); return;
    LLMC_FOR_TYPES(CASE)
#undef CASE
    default: abort();
    }
}

void llmc_embed_any(int type, float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd)
{
    switch (type) {
#define CASE(id, name) case id: llmc_embed_##name(y, table, tokens, n_tokens, n_embd); return;
    LLMC_FOR_TYPES(CASE)
#undef CASE
    default: abort();
    }
}

void llmc_moe_matmul_any(int type, llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                         void *scratch)
{
    switch (type) {
#define CASE(id, name) case id: llmc_moe_matmul_##name(th, y, w, x, x_per_slot, sel, bias, n_in, n_out, n_tokens, k, scratch); return;
    LLMC_FOR_TYPES(CASE)
#undef CASE
    default: abort();
    }
}

int llmc_place_by_type(char **notes, const char *what, const char *device, const char *fallback, const char *reason,
                       const llmc_weight *ws, int n, const int *allowed, unsigned char *on_device)
{
    int there = 0;
    char types[256] = "";
    for (int i = 0; i < n; i++) {
        int ok = ws[i].data == NULL;
        for (const int *a = allowed; *a >= 0 && !ok; a++) ok = *a == ws[i].type;
        on_device[i] = (unsigned char)ok;
        there += ok;
        if (!ok) {
            const char *name = llmc_gguf_type_name(ws[i].type);
            if (!strstr(types, name)) {
                size_t used = strlen(types);
                snprintf(types + used, sizeof types - used, "%s%s", used ? "/" : "", name);
            }
        }
    }
    size_t old = *notes ? strlen(*notes) : 0;
    size_t add = strlen(what) + strlen(device) + strlen(fallback) + strlen(types) + strlen(reason) + 64;
    char *grown = realloc(*notes, old + add);
    if (!grown) return 0;
    snprintf(grown + old, add, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", what, device, there, fallback, n - there, types,
             there < n ? reason : "");
    *notes = grown;
    return 1;
}

int llmc_all_set(const unsigned char *flags, int n)
{
    for (int i = 0; i < n; i++)
        if (!flags[i]) return 0;
    return 1;
}
