/* llmc_gguf: a checked, read-only GGUF v2/v3 reader. See llmc_gguf.h.
 *
 * File layout (all little-endian):
 *   header       "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   metadata     n_kv x (string key | u32 value type | value)
 *   tensor infos n_tensors x (string name | u32 n_dims | n_dims x u64 ne | u32 ggml type | u64 offset)
 *   padding      up to general.alignment (default 32)
 *   data         each tensor at data start + offset
 * A string is u64 length + bytes (no NUL); an array is u32 element type + u64 count + elements.
 *
 * The parser reads the mapping through one cursor (`reader`) whose take() refuses to step past the
 * end, so no length from the file is trusted before it is compared with the bytes that remain.
 */
#include "llmc_gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "llmc_gguf reads little-endian GGUF files with memcpy and needs a little-endian host"
#endif

/* Sane caps on values read from the file, on top of "fits in the bytes that remain". */
#define MAX_KEY_LEN 65535u
#define MAX_NAME_LEN 1024u            /* llama.cpp allows 63; leave room for other writers */
#define MAX_ARRAY_DEPTH 4              /* arrays of arrays of ... */
#define MAX_COUNT (1u << 24)           /* tensors or metadata entries */
#define MAX_ALIGNMENT (1u << 20)
#define DEFAULT_ALIGNMENT 32u
#define MIN_KV_BYTES 13u               /* u64 key length + u32 type + 1-byte value */
#define MIN_TENSOR_INFO_BYTES 24u      /* u64 name length + u32 n_dims + u32 type + u64 offset */

/* ---- ggml tensor types -------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    uint32_t block_size;   /* elements per block */
    uint32_t block_bytes;  /* bytes per block */
} type_info;

/* Block sizes as in ggml's type traits (and gguf-py's GGML_QUANT_SIZES). */
static const type_info TYPES[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 40},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static const type_info *find_type(uint64_t type) {
    return type < N_TYPES && TYPES[type].name ? &TYPES[type] : NULL;
}

const char *llmc_gguf_type_name(int type) {
    const type_info *t = type >= 0 ? find_type((uint64_t)type) : NULL;
    return t ? t->name : "?";
}

size_t llmc_gguf_type_block_size(int type) {
    const type_info *t = type >= 0 ? find_type((uint64_t)type) : NULL;
    return t ? t->block_size : 0;
}

size_t llmc_gguf_type_block_bytes(int type) {
    const type_info *t = type >= 0 ? find_type((uint64_t)type) : NULL;
    return t ? t->block_bytes : 0;
}

/* ---- metadata value types ----------------------------------------------------------------------- */

enum {
    V_U8, V_I8, V_U16, V_I16, V_U32, V_I32, V_F32, V_BOOL, V_STR, V_ARR, V_U64, V_I64, V_F64, N_VALUE_TYPES
};

static const char *const VALUE_TYPE_NAMES[N_VALUE_TYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

/* Bytes of a scalar value; 0 for string and array. */
static size_t scalar_size(uint32_t vt) {
    static const uint8_t SIZES[N_VALUE_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return vt < N_VALUE_TYPES ? SIZES[vt] : 0;
}

/* ---- the opened file ---------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *key;     /* into the mapping, not NUL-terminated */
    size_t key_len;
    uint32_t type;
    const uint8_t *value;   /* scalar: its bytes; string: its characters; array: its element type */
    size_t len;             /* bytes at value: the scalar's size, the string's length, the whole array */
} kv_entry;

/* Open-addressing hash: slot -> entry index, -1 when empty. */
typedef struct {
    int32_t *slots;
    size_t mask;
} index_table;

struct llmc_gguf {
    const uint8_t *map;
    size_t size;
    kv_entry *kvs;
    size_t n_kv;
    llmc_gguf_tensor *tensors;
    size_t n_tensors;
    char *names;            /* NUL-terminated tensor names, back to back */
    index_table kv_index;
    index_table tensor_index;
};

/* ---- the cursor and its error messages ---------------------------------------------------------- */

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *path;
    char ctx[320];          /* what is being parsed, e.g. "tensor 'x' (info at byte 123)" */
    char *err;
    size_t err_len;
} reader;

