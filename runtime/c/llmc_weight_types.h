/* The weight types llmc's C kernels take, and the per-type kernels: generated from llmc.ir.quant.WEIGHT_TYPES
 * by llmc.codegen.c.matmul (templates/llmc_weight_types.h.j2). Do not edit: run
 * `python -m llmc.codegen.c.matmul` after changing the table (tests/codegen/test_c_matmul.py checks it).
 */
#ifndef LLMC_WEIGHT_TYPES_H
#define LLMC_WEIGHT_TYPES_H

#include <stdint.h>

#include "llmc_threads.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ggml type id, kernel suffix) for every weight type, for dispatch on a tensor's GGUF type. */
#define LLMC_FOR_TYPES(X) \
    X(0, f32) \
    X(1, f16) \
    X(30, bf16) \
    X(8, q8_0) \
    X(2, q4_0) \
    X(3, q4_1) \
    X(6, q5_0) \
    X(7, q5_1) \
    X(10, q2_k) \
    X(11, q3_k) \
    X(12, q4_k) \
    X(13, q5_k) \
    X(14, q6_k) \
    X(20, iq4_nl) \
    X(23, iq4_xs) \
    X(39, mxfp4)

/* The names, for error messages. */
#define LLMC_WEIGHT_TYPE_NAMES "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4"

/* Dense matmul (templates/matmul_<type>.c.j2): y (n_tokens, n_out) = x · Wᵀ; the _group form runs matmuls
 * sharing x (ys[i] = x · ws[i]ᵀ) with one activation quantization and one dispatch. */
void llmc_matmul_f32(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                     int n_tokens, void *scratch);
void llmc_matmul_f32_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                           const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_f16(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                     int n_tokens, void *scratch);
void llmc_matmul_f16_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                           const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_bf16(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_bf16_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q8_0(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q8_0_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q4_0(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q4_0_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q4_1(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q4_1_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q5_0(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q5_0_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q5_1(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q5_1_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q2_k(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q2_k_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q3_k(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q3_k_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q4_k(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q4_k_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q5_k(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q5_k_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_q6_k(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                      int n_tokens, void *scratch);
void llmc_matmul_q6_k_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                            const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_iq4_nl(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                        int n_tokens, void *scratch);
void llmc_matmul_iq4_nl_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                              const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_iq4_xs(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                        int n_tokens, void *scratch);
void llmc_matmul_iq4_xs_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                              const float *x, int n_in, int n_tokens, void *scratch);
void llmc_matmul_mxfp4(llmc_threads *th, float *y, const void *w, const float *x, int n_in, int n_out,
                       int n_tokens, void *scratch);
void llmc_matmul_mxfp4_group(llmc_threads *th, int n, float *const *ys, const void *const *ws, const int *n_outs,
                             const float *x, int n_in, int n_tokens, void *scratch);

/* Embedding (templates/embed.c.j2): y (n_tokens, n_embd) = table[tokens], each row dequantized to f32. */
void llmc_embed_f32(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_f16(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_bf16(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q8_0(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_0(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_1(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q5_0(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q5_1(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q2_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q3_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q4_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q5_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_q6_k(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_iq4_nl(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_iq4_xs(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);
void llmc_embed_mxfp4(float *y, const void *table, const int32_t *tokens, int n_tokens, int n_embd);

/* MoE matmul (templates/moe_matmul.c.j2): y (n_tokens, k, n_out), slot j of token t = W[sel[t, j]] · x_t
 * (+ bias[sel[t, j]]). w: E experts of n_out rows; x (n_tokens, n_in), or (n_tokens, k, n_in) if x_per_slot;
 * bias (E, n_out) or NULL; scratch: moe_matmul_scratch_bytes(type, n_in). */
void llmc_moe_matmul_f32(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                         int k, void *scratch);
void llmc_moe_matmul_f16(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                         const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                         int k, void *scratch);
void llmc_moe_matmul_bf16(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q8_0(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q4_0(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q4_1(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q5_0(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q5_1(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q2_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q3_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q4_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q5_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_q6_k(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                          const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                          int k, void *scratch);
void llmc_moe_matmul_iq4_nl(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                            const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                            int k, void *scratch);
void llmc_moe_matmul_iq4_xs(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                            const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                            int k, void *scratch);
void llmc_moe_matmul_mxfp4(llmc_threads *th, float *y, const void *w, const float *x, int x_per_slot,
                           const int32_t *sel, const float *bias, int n_in, int n_out, int n_tokens,
                           int k, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* LLMC_WEIGHT_TYPES_H */
