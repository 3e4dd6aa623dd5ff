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

#ifdef __cplusplus
extern "C" {
#endif

/* ---- embedding: y (n_tokens, n_embd) = table[tokens], each row dequantized to f32 ---- */
void llmc_embed_f32(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_f16(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_bf16(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q8_0(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_0(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_1(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q6_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_mxfp4(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);

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

void llmc_rope_f32(float *x, const int32_t *pos, int n_tokens, int n_heads, int head_dim,
                   const llmc_rope_params *p);

/* ---- causal GQA attention over per-sequence f16 K/V caches (n_seq, n_ctx, n_head_kv, head_dim) ----
 * Token t belongs to sequence seq[t] at position positions[t]: its k_new, v_new row (n_head_kv, head_dim)
 * is stored at that sequence's cache row positions[t], then out (n_tokens, n_head*head_dim) = attention
 * of q (n_tokens, n_head, head_dim) over that sequence's rows 0..positions[t] (the caller checks seq and
 * positions). window 0: full causal; softcap > 0: each logit is softcap * tanh(q·k * scale / softcap)
 * (Gemma 2), else q·k * scale; sinks (n_head) or NULL; scratch: attention_scratch_bytes(n_ctx,
 * n_threads). out may alias q. */
void llmc_attention_f32(llmc_threads *th, float *out, const float *q, const float *k_new, const float *v_new,
                        uint16_t *k_cache, uint16_t *v_cache, const int32_t *seq, const int32_t *positions,
                        int n_tokens, int n_head, int n_head_kv, int head_dim, int n_ctx, float scale, int window,
                        float softcap, const float *sinks, float *scratch);

/* ---- mixture of experts ---- */
/* idx (rows, k): the k largest of each row of x (rows, n), largest first, ties to the lower index */
void llmc_top_k_f32(int32_t *idx, const float *x, int rows, int n, int k);
/* y (rows, k) = x (rows, n) at idx (rows, k) */
void llmc_gather_f32(float *y, const float *x, const int32_t *idx, int rows, int n, int k);
/* y (n_tokens, n) = sum_j x[:, j] * w[:, j], x (n_tokens, k, n), w (n_tokens, k), added in slot order */
void llmc_weighted_sum_f32(float *y, const float *x, const float *w, int n_tokens, int k, int n);

/* y (n_tokens, k, n_out): slot j of token t = W[sel[t, j]] · x_t (+ bias[sel[t, j]]).
 * w: E experts of n_out rows; x (n_tokens, n_in), or (n_tokens, k, n_in) if x_per_slot; bias (E, n_out)
 * or NULL; scratch: moe_matmul_scratch_bytes(type, n_in). */
void llmc_moe_matmul_f32(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                         void *scratch);
void llmc_moe_matmul_f16(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                         void *scratch);
void llmc_moe_matmul_bf16(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_q8_0(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_q4_0(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_q4_1(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_q4_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_q6_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                          void *scratch);
void llmc_moe_matmul_mxfp4(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                           const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens, int k,
                           void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* LLMC_KERNELS_H */