static size_t remaining(const reader *r) { return r->size - r->pos; }

static bool fail(reader *r, const char *fmt, ...) {
    if (!r->err || r->err_len == 0)
        return false;
    int n = snprintf(r->err, r->err_len, "%s: %s%s", r->path, r->ctx, r->ctx[0] ? ": " : "");
    if (n >= 0 && (size_t)n < r->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->err_len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* A name from the file, fit for a message: at most 96 bytes, unprintable bytes shown as '?'. */
typedef struct {
    char text[100];
} shown_name;

static const char *printable(shown_name *dst, const uint8_t *s, size_t n) {
    size_t keep = n < 96 ? n : 96;
    for (size_t i = 0; i < keep; i++)
        dst->text[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    strcpy(dst->text + keep, keep < n ? "..." : "");
    return dst->text;
}

static void set_ctx(reader *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->ctx, sizeof r->ctx, fmt, ap);
    va_end(ap);
}

/* Returns n bytes at the cursor and advances, or NULL (with an error) if the file ends first. */
static const uint8_t *take(reader *r, uint64_t n, const char *what) {
    if (n > remaining(r)) {
        fail(r, "truncated: %s at byte %zu needs %" PRIu64 " bytes, but the file ends %zu bytes later "
                "(file is %zu bytes)", what, r->pos, n, remaining(r), r->size);
        return NULL;
    }
    const uint8_t *p = r->base + r->pos;
    r->pos += (size_t)n;
    return p;
}

static bool read_u32(reader *r, uint32_t *out, const char *what) {
    const uint8_t *p = take(r, 4, what);
    if (p)
        memcpy(out, p, 4);
    return p != NULL;
}

static bool read_u64(reader *r, uint64_t *out, const char *what) {
    const uint8_t *p = take(r, 8, what);
    if (p)
        memcpy(out, p, 8);
    return p != NULL;
}

/* A u64 length and that many bytes; max_len 0 means "whatever fits in the file". */
static bool read_string(reader *r, const char *what, uint64_t max_len, const uint8_t **s, size_t *len) {
    size_t at = r->pos;
    uint64_t n;
    if (!read_u64(r, &n, what))
        return false;
    if (max_len && n > max_len)
        return fail(r, "%s length %" PRIu64 " at byte %zu is over the limit of %" PRIu64 " bytes",
                    what, n, at, max_len);
    if (n > remaining(r))
        return fail(r, "%s length %" PRIu64 " at byte %zu runs past the end of the file "
                       "(%zu bytes left, file is %zu bytes)", what, n, at, remaining(r), r->size);
    *s = take(r, n, what);
    *len = (size_t)n;
    return true;
}

/* Reads one metadata value of type vt and fills the entry's value/len. Arrays are walked (every element
 * is bounds-checked) but not indexed: the accessors only return scalars and strings. */
static bool read_value(reader *r, uint32_t vt, int depth, kv_entry *kv) {
    if (vt >= N_VALUE_TYPES)
        return fail(r, "unknown value type %" PRIu32 " at byte %zu", vt, r->pos - 4);
    if (vt == V_STR)
        return read_string(r, "string", 0, &kv->value, &kv->len);
    if (vt != V_ARR) {
        kv->len = scalar_size(vt);
        kv->value = take(r, kv->len, VALUE_TYPE_NAMES[vt]);
        return kv->value != NULL;
    }

    if (depth >= MAX_ARRAY_DEPTH)
        return fail(r, "arrays nested deeper than %d at byte %zu", MAX_ARRAY_DEPTH, r->pos);
    size_t at = r->pos;
    uint32_t elem;
    uint64_t count;
    if (!read_u32(r, &elem, "array element type") || !read_u64(r, &count, "array count"))
        return false;
    if (elem >= N_VALUE_TYPES)
        return fail(r, "unknown array element type %" PRIu32 " at byte %zu", elem, at);
    kv->value = r->base + at;
    /* Smallest possible element: a scalar's size, a string's length, an array's type and count. */
    size_t min_elem = elem == V_STR ? 8 : elem == V_ARR ? 12 : scalar_size(elem);
    if (count > remaining(r) / min_elem)
        return fail(r, "array of %" PRIu64 " %s elements at byte %zu needs at least %" PRIu64 " bytes each, "
                       "but only %zu bytes remain in the file", count, VALUE_TYPE_NAMES[elem], at,
                    (uint64_t)min_elem, remaining(r));
    if (elem != V_STR && elem != V_ARR) {
        if (!take(r, count * min_elem, "array"))
            return false;
    } else {
        for (uint64_t i = 0; i < count; i++) {
            kv_entry inner;
            if (!read_value(r, elem, depth + 1, &inner))
                return false;
        }
    }
    kv->len = r->pos - at;
    return true;
}

/* ---- hash index --------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325u;  /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return h;
}

static bool index_init(index_table *t, size_t n) {
    size_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    t->slots = malloc(cap * sizeof *t->slots);
    t->mask = cap - 1;
    if (t->slots)
        memset(t->slots, 0xff, cap * sizeof *t->slots);  /* all -1 */
    return t->slots != NULL;
}

/* The slot holding the key, or the empty slot where it would go. */
static size_t kv_slot(const llmc_gguf *g, const void *key, size_t len) {
    const index_table *t = &g->kv_index;
    size_t s = (size_t)hash_bytes(key, len) & t->mask;
    for (int32_t i; (i = t->slots[s]) >= 0; s = (s + 1) & t->mask) {
        if (g->kvs[i].key_len == len && memcmp(g->kvs[i].key, key, len) == 0)
            break;
    }
    return s;
}

static size_t tensor_slot(const llmc_gguf *g, const char *name, size_t len) {
    const index_table *t = &g->tensor_index;
    size_t s = (size_t)hash_bytes(name, len) & t->mask;
    for (int32_t i; (i = t->slots[s]) >= 0; s = (s + 1) & t->mask) {
        const char *other = g->tensors[i].name;
        if (strncmp(other, name, len) == 0 && other[len] == '\0')
            break;
    }
    return s;
}

static const kv_entry *find_kv(const llmc_gguf *g, const char *key);

/* ---- parsing ------------------------------------------------------------------------------------ */

static bool parse_header(reader *r, uint64_t *n_tensors, uint64_t *n_kv) {
    set_ctx(r, "header");
    const uint8_t *magic = take(r, 4, "magic");
    if (!magic)
        return false;
    if (memcmp(magic, "GGUF", 4) != 0)
        return fail(r, "bad magic %02x %02x %02x %02x at byte 0 (expected \"GGUF\"): not a GGUF file",
                    magic[0], magic[1], magic[2], magic[3]);
    uint32_t version;
    if (!read_u32(r, &version, "version"))
        return false;
    if (version == 1)
        return fail(r, "GGUF version 1 is not supported (only 2 and 3)");
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 24 == 2 || version >> 24 == 3))
            return fail(r, "big-endian GGUF files are not supported (version bytes at byte 4)");
        return fail(r, "unsupported GGUF version %" PRIu32 " at byte 4 (supported: 2, 3)", version);
    }
    if (!read_u64(r, n_tensors, "tensor count") || !read_u64(r, n_kv, "metadata count"))
        return false;
    if (*n_kv > MAX_COUNT || *n_kv > remaining(r) / MIN_KV_BYTES)
        return fail(r, "metadata count %" PRIu64 " at byte 16 is impossible: each entry needs at least "
                       "%u bytes and only %zu remain", *n_kv, MIN_KV_BYTES, remaining(r));
    if (*n_tensors > MAX_COUNT || *n_tensors > remaining(r) / MIN_TENSOR_INFO_BYTES)
        return fail(r, "tensor count %" PRIu64 " at byte 8 is impossible: each tensor info needs at least "
                       "%u bytes and only %zu remain", *n_tensors, MIN_TENSOR_INFO_BYTES, remaining(r));
    return true;
}

