/* bin/llmc-run: run a compiled model on a GGUF file with no Python, for boards and for checking a build.
 *
 *   llmc-run -m GGUF --ids 1,2,3 --logits OUT.f32 [-t THREADS] [-b BATCH]
 *
 * runs the token ids as one prompt and writes every position's logits to OUT as raw little-endian float32,
 * n_tokens rows of n_vocab. The hyperparameters come from the artifact's own llmc_model_params(); the
 * file is mapped and checked by its GGUF reader. Every error is one line on stderr and exit status 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmc_runtime.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llmc-run writes the logits in the machine's byte order, which must be little-endian"
#endif

#define MAX_TOKENS (1 << 20)

static const char USAGE[] =
    "usage: llmc-run -m GGUF --ids ID,ID,... --logits OUT.f32 [-t THREADS] [-b BATCH]\n"
    "runs the ids as one prompt; writes every position's logits (n_tokens x n_vocab float32, little-endian)\n";

static int fail(const char *fmt, const char *what)
{
    fprintf(stderr, "llmc-run: ");
    fprintf(stderr, fmt, what);
    fputc('\n', stderr);
    return 1;
}

/* A command-line mistake: the message, then how to call it. */
static int usage_error(const char *fmt, const char *what)
{
    fail(fmt, what);
    fputs(USAGE, stderr);
    return 1;
}

/* A decimal integer in [lo, hi], the whole of s; 0 if it is not one. */
static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* "1,2,3" -> ids; the count, or -1 with a message. */
static int parse_ids(const char *text, int32_t **ids)
{
    size_t n = 1;
    for (const char *c = text; *c; c++) n += *c == ',';
    if (n > MAX_TOKENS) { fprintf(stderr, "llmc-run: --ids: more than %d tokens\n", MAX_TOKENS); return -1; }
    *ids = malloc(n * sizeof **ids);
    char *copy = strdup(text);
    if (!*ids || !copy) { free(copy); fprintf(stderr, "llmc-run: out of memory\n"); return -1; }
    size_t k = 0;
    char *rest = copy;
    for (char *tok = strsep(&rest, ","); tok; tok = strsep(&rest, ",")) {
        long v;
        if (!parse_int(tok, 0, INT32_MAX, &v)) {
            fprintf(stderr, "llmc-run: --ids: '%s' is not a token id (a non-negative integer)\n", tok);
            free(copy);
            return -1;
        }
        (*ids)[k++] = (int32_t)v;
    }
    free(copy);
    return (int)k;
}

int main(int argc, char **argv)
{
    const char *gguf = NULL, *ids_text = NULL, *out_path = NULL;
    long threads = sysconf(_SC_NPROCESSORS_ONLN), batch = 64;
    if (threads < 1) threads = 1;
    if (threads > 8) threads = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (i + 1 >= argc) return usage_error("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) gguf = v;
        else if (!strcmp(a, "--ids")) ids_text = v;
        else if (!strcmp(a, "--logits")) out_path = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!parse_int(v, 1, 1024, &threads)) return fail("-t: '%s' is not a thread count (1..1024)", v);
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
            if (!parse_int(v, 1, 4096, &batch)) return fail("-b: '%s' is not a batch size (1..4096)", v);
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!gguf || !ids_text || !out_path) return usage_error("%s", "-m, --ids and --logits are required");
    int32_t *ids = NULL;
    int n_tokens = parse_ids(ids_text, &ids);
    if (n_tokens < 0) { free(ids); return 1; }

    char err[1024] = "";
    int n_params = llmc_model_n_params();
    double *params = calloc((size_t)(n_params > 0 ? n_params : 1), sizeof *params);
    if (!params) { free(ids); return fail("%s", "out of memory"); }
    if (!llmc_model_params(gguf, params, n_params, err, sizeof err)) {
        free(params);
        free(ids);
        return fail("%s", err);
    }
    int n_batch = batch < n_tokens ? (int)batch : n_tokens;
    llmc_model *m = llmc_model_load(gguf, params, n_params, n_tokens, 1, n_batch, (int)threads, err, sizeof err);
    free(params);
    if (!m) { free(ids); return fail("%s", err); }
    int n_vocab = llmc_model_n_vocab(m);
    for (int t = 0; t < n_tokens; t++) {
        if (ids[t] >= n_vocab) {
            fprintf(stderr, "llmc-run: --ids: token %d (position %d) is not below n_vocab %d\n", ids[t], t, n_vocab);
            llmc_model_free(m);
            free(ids);
            return 1;
        }
    }
    size_t count = (size_t)n_tokens * (size_t)n_vocab;
    float *logits = malloc(count * sizeof *logits);
    if (!logits) { llmc_model_free(m); free(ids); return fail("%s", "out of memory for the logits"); }
    int ok = 1;
    for (int start = 0; ok && start < n_tokens; start += n_batch) {
        int n = n_tokens - start < n_batch ? n_tokens - start : n_batch;
        ok = llmc_forward(m, ids + start, n, start, logits + (size_t)start * (size_t)n_vocab, 1, err, sizeof err);
    }
    llmc_model_free(m);
    free(ids);
    if (!ok) { free(logits); return fail("%s", err); }
    FILE *f = fopen(out_path, "wb");
    if (!f) { free(logits); return fail("cannot write %s", out_path); }
    int written = fwrite(logits, sizeof *logits, count, f) == count;
    written = (fclose(f) == 0) && written;
    free(logits);
    if (!written) return fail("writing %s failed", out_path);
    fprintf(stderr, "llmc-run: %d tokens x %d logits -> %s\n", n_tokens, n_vocab, out_path);
    return 0;
}
