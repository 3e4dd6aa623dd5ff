/* A persistent thread pool for llmc kernels.
 *
 * A decode step runs a few hundred small kernels, so dispatch must cost microseconds, not the tens
 * of microseconds of pthread_create: workers stay alive, spin on an atomic generation counter
 * (with a pause hint) and only fall back to sleeping on a condition variable after spinning for a
 * while with no work, so an idle pool does not burn the CPU.
 */
#ifndef LLMC_THREADS_H
#define LLMC_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmc_threads llmc_threads;

/* One unit of parallel work: called once per thread with ith in [0, nth). */
typedef void (*llmc_task_fn)(void *ctx, int ith, int nth);

/* Create a pool of n threads in total (the caller counts as one, so n - 1 workers start).
 * n < 1 is treated as 1. Returns NULL if memory or thread creation fails. */
llmc_threads *llmc_threads_create(int n);

/* Number of threads (including the caller) that llmc_threads_run uses. */
int llmc_threads_count(const llmc_threads *th);

/* Run fn(ctx, ith, nth) once for every ith in [0, nth), nth = llmc_threads_count(th), spread over
 * the pool's threads (the caller takes part); returns when all are done. Which thread runs which
 * ith is decided at run time: a descheduled worker's share is picked up by the others, so never
 * assume ith names a thread. th may be NULL (everything runs on the caller). Not reentrant. */
void llmc_threads_run(llmc_threads *th, llmc_task_fn fn, void *ctx);

/* Same with n_tasks slots (any number, e.g. several per thread for load balance). */
void llmc_threads_run_n(llmc_threads *th, llmc_task_fn fn, void *ctx, int n_tasks);

/* Stop and join the workers, free the pool. NULL is allowed. */
void llmc_threads_destroy(llmc_threads *th);

#ifdef __cplusplus
}
#endif

#endif /* LLMC_THREADS_H */