static bool parse_metadata(reader *r, llmc_gguf *g) {
    shown_name name;
    for (size_t i = 0; i < g->n_kv; i++) {
        kv_entry *kv = &g->kvs[i];
        set_ctx(r, "metadata entry #%zu (at byte %zu)", i, r->pos);
        size_t at = r->pos;
        if (!read_string(r, "key", MAX_KEY_LEN, &kv->key, &kv->key_len))
            return false;
        set_ctx(r, "metadata key '%s' (at byte %zu)", printable(&name, kv->key, kv->key_len), at);
        if (!read_u32(r, &kv->type, "value type") || !read_value(r, kv->type, 0, kv))
            return false;
        size_t slot = kv_slot(g, kv->key, kv->key_len);
        if (g->kv_index.slots[slot] >= 0)
            return fail(r, "duplicate metadata key");
        g->kv_index.slots[slot] = (int32_t)i;
    }
    return true;
}

/* general.alignment: optional, default 32, a power of two. */
static bool parse_alignment(reader *r, const llmc_gguf *g, size_t *alignment) {
    *alignment = DEFAULT_ALIGNMENT;
    const kv_entry *kv = find_kv(g, "general.alignment");
    if (!kv)
        return true;
    set_ctx(r, "metadata key 'general.alignment' (at byte %zu)", (size_t)(kv->key - r->base) - 8);
    int64_t a;
    if (llmc_gguf_get_i64(g, "general.alignment", &a) != LLMC_GGUF_OK)
        return fail(r, "must be an integer");
    if (a <= 0 || a > MAX_ALIGNMENT || (a & (a - 1)) != 0)
        return fail(r, "%" PRId64 " is not a power of two between 1 and %u", a, MAX_ALIGNMENT);
    *alignment = (size_t)a;
    return true;
}

