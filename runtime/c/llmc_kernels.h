/* llmc's C kernels (all but the dense matmul), rendered by llmc.codegen.c.kernels.
 *
 * Activations are f32 and row-major; shapes are written numpy-style, last axis contiguous. Each kernel
 * computes what its function in llmc.ir.reference defines. Weights are the bytes of a GGUF tensor in
 * ggml's block layout.
 */
#ifndef LLMC_KERNELS_H
#define LLMC_KERNELS_H

#include <stdint.h>

#include "llmc_threads.h"
#include "llmc_weight_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- embedding and MoE matmul, one per weight type: llmc_weight_types.h ---- */

/* ---- a matmul's bias: y (rows, n) = a (rows, n) + b, b (b_rows, n) with b_rows == 1 or rows ----
 * (Elementwise and row ops are generated into each model's C from ir/pointwise.py.) */
void llmc_add_f32(float *y, const float *a, const float *b, int rows, int n, int b_rows);

/* ---- RoPE, in place on x (n_tokens, n_heads, head_dim) at positions pos (n_tokens,) ---- */
typedef struct {
    int mode;               /* 0: NORM, pairs (2i, 2i+1); 2: NEOX, pairs (i, i + n_dims/2) */
    int n_dims;             /* rotated dims; dims >= n_dims pass through */
    float base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
} llmc_rope_params;

/* freq_factors (n_dims/2,) or NULL: pair i's angle is divided by freq_factors[i] (Llama 3.x rope_freqs) */
void llmc_rope_f32(float *x, const int32_t *pos, int n_tokens, int n_heads, int head_dim,
                   const llmc_rope_params *p, const float *freq_factors);

/* ---- causal GQA attention over per-sequence f16 K/V caches (n_seq, n_ctx, n_head_kv, head_dim) ----
 * Token t belongs to sequence seq[t] at position positions[t]: its k_new, v_new row (n_head_kv, head_dim)
 * is stored at that sequence's cache row positions[t], then out (n_tokens, n_head*head_dim) = attention
 * of q (n_tokens, n_head, head_dim) over that sequence's rows 0..positions[t] (the caller checks seq and
 * positions). window 0: full causal; logit_cap > 0: each logit is logit_cap * tanh(q·k * scale / logit_cap)
 * (Gemma 2), else q·k * scale; sinks (n_head) or NULL. The kernel allocates its own work (staged q, score
 * rows: sized by head_dim and the rows' lengths). out may alias q. */
void llmc_attention_f32(llmc_threads *th, float *out, const float *q, const float *k_new, const float *v_new,
                        uint16_t *k_cache, uint16_t *v_cache, const int32_t *seq, const int32_t *positions,
                        int n_tokens, int n_head, int n_head_kv, int head_dim, int n_ctx, float scale, int window,
                        float logit_cap, const float *sinks);

/* ---- mixture of experts ---- */
/* idx (rows, k): the k largest of each row of x (rows, n), largest first, ties to the lower index */
void llmc_top_k_f32(int32_t *idx, const float *x, int rows, int n, int k);
/* y (rows, k) = x (rows, n) at idx (rows, k) */
void llmc_gather_f32(float *y, const float *x, const int32_t *idx, int rows, int n, int k);
/* y (n_tokens, n) = sum_j x[:, j] * w[:, j], x (n_tokens, k, n), w (n_tokens, k), added in slot order */
void llmc_weighted_sum_f32(float *y, const float *x, const float *w, int n_tokens, int k, int n);

#ifdef __cplusplus
}
#endif

#endif /* LLMC_KERNELS_H */
