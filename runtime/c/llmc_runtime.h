/* The C runtime's support for generated models: weight binding with checks, per-type kernel dispatch,
 * error reporting, aligned allocation, and the entry points every generated model defines. */
#ifndef LLMC_RUNTIME_H
#define LLMC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "llmc_gguf.h"
#include "llmc_threads.h"
#include "llmc_weight_types.h"

typedef struct {
    const void *data;        /* into the mapped GGUF file; NULL for an absent optional weight */
    int type;                /* GGUF type id */
    const char *name;
} llmc_weight;

enum { LLMC_WEIGHT_ANY = 0, LLMC_WEIGHT_F32 = 1 };

/* Write a printf-style message into err; returns 0 so callers can `return llmc_fail(...)`. */
int llmc_fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *llmc_aligned_alloc(size_t bytes);      /* 64-byte aligned, zeroed (pages lazily); free() to release */

/* Find `name` (else `fallback`), check its type is usable for `kind` (and equals want_type unless -1)
 * and that its ne equals the expected dims. An absent optional weight binds to data NULL. */
int llmc_bind_weight(const llmc_gguf *g, const char *name, const char *fallback, int optional, int kind,
                     int want_type, int n_dims, const int64_t *ne, llmc_weight *out, char *err, size_t err_len);

/* Bytes of activation scratch enough for any matmul of this file at n_batch tokens. */
size_t llmc_max_scratch_bytes(const llmc_gguf *g, int n_batch);

/* Kernels chosen by the weight's GGUF type at run time (generic artifacts). */
void llmc_matmul_any(int type, llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                     int n_tokens, void *scratch);
/* Matmuls sharing x (ys[i] = x · ws[i]ᵀ): one quantization and one dispatch when the types agree. */
void llmc_matmul_group_any(llmc_threads *th, int n, const int *types, float *const *ys, const void *const *ws,
                           const int *n_outs, const float *x, int n_in, int n_tokens, void *scratch);
void llmc_embed_any(int type, float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_moe_matmul_any(int type, llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                         void *scratch);

/* Placement decided at load (a node compiled without the file, whose device kernel takes only some weight
 * types): on_device[i] = whether ws[i]'s type is in `allowed` (ended by -1; an absent weight counts as
 * taken), and one line appended to *notes: "what<TAB>device<TAB>layers there<TAB>fallback<TAB>layers
 * there<TAB>their types<TAB>reason". Returns 0 when out of memory. */
int llmc_place_by_type(char **notes, const char *what, const char *device, const char *fallback, const char *reason,
                       const llmc_weight *ws, int n, const int *allowed, unsigned char *on_device);
/* Whether all n flags are set. */
int llmc_all_set(const unsigned char *flags, int n);

/* Defined by every generated model.c: the library's only exported symbols (it is built with
 * -fvisibility=hidden, so two artifacts loaded in one process never bind to each other's kernels). */
#define LLMC_API __attribute__((visibility("default")))
typedef struct llmc_model llmc_model;
/* n_seq sequences, each with its own KV cache of n_ctx positions (artifacts whose attention runs on an
 * accelerator take n_seq 1 only). */
LLMC_API llmc_model *llmc_model_load(const char *gguf_path, const double *params, int n_params, int n_ctx, int n_seq,
                                     int n_batch, int n_threads, char *err, size_t err_len);
/* One sequence (0): n_tokens tokens at positions pos..; logits of every token or of the last. */
LLMC_API int llmc_forward(llmc_model *m, const int32_t *tokens, int n_tokens, int pos, float *logits, int all_logits,
                 char *err, size_t err_len);
/* A batch of n_tokens tokens, token t of sequence in_seq[t] at position in_pos[t]; writes the logits of the
 * n_out rows out_rows (ascending) to logits (n_out, n_vocab). Every step's weights are read once for the
 * whole batch. */
LLMC_API int llmc_forward_batch(llmc_model *m, const int32_t *tokens, const int32_t *in_seq, const int32_t *in_pos,
                                int n_tokens, const int32_t *out_rows, int n_out, float *logits, char *err,
                                size_t err_len);
LLMC_API void llmc_model_free(llmc_model *m);
LLMC_API int llmc_model_n_params(void);
/* The hyperparameters llmc_model_load takes, computed from the file's metadata and tensor dims (defined by
 * the generated llmc_params.c, codegen/c/params.py); 0 and a message if the file does not fit. */
LLMC_API int llmc_model_params(const char *gguf_path, double *params, int n_params, char *err, size_t err_len);
LLMC_API int llmc_model_n_vocab(const llmc_model *m);
LLMC_API int llmc_model_n_ctx(const llmc_model *m);
LLMC_API int llmc_model_n_seq(const llmc_model *m);
LLMC_API size_t llmc_model_arena_bytes(const llmc_model *m);
/* The load's placement notes (llmc_place_by_type lines), "" when every node's device was fixed at compile. */
LLMC_API const char *llmc_model_placement(const llmc_model *m);

#endif