static void format_ne(char *dst, size_t cap, const int64_t *ne, int n_dims) {
    int n = snprintf(dst, cap, "[");
    for (int j = 0; j < n_dims && n >= 0 && (size_t)n < cap; j++)
        n += snprintf(dst + n, cap - (size_t)n, "%s%" PRId64, j ? ", " : "", ne[j]);
    if (n >= 0 && (size_t)n < cap)
        snprintf(dst + n, cap - (size_t)n, "]");
}

/* One tensor info: name, shape and type are checked here; the data range once the data start is known. */
static bool parse_tensor_info(reader *r, size_t index, llmc_gguf_tensor *t, const uint8_t **name,
                              size_t *name_len, size_t alignment) {
    size_t at = r->pos;
    shown_name shown;
    char ne_text[128];
    set_ctx(r, "tensor info #%zu (at byte %zu)", index, at);
    if (!read_string(r, "tensor name", MAX_NAME_LEN, name, name_len))
        return false;
    set_ctx(r, "tensor '%s' (info at byte %zu)", printable(&shown, *name, *name_len), at);
    if (memchr(*name, 0, *name_len))
        return fail(r, "name contains a NUL byte");

    uint32_t n_dims, type;
    size_t dims_at = r->pos;
    if (!read_u32(r, &n_dims, "n_dims"))
        return false;
    if (n_dims > LLMC_GGUF_MAX_DIMS)
        return fail(r, "n_dims = %" PRIu32 " at byte %zu, more than the maximum of %d",
                    n_dims, dims_at, LLMC_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int j = 0; j < LLMC_GGUF_MAX_DIMS; j++) {
        uint64_t ne = 1;
        if ((uint32_t)j < n_dims && !read_u64(r, &ne, "ne"))
            return false;
        if (ne > INT64_MAX)
            return fail(r, "ne[%d] = %" PRId64 " at byte %zu is negative", j, (int64_t)ne, r->pos - 8);
        t->ne[j] = (int64_t)ne;
    }
    size_t type_at = r->pos;
    if (!read_u32(r, &type, "type") || !read_u64(r, &t->offset, "data offset"))
        return false;
    const type_info *ti = find_type(type);
    if (!ti)
        return fail(r, "unknown ggml type id %" PRIu32 " at byte %zu", type, type_at);
    t->type = (int)type;

    /* Element count and byte size, refusing any product that overflows. */
    format_ne(ne_text, sizeof ne_text, t->ne, t->n_dims);
    uint64_t elements = 1;
    for (int j = 0; j < LLMC_GGUF_MAX_DIMS; j++) {
        uint64_t ne = (uint64_t)t->ne[j];
        if (ne != 0 && elements > (uint64_t)INT64_MAX / ne)
            return fail(r, "element count of ne = %s overflows 64 bits", ne_text);
        elements *= ne;
    }
    if ((uint64_t)t->ne[0] % ti->block_size != 0)
        return fail(r, "ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRIu32,
                    t->ne[0], ti->name, ti->block_size);
    uint64_t bytes = elements / ti->block_size;
    if (bytes > SIZE_MAX / ti->block_bytes)
        return fail(r, "byte size of %s %s overflows", ti->name, ne_text);
    t->nbytes = (size_t)(bytes * ti->block_bytes);
    if (t->offset % alignment != 0)
        return fail(r, "data offset %" PRIu64 " (relative to the data section) is not a multiple of "
                       "the alignment %zu", t->offset, alignment);
    return true;
}

