/* The OpenCL host runtime of generated models: one device, programs built once (with an on-disk binary
 * cache), buffers, kernel launches, and errors that name the failing call.
 *
 * Errors. Calls made at load time return 0 / NULL and write a message into err. Calls made while a token
 * runs (llmc_cl_run, llmc_cl_write, llmc_cl_copy) are queued without waiting; the first failure is kept
 * in the handle ("sticky") and later calls are skipped, and the next llmc_cl_read (a blocking call the
 * forward pass makes anyway, at least for the logits) reports it.
 *
 * Device choice: the first device of the first platform, unless LLMC_OPENCL_DEVICE says "P:D" (platform
 * and device indices) or a case-insensitive part of "<platform name> <device name>".
 * Profile: LLMC_OPENCL_PROFILE=1 times every kernel on the device (each launch then waits for its kernel)
 * and prints a table per kernel to stderr when the handle closes.
 * Program cache: $LLMC_CACHE/opencl (default ~/.cache/llmc/opencl), keyed by a hash of the source, the
 * build options, the platform and the device (name, version, driver); LLMC_OPENCL_NO_CACHE=1 skips it.
 */
#ifndef LLMC_OPENCL_H
#define LLMC_OPENCL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001     /* cl_khr_icd: the ICD loader found no platform */
#endif
#include <stddef.h>
#include <stdint.h>

typedef struct llmc_cl llmc_cl;

llmc_cl *llmc_cl_open(char *err, size_t err_len);
void llmc_cl_close(llmc_cl *cl);
const char *llmc_cl_device_name(const llmc_cl *cl);
const char *llmc_cl_error_string(cl_int code);

/* Build `source` (or load its cached binary). `name` only labels messages. On failure err holds the
 * build log. *cached tells whether the binary came from the disk cache (may be NULL). */
cl_program llmc_cl_build(llmc_cl *cl, const char *name, const char *source, int *cached, char *err,
                         size_t err_len);
cl_kernel llmc_cl_kernel(llmc_cl *cl, cl_program program, const char *name, char *err, size_t err_len);

/* A device buffer of `bytes` (at least 1), optionally filled from host memory; `what` names it in errors. */
cl_mem llmc_cl_alloc(llmc_cl *cl, size_t bytes, const void *init, const char *what, char *err, size_t err_len);
void llmc_cl_release(cl_mem mem);

/* Queued (non-blocking for the device side; the host data is copied before return). */
void llmc_cl_write(llmc_cl *cl, cl_mem dst, size_t offset, const void *src, size_t bytes);
void llmc_cl_copy(llmc_cl *cl, cl_mem dst, size_t dst_offset, cl_mem src, size_t src_offset, size_t bytes);
/* Blocking: waits for everything queued before it, then reports any sticky error. */
int llmc_cl_read(llmc_cl *cl, void *dst, cl_mem src, size_t offset, size_t bytes, char *err, size_t err_len);
int llmc_cl_finish(llmc_cl *cl, char *err, size_t err_len);

/* Launch kernel k over global[0..dims) work-items (local NULL: the driver chooses). `args` has one letter
 * per kernel argument: 'm' cl_mem, 'i' int, 'l' long, 'f' float (passed as double through ...). */
void llmc_cl_run(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const char *args, ...);
/* The same with work-groups of `local` items (each global size a multiple of its local size). */
void llmc_cl_run_local(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const size_t *local,
                       const char *args, ...);
/* Kernels queued since the handle was opened (launches per token = the difference over a step). */
long llmc_cl_launches(const llmc_cl *cl);

/* The first error since the handle was opened, or NULL. */
const char *llmc_cl_sticky_error(const llmc_cl *cl);

#endif /* LLMC_OPENCL_H */
