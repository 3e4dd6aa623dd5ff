/* llmc_gguf: a checked, read-only GGUF v2/v3 reader for the generated C runtime.
 *
 * llmc_gguf_open() maps the file and validates all of it before returning: every length, count,
 * type id, shape, offset and size read from the file is checked against the bytes that are really
 * there. A corrupt or mismatched file gives NULL and a message naming the file, the tensor or
 * metadata key, and the byte offset -- never a crash. Everything returned afterwards points into the
 * mapping and stays valid until llmc_gguf_close().
 *
 * Depends only on libc and POSIX (open, fstat, mmap). Built with -DLLMC_GGUF_NO_MMAP it reads the
 * file into memory instead of mapping it.
 *
 * The functions below are exported even from an artifact built with -fvisibility=hidden: Python reads
 * the metadata and tensor table through them (runtime/gguf_file.py), so the file is checked by this
 * reader alone and no Python code walks the vocabulary entry by entry.
 */
#ifndef LLMC_GGUF_H
#define LLMC_GGUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

#define LLMC_GGUF_MAX_DIMS 4

/* ggml tensor type ids as stored in GGUF (the ones the generated kernels use; the reader knows more). */
enum {
    LLMC_GGUF_TYPE_F32 = 0,
    LLMC_GGUF_TYPE_F16 = 1,
    LLMC_GGUF_TYPE_Q4_0 = 2,
    LLMC_GGUF_TYPE_Q4_1 = 3,
    LLMC_GGUF_TYPE_Q5_0 = 6,
    LLMC_GGUF_TYPE_Q5_1 = 7,
    LLMC_GGUF_TYPE_Q8_0 = 8,
    LLMC_GGUF_TYPE_Q8_1 = 9,
    LLMC_GGUF_TYPE_Q2_K = 10,
    LLMC_GGUF_TYPE_Q3_K = 11,
    LLMC_GGUF_TYPE_Q4_K = 12,
    LLMC_GGUF_TYPE_Q5_K = 13,
    LLMC_GGUF_TYPE_Q6_K = 14,
    LLMC_GGUF_TYPE_Q8_K = 15,
    LLMC_GGUF_TYPE_BF16 = 30,
    LLMC_GGUF_TYPE_MXFP4 = 39,
};

/* Results of the llmc_gguf_get_* metadata accessors. */
enum {
    LLMC_GGUF_OK = 0,
    LLMC_GGUF_MISSING = -1,     /* no such key */
    LLMC_GGUF_WRONG_TYPE = -2,  /* the key holds another value type (e.g. a string or an array) */
    LLMC_GGUF_RANGE = -3,       /* an unsigned 64-bit value above INT64_MAX */
};

typedef struct {
    const char *name;            /* NUL-terminated */
    int type;                    /* ggml type id, see llmc_gguf_type_name() */
    int n_dims;                  /* 0..4 */
    int64_t ne[LLMC_GGUF_MAX_DIMS]; /* GGUF order: ne[0] is the contiguous axis; unused dims are 1 */
    size_t nbytes;               /* size of the data in bytes */
    uint64_t offset;             /* absolute byte offset of the data in the file */
    const void *data;            /* the data inside the read-only mapping */
} llmc_gguf_tensor;

typedef struct llmc_gguf llmc_gguf;

/* Maps and validates `path`. On failure returns NULL and writes a one-line message into err. */
llmc_gguf *llmc_gguf_open(const char *path, char *err, size_t err_len);
void llmc_gguf_close(llmc_gguf *g);

int llmc_gguf_n_tensors(const llmc_gguf *g);
const llmc_gguf_tensor *llmc_gguf_tensor_at(const llmc_gguf *g, int i);       /* NULL if out of range */
const llmc_gguf_tensor *llmc_gguf_find_tensor(const llmc_gguf *g, const char *name); /* NULL if absent */

/* Metadata. Each returns LLMC_GGUF_OK and sets *out, or one of the negative codes above. */
int llmc_gguf_has_key(const llmc_gguf *g, const char *key);
int llmc_gguf_get_i64(const llmc_gguf *g, const char *key, int64_t *out);  /* any integer type */
int llmc_gguf_get_f64(const llmc_gguf *g, const char *key, double *out);   /* float or integer types */
int llmc_gguf_get_bool(const llmc_gguf *g, const char *key, int *out);     /* bool type; 0 or 1 */
/* String values point into the mapping and are NOT NUL-terminated: use *len. */
int llmc_gguf_get_str(const llmc_gguf *g, const char *key, const char **out, size_t *len);

/* Every metadata entry in file order, for a reader that wants all of them. *value points at the value as
 * the file encodes it (little-endian): a scalar's bytes; a string's characters (not NUL-terminated); an
 * array's element type (u32), count (u64) and elements. All value_len bytes lie inside the mapping and
 * were checked when the file was opened. Returns LLMC_GGUF_OK, or LLMC_GGUF_MISSING if i is out of range. */
int llmc_gguf_n_kv(const llmc_gguf *g);
int llmc_gguf_kv_at(const llmc_gguf *g, int i, const char **key, size_t *key_len, int *type, const void **value,
                    size_t *value_len);
/* For entry i, an array of strings of `count` elements: where each string's characters start (bytes from
 * the entry's value) and how long each is. LLMC_GGUF_WRONG_TYPE if the entry is not such an array. */
int llmc_gguf_string_array_spans(const llmc_gguf *g, int i, uint64_t count, uint64_t *starts, uint64_t *lens);

/* ggml type tables; "?" / 0 for an unknown type id. */
const char *llmc_gguf_type_name(int type);
size_t llmc_gguf_type_block_size(int type);   /* elements per block */
size_t llmc_gguf_type_block_bytes(int type);  /* bytes per block */

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif /* LLMC_GGUF_H */