/* The tensor's data must lie inside the file: data_start + offset + nbytes <= size. */
static bool check_data_range(reader *r, llmc_gguf_tensor *t, size_t data_start) {
    size_t size = r->size;
    if (data_start > size || t->offset > size - data_start || t->nbytes > size - data_start - t->offset) {
        if (t->offset > UINT64_MAX - data_start)
            return fail(r, "data offset %" PRIu64 " (relative to the data section at byte %zu) runs past "
                           "the end of the file (%zu bytes)", t->offset, data_start, r->size);
        return fail(r, "data at offset %" PRIu64 " + %zu bytes runs past the end of the file (%zu bytes)",
                    data_start + t->offset, t->nbytes, r->size);
    }
    t->offset += data_start;
    t->data = r->base + t->offset;
    return true;
}

typedef struct {
    const uint8_t *name;  /* into the mapping */
    size_t name_len;
    size_t info_at;
} name_ref;

static bool parse_tensors(reader *r, llmc_gguf *g, size_t alignment) {
    bool ok = false;
    shown_name shown;
    name_ref *names = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *names);
    if (!names)
        return fail(r, "out of memory");
    size_t names_bytes = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        names[i].info_at = r->pos;
        if (!parse_tensor_info(r, i, &g->tensors[i], &names[i].name, &names[i].name_len, alignment))
            goto done;
        names_bytes += names[i].name_len + 1;
    }

    /* The data section starts at the next multiple of the alignment after the tensor infos. */
    size_t data_start = r->pos;
    if (data_start % alignment)
        data_start += alignment - data_start % alignment;

    g->names = malloc(names_bytes ? names_bytes : 1);
    if (!g->names) {
        fail(r, "out of memory");
        goto done;
    }
    char *dst = g->names;
    for (size_t i = 0; i < g->n_tensors; i++) {
        llmc_gguf_tensor *t = &g->tensors[i];
        set_ctx(r, "tensor '%s' (info at byte %zu)",
                printable(&shown, names[i].name, names[i].name_len), names[i].info_at);
        if (!check_data_range(r, t, data_start))
            goto done;
        memcpy(dst, names[i].name, names[i].name_len);
        dst[names[i].name_len] = '\0';
        t->name = dst;
        dst += names[i].name_len + 1;
        size_t slot = tensor_slot(g, t->name, names[i].name_len);
        if (g->tensor_index.slots[slot] >= 0) {
            size_t first = names[g->tensor_index.slots[slot]].info_at;
            fail(r, "duplicate tensor name (first at info byte %zu)", first);
            goto done;
        }
        g->tensor_index.slots[slot] = (int32_t)i;
    }
    ok = true;
done:
    free(names);
    return ok;
}

static bool parse(reader *r, llmc_gguf *g) {
    uint64_t n_tensors = 0, n_kv = 0;   /* set by parse_header; zero keeps -O3 -Wmaybe-uninitialized quiet */
    if (!parse_header(r, &n_tensors, &n_kv))
        return false;
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;
    g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors || !index_init(&g->kv_index, g->n_kv)
        || !index_init(&g->tensor_index, g->n_tensors))
        return fail(r, "out of memory");
    size_t alignment;
    return parse_metadata(r, g) && parse_alignment(r, g, &alignment) && parse_tensors(r, g, alignment);
}

