/* Persistent thread pool: see llmc_threads.h.
 *
 * Protocol. A run has n_tasks slots. The caller publishes (fn, ctx, n_tasks), resets `next_task`
 * and bumps `generation` to an odd value ("open"). Every thread, the caller included, claims slots
 * with an atomic fetch-add and runs them; so a slot whose worker is descheduled (another process
 * took its core) is simply run by someone else, and a late worker finds nothing left to do. When
 * the slots are exhausted the caller bumps `generation` to even ("closed") and waits until no
 * worker is inside the task (`n_active`), after which ctx may go out of scope.
 *
 * A worker joins a task by incrementing n_active and then re-reading generation; the caller closes
 * by bumping generation and then reading n_active. Both are seq_cst "write mine, read theirs", so
 * either the worker sees the task closed (and leaves without touching ctx) or the caller waits.
 *
 * Sleeping. A worker that has spun SPIN_ROUNDS times without news takes the mutex, registers in
 * `n_sleeping`, re-checks the generation and waits on the condition variable; the caller
 * broadcasts after opening a task if anyone is registered (the same Dekker pattern: no lost
 * wake-up).
 */
#define _GNU_SOURCE
#include "llmc_threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLMC_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LLMC_PAUSE() __asm__ __volatile__("yield")
#else
#define LLMC_PAUSE() ((void)0)
#endif

/* About a millisecond of spinning (pause is ~10-140 cycles depending on the core) before sleeping:
 * long enough to bridge the gap between the kernels of one forward pass. */
#define SPIN_ROUNDS (1 << 16)

struct llmc_threads {
    int n;                          /* threads including the caller */
    pthread_t *workers;             /* n - 1 */

    llmc_task_fn fn;                /* current task, published before generation is bumped */
    void *ctx;
    int n_tasks;
    _Alignas(64) atomic_uint generation;    /* odd: a task is open */
    _Alignas(64) atomic_int next_task;
    _Alignas(64) atomic_int n_active;       /* workers inside the current task */
    _Alignas(64) atomic_int n_sleeping;
    atomic_int stop;

    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* Wait until the generation differs from `seen`; returns the new value. */
static unsigned wait_generation(llmc_threads *th, unsigned seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&th->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&th->stop, memory_order_acquire)) {
            return g;
        }
        LLMC_PAUSE();
    }
    pthread_mutex_lock(&th->lock);
    atomic_fetch_add(&th->n_sleeping, 1);
    unsigned g;
    /* stop is checked too: a worker that starts after destroy's last publish reads the final generation
     * as `seen` and would otherwise wait for a bump that never comes */
    while ((g = atomic_load(&th->generation)) == seen && !atomic_load(&th->stop)) {
        pthread_cond_wait(&th->wake, &th->lock);
    }
    atomic_fetch_sub(&th->n_sleeping, 1);
    pthread_mutex_unlock(&th->lock);
    return g;
}

/* Claim and run slots of the current task until none is left. */
static void run_slots(llmc_task_fn fn, void *ctx, int n_tasks, atomic_int *next) {
    int i;
    while ((i = atomic_fetch_add_explicit(next, 1, memory_order_relaxed)) < n_tasks) {
        fn(ctx, i, n_tasks);
    }
}

static void *worker_main(void *p) {
    llmc_threads *th = p;
    unsigned seen = atomic_load(&th->generation);
    for (;;) {
        seen = wait_generation(th, seen);
        if (atomic_load_explicit(&th->stop, memory_order_acquire)) {
            return NULL;
        }
        if ((seen & 1) == 0) {
            continue;                       /* the task closed before we saw it open */
        }
        atomic_fetch_add(&th->n_active, 1);
        if (atomic_load(&th->generation) == seen) {
            run_slots(th->fn, th->ctx, th->n_tasks, &th->next_task);
        }
        atomic_fetch_sub_explicit(&th->n_active, 1, memory_order_release);
    }
}

llmc_threads *llmc_threads_create(int n) {
    if (n < 1) {
        n = 1;
    }
    llmc_threads *th = calloc(1, sizeof *th);
    if (th == NULL) {
        return NULL;
    }
    th->n = n;
    atomic_init(&th->generation, 0);
    atomic_init(&th->next_task, 0);
    atomic_init(&th->n_active, 0);
    atomic_init(&th->n_sleeping, 0);
    atomic_init(&th->stop, 0);
    pthread_mutex_init(&th->lock, NULL);
    pthread_cond_init(&th->wake, NULL);
    th->workers = calloc((size_t)(n > 1 ? n - 1 : 1), sizeof(pthread_t));
    if (th->workers == NULL) {
        free(th);
        return NULL;
    }
    for (int i = 1; i < n; i++) {
        if (pthread_create(&th->workers[i - 1], NULL, worker_main, th) != 0) {
            th->n = i;
            llmc_threads_destroy(th);
            return NULL;
        }
    }
    return th;
}

int llmc_threads_count(const llmc_threads *th) {
    return th == NULL ? 1 : th->n;
}

/* Bump the generation and wake any sleeping worker. */
static void publish(llmc_threads *th) {
    atomic_fetch_add(&th->generation, 1);
    if (atomic_load(&th->n_sleeping) > 0) {
        pthread_mutex_lock(&th->lock);
        pthread_cond_broadcast(&th->wake);
        pthread_mutex_unlock(&th->lock);
    }
}

void llmc_threads_run_n(llmc_threads *th, llmc_task_fn fn, void *ctx, int n_tasks) {
    if (th == NULL || th->n == 1 || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; i++) {
            fn(ctx, i, n_tasks);
        }
        return;
    }
    th->fn = fn;
    th->ctx = ctx;
    th->n_tasks = n_tasks;
    atomic_store_explicit(&th->next_task, 0, memory_order_relaxed);
    publish(th);                            /* generation becomes odd: open */
    run_slots(fn, ctx, n_tasks, &th->next_task);
    atomic_fetch_add(&th->generation, 1);   /* even: closed */
    while (atomic_load_explicit(&th->n_active, memory_order_acquire) != 0) {
        LLMC_PAUSE();
    }
}

void llmc_threads_run(llmc_threads *th, llmc_task_fn fn, void *ctx) {
    llmc_threads_run_n(th, fn, ctx, llmc_threads_count(th));
}

void llmc_threads_destroy(llmc_threads *th) {
    if (th == NULL) {
        return;
    }
    atomic_store_explicit(&th->stop, 1, memory_order_release);
    publish(th);                            /* workers see the stop flag, whatever the parity */
    for (int i = 1; i < th->n; i++) {
        pthread_join(th->workers[i - 1], NULL);
    }
    pthread_mutex_destroy(&th->lock);
    pthread_cond_destroy(&th->wake);
    free(th->workers);
    free(th);
}