/* ---- mapping the file -------------------------------------------------------------------------- */

/* Maps the whole file read-only. Built with -DLLMC_GGUF_NO_MMAP it reads the file into a malloc'd
 * buffer of exactly its size instead: for targets without mmap, and for the sanitizer tests, where a
 * read one byte past the end must hit a heap redzone rather than the rest of the last page. */
static const uint8_t *map_file(reader *r, int fd, size_t size) {
#ifdef LLMC_GGUF_NO_MMAP
    uint8_t *buf = malloc(size);
    if (!buf) {
        fail(r, "out of memory reading %zu bytes", size);
        return NULL;
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            fail(r, "cannot read byte %zu: %s", done, n == 0 ? "file shrank while reading" : strerror(errno));
            free(buf);
            return NULL;
        }
        done += n > 0 ? (size_t)n : 0;
    }
    return buf;
#else
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        fail(r, "cannot mmap %zu bytes: %s", size, strerror(errno));
        return NULL;
    }
    return map;
#endif
}

static void unmap_file(const uint8_t *map, size_t size) {
#ifdef LLMC_GGUF_NO_MMAP
    (void)size;
    free((void *)map);
#else
    munmap((void *)map, size);
#endif
}

/* ---- public API --------------------------------------------------------------------------------- */

llmc_gguf *llmc_gguf_open(const char *path, char *err, size_t err_len) {
    reader r = {.path = path, .err = err, .err_len = err_len};
    if (err && err_len)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(&r, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *problem = fstat(fd, &st) != 0 ? "cannot stat"
                          : !S_ISREG(st.st_mode) ? "not a regular file"
                          : st.st_size == 0 ? "empty file, not a GGUF file"
                          : (uint64_t)st.st_size > SIZE_MAX ? "too large to map" : NULL;
    const uint8_t *map = problem ? NULL : map_file(&r, fd, (size_t)st.st_size);
    close(fd);  /* a mapping keeps the file alive */
    if (problem)
        fail(&r, "%s", problem);
    if (!map)
        return NULL;
    llmc_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        unmap_file(map, (size_t)st.st_size);
        fail(&r, "out of memory");
        return NULL;
    }
    g->map = map;
    g->size = (size_t)st.st_size;
    r.base = map;
    r.size = g->size;
    if (!parse(&r, g)) {
        llmc_gguf_close(g);
        return NULL;
    }
    return g;
}

void llmc_gguf_close(llmc_gguf *g) {
    if (!g)
        return;
    if (g->map)
        unmap_file(g->map, g->size);
    free(g->kvs);
    free(g->tensors);
    free(g->names);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g);
}

int llmc_gguf_n_tensors(const llmc_gguf *g) { return (int)g->n_tensors; }

const llmc_gguf_tensor *llmc_gguf_tensor_at(const llmc_gguf *g, int i) {
    return i >= 0 && (size_t)i < g->n_tensors ? &g->tensors[i] : NULL;
}

const llmc_gguf_tensor *llmc_gguf_find_tensor(const llmc_gguf *g, const char *name) {
    int32_t i = g->tensor_index.slots[tensor_slot(g, name, strlen(name))];
    return i >= 0 ? &g->tensors[i] : NULL;
}

static const kv_entry *find_kv(const llmc_gguf *g, const char *key) {
    int32_t i = g->kv_index.slots[kv_slot(g, key, strlen(key))];
    return i >= 0 ? &g->kvs[i] : NULL;
}

int llmc_gguf_has_key(const llmc_gguf *g, const char *key) { return find_kv(g, key) != NULL; }

int llmc_gguf_get_i64(const llmc_gguf *g, const char *key, int64_t *out) {
    const kv_entry *kv = find_kv(g, key);
    if (!kv)
        return LLMC_GGUF_MISSING;
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16;
        uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
    } v = {0};
    bool is_int = kv->type <= V_I32 || kv->type == V_U64 || kv->type == V_I64;
    if (!is_int)
        return LLMC_GGUF_WRONG_TYPE;
    memcpy(&v, kv->value, scalar_size(kv->type));
    switch (kv->type) {
    case V_U8: *out = v.u8; break;
    case V_I8: *out = v.i8; break;
    case V_U16: *out = v.u16; break;
    case V_I16: *out = v.i16; break;
    case V_U32: *out = v.u32; break;
    case V_I32: *out = v.i32; break;
    case V_I64: *out = v.i64; break;
    case V_U64:
        if (v.u64 > INT64_MAX)
            return LLMC_GGUF_RANGE;
        *out = (int64_t)v.u64;
        break;
    }
    return LLMC_GGUF_OK;
}

int llmc_gguf_get_f64(const llmc_gguf *g, const char *key, double *out) {
    const kv_entry *kv = find_kv(g, key);
    if (!kv)
        return LLMC_GGUF_MISSING;
    if (kv->type == V_F32) {
        float f;
        memcpy(&f, kv->value, 4);
        *out = f;
        return LLMC_GGUF_OK;
    }
    if (kv->type == V_F64) {
        memcpy(out, kv->value, 8);
        return LLMC_GGUF_OK;
    }
    if (kv->type == V_U64) {  /* the one integer type outside int64 */
        uint64_t u;
        memcpy(&u, kv->value, 8);
        *out = (double)u;
        return LLMC_GGUF_OK;
    }
    int64_t i;
    int rc = llmc_gguf_get_i64(g, key, &i);
    if (rc == LLMC_GGUF_OK)
        *out = (double)i;
    return rc;
}

int llmc_gguf_get_bool(const llmc_gguf *g, const char *key, int *out) {
    const kv_entry *kv = find_kv(g, key);
    if (!kv)
        return LLMC_GGUF_MISSING;
    if (kv->type != V_BOOL)
        return LLMC_GGUF_WRONG_TYPE;
    *out = kv->value[0] != 0;
    return LLMC_GGUF_OK;
}

int llmc_gguf_get_str(const llmc_gguf *g, const char *key, const char **out, size_t *len) {
    const kv_entry *kv = find_kv(g, key);
    if (!kv)
        return LLMC_GGUF_MISSING;
    if (kv->type != V_STR)
        return LLMC_GGUF_WRONG_TYPE;
    *out = (const char *)kv->value;
    *len = kv->len;
    return LLMC_GGUF_OK;
}

int llmc_gguf_n_kv(const llmc_gguf *g) { return (int)g->n_kv; }

int llmc_gguf_kv_at(const llmc_gguf *g, int i, const char **key, size_t *key_len, int *type, const void **value,
                    size_t *value_len) {
    if (i < 0 || (size_t)i >= g->n_kv)
        return LLMC_GGUF_MISSING;
    const kv_entry *kv = &g->kvs[i];
    *key = (const char *)kv->key;
    *key_len = kv->key_len;
    *type = (int)kv->type;
    *value = kv->value;
    *value_len = kv->len;
    return LLMC_GGUF_OK;
}

int llmc_gguf_string_array_spans(const llmc_gguf *g, int i, uint64_t count, uint64_t *starts, uint64_t *lens) {
    if (i < 0 || (size_t)i >= g->n_kv)
        return LLMC_GGUF_MISSING;
    const kv_entry *kv = &g->kvs[i];
    uint32_t elem;
    uint64_t n;
    if (kv->type != V_ARR)
        return LLMC_GGUF_WRONG_TYPE;
    memcpy(&elem, kv->value, 4);
    memcpy(&n, kv->value + 4, 8);
    if (elem != V_STR || n != count)
        return LLMC_GGUF_WRONG_TYPE;
    /* The parser walked these strings and checked each length against the file; walk them again. */
    size_t at = 12;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        memcpy(&len, kv->value + at, 8);
        starts[j] = at + 8;
        lens[j] = len;
        at += 8 + (size_t)len;
    }
    return LLMC_GGUF_OK;
}
