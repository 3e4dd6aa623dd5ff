/* The OpenCL host runtime of generated models (see llmc_opencl.h). */
#include "llmc_opencl.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct llmc_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    char platform_name[256], device_name[256], identity[1024];   /* identity keys the program cache */
    char options[128];
    char sticky[512];                                            /* first error while running */
    long launches;                                               /* kernels queued since open */
    struct llmc_cl_profile *profile;                             /* LLMC_OPENCL_PROFILE=1: per-kernel times */
};

/* LLMC_OPENCL_PROFILE=1: every launch waits for its kernel and adds the device's start..end time to its
 * kernel's row (so launches no longer overlap: the totals measure, they do not run at full speed); the
 * table goes to stderr when the handle closes. */
#define PROFILE_ROWS 128
struct llmc_cl_profile {
    struct { char name[64]; long count; double device_ms, host_ms; } row[PROFILE_ROWS];
    int n_rows;
    double wall_start;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void profile_add(llmc_cl *cl, cl_kernel k, cl_event ev, double host_ms)
{
    char name[64] = "?";
    clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
    struct llmc_cl_profile *p = cl->profile;
    int i = 0;
    while (i < p->n_rows && strcmp(p->row[i].name, name) != 0) i++;
    if (i == p->n_rows) {
        if (p->n_rows == PROFILE_ROWS) i = PROFILE_ROWS - 1;        /* full: the last row takes the rest */
        else snprintf(p->row[p->n_rows++].name, sizeof p->row[0].name, "%s", name);
    }
    cl_ulong start = 0, end = 0;
    clWaitForEvents(1, &ev);
    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
    p->row[i].count++;
    p->row[i].device_ms += (double)(end - start) / 1e6;
    p->row[i].host_ms += host_ms;
}

static void profile_print(const llmc_cl *cl)
{
    const struct llmc_cl_profile *p = cl->profile;
    double device = 0, host = 0;
    for (int i = 0; i < p->n_rows; i++) { device += p->row[i].device_ms; host += p->row[i].host_ms; }
    fprintf(stderr, "llmc OpenCL profile on %s: %ld launches, kernels %.1f ms on the device, %.1f ms to queue, "
            "%.1f ms wall since open\n", cl->device_name, cl->launches, device, host, now_ms() - p->wall_start);
    fprintf(stderr, "%-40s %8s %12s %12s\n", "kernel", "count", "device ms", "queue ms");
    for (int i = 0; i < p->n_rows; i++)
        fprintf(stderr, "%-40s %8ld %12.2f %12.2f\n", p->row[i].name, p->row[i].count, p->row[i].device_ms,
                p->row[i].host_ms);
}

const char *llmc_cl_error_string(cl_int code)
{
    switch (code) {
#define E(c) case c: return #c;
    E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
    E(CL_BUILD_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE)
    E(CL_INVALID_CONTEXT) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_BINARY)
    E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE)
    E(CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE)
    E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION)
    E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET)
    E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_OPERATION) E(CL_INVALID_BUFFER_SIZE)
    E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_PLATFORM_NOT_FOUND_KHR) E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
#undef E
    default: return "unknown OpenCL error";
    }
}

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* Record the first failure while running; later queued calls are skipped. */
static void stick(llmc_cl *cl, const char *call, const char *what, cl_int code)
{
    if (!cl->sticky[0])
        snprintf(cl->sticky, sizeof cl->sticky, "OpenCL %s(%s) failed on %s: %s (%d)", call, what,
                 cl->device_name, llmc_cl_error_string(code), (int)code);
}

const char *llmc_cl_sticky_error(const llmc_cl *cl) { return cl->sticky[0] ? cl->sticky : NULL; }
const char *llmc_cl_device_name(const llmc_cl *cl) { return cl->device_name; }

static void lower(char *s) { for (; *s; s++) *s = (char)tolower((unsigned char)*s); }

/* Pick the device LLMC_OPENCL_DEVICE names ("P:D" or part of "<platform> <device>"), else the first. */
static int choose_device(llmc_cl *cl, char *err, size_t err_len)
{
    cl_platform_id platforms[16];
    cl_uint n_platforms = 0;
    cl_int rc = clGetPlatformIDs(16, platforms, &n_platforms);
    if (rc == CL_PLATFORM_NOT_FOUND_KHR || (rc == CL_SUCCESS && n_platforms == 0))
        return fail(err, err_len, "no OpenCL platform found (clGetPlatformIDs: %s): install an OpenCL driver, "
                    "e.g. PoCL for the CPU (apt-get install pocl-opencl-icd), or compile for --target c",
                    llmc_cl_error_string(rc));
    if (rc != CL_SUCCESS)
        return fail(err, err_len, "clGetPlatformIDs failed: %s (%d)", llmc_cl_error_string(rc), (int)rc);
    const char *want = getenv("LLMC_OPENCL_DEVICE");
    int want_p = -1, want_d = -1;
    char want_name[256] = "";
    if (want && *want) {
        if (sscanf(want, "%d:%d", &want_p, &want_d) != 2) {
            want_p = want_d = -1;
            snprintf(want_name, sizeof want_name, "%s", want);
            lower(want_name);
        }
    }
    char seen[1024] = "";
    for (cl_uint p = 0; p < n_platforms && p < 16; p++) {
        cl_device_id devices[16];
        cl_uint n_devices = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 16, devices, &n_devices) != CL_SUCCESS)
            continue;
        char pname[256] = "";
        clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof pname, pname, NULL);
        for (cl_uint d = 0; d < n_devices && d < 16; d++) {
            char dname[256] = "", both[520];
            clGetDeviceInfo(devices[d], CL_DEVICE_NAME, sizeof dname, dname, NULL);
            snprintf(both, sizeof both, "%s %s", pname, dname);
            size_t used = strlen(seen);
            snprintf(seen + used, sizeof seen - used, "%s%u:%u %s", used ? "; " : "", p, d, both);
            lower(both);
            int match = want_p >= 0 ? (int)p == want_p && (int)d == want_d
                                    : !want_name[0] || strstr(both, want_name) != NULL;
            if (match) {
                cl->platform = platforms[p];
                cl->device = devices[d];
                snprintf(cl->platform_name, sizeof cl->platform_name, "%s", pname);
                snprintf(cl->device_name, sizeof cl->device_name, "%s", dname);
                return 1;
            }
        }
    }
    if (want && *want)
        return fail(err, err_len, "LLMC_OPENCL_DEVICE=%s matches no OpenCL device; have: %s", want, seen);
    return fail(err, err_len, "no OpenCL device found on %u platform(s)", (unsigned)n_platforms);
}

llmc_cl *llmc_cl_open(char *err, size_t err_len)
{
    llmc_cl *cl = calloc(1, sizeof *cl);
    if (!cl) { fail(err, err_len, "out of memory"); return NULL; }
    if (!choose_device(cl, err, err_len)) { free(cl); return NULL; }
    cl_int rc;
    cl->context = clCreateContext(NULL, 1, &cl->device, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) {
        fail(err, err_len, "clCreateContext on %s failed: %s", cl->device_name, llmc_cl_error_string(rc));
        llmc_cl_close(cl);
        return NULL;
    }
    const char *profile = getenv("LLMC_OPENCL_PROFILE");
    if (profile && *profile && strcmp(profile, "0") != 0) {
        cl->profile = calloc(1, sizeof *cl->profile);
        if (cl->profile) cl->profile->wall_start = now_ms();
    }
    cl->queue = clCreateCommandQueue(cl->context, cl->device, cl->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if (rc != CL_SUCCESS) {
        fail(err, err_len, "clCreateCommandQueue on %s failed: %s", cl->device_name, llmc_cl_error_string(rc));
        llmc_cl_close(cl);
        return NULL;
    }
    char pver[128] = "", dver[128] = "", driver[128] = "";
    clGetPlatformInfo(cl->platform, CL_PLATFORM_VERSION, sizeof pver, pver, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_VERSION, sizeof dver, dver, NULL);
    clGetDeviceInfo(cl->device, CL_DRIVER_VERSION, sizeof driver, driver, NULL);
    snprintf(cl->identity, sizeof cl->identity, "%s|%s|%s|%s|%s", cl->platform_name, pver, cl->device_name, dver,
             driver);
    /* Exact f32 division and sqrt where the device offers them (activation quantization divides). */
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(cl->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    snprintf(cl->options, sizeof cl->options, "-cl-std=CL1.2%s",
             (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
    return cl;
}

void llmc_cl_close(llmc_cl *cl)
{
    if (!cl) return;
    if (cl->queue) { clFinish(cl->queue); clReleaseCommandQueue(cl->queue); }
    if (cl->profile) { profile_print(cl); free(cl->profile); }
    if (cl->context) clReleaseContext(cl->context);
    free(cl);
}

/* ---- program cache ----------------------------------------------------------------------------- */

/* Two FNV-1a 64-bit hashes with different offsets: a 128-bit key, ample for a cache of a few programs. */
static void hash_text(const char *parts[], int n, char out[33])
{
    uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
    for (int i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
            h1 = (h1 ^ *p) * 0x100000001b3ull;
            h2 = (h2 ^ *p) * 0x100000001b3ull;
        }
        h1 = (h1 ^ 0xff) * 0x100000001b3ull;          /* separator: ("ab","c") != ("a","bc") */
        h2 = (h2 ^ 0xfe) * 0x100000001b3ull;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static int cache_path(const char *key, char *path, size_t len)
{
    const char *no = getenv("LLMC_OPENCL_NO_CACHE");
    if (no && *no && strcmp(no, "0") != 0) return 0;
    char dir[768];
    const char *root = getenv("LLMC_CACHE");
    const char *home = getenv("HOME");
    if (root && *root) snprintf(dir, sizeof dir, "%s", root);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/llmc", home);
    else return 0;
    mkdir(dir, 0755);               /* the parent may exist already; errors show up at fopen */
    size_t n = strlen(dir);
    snprintf(dir + n, sizeof dir - n, "/opencl");
    mkdir(dir, 0755);
    snprintf(path, len, "%s/%s.bin", dir, key);
    return 1;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n)) != NULL) {
            if (fread(data, 1, (size_t)n, f) != (size_t)n) { free(data); data = NULL; }
            else *size = (size_t)n;
        }
    }
    fclose(f);
    return data;
}

static void write_binary(cl_program program, const char *path)
{
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || !size) return;
    unsigned char *data = malloc(size);
    if (!data) return;
    unsigned char *ptrs[1] = {data};
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = NULL;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, NULL) == CL_SUCCESS
        && (f = fopen(tmp, "wb")) != NULL) {
        int ok = fwrite(data, 1, size, f) == size;
        ok = fclose(f) == 0 && ok;
        if (ok) rename(tmp, path);      /* atomic: a concurrent reader sees the old file or the new one */
        else remove(tmp);
    }
    free(data);
}

static cl_program from_binary(llmc_cl *cl, const char *path)
{
    size_t size = 0;
    unsigned char *data = read_all(path, &size);
    if (!data) return NULL;
    const unsigned char *ptrs[1] = {data};
    cl_int status, rc;
    cl_program p = clCreateProgramWithBinary(cl->context, 1, &cl->device, &size, ptrs, &status, &rc);
    free(data);
    if (rc != CL_SUCCESS || status != CL_SUCCESS) {
        if (p) clReleaseProgram(p);
        return NULL;
    }
    if (clBuildProgram(p, 1, &cl->device, cl->options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);       /* a stale or foreign binary: rebuild from source */
        return NULL;
    }
    return p;
}

cl_program llmc_cl_build(llmc_cl *cl, const char *name, const char *source, int *cached, char *err,
                         size_t err_len)
{
    char key[33], path[1024];
    const char *parts[] = {source, cl->options, cl->identity};
    hash_text(parts, 3, key);
    int use_cache = cache_path(key, path, sizeof path);
    if (cached) *cached = 0;
    if (use_cache) {
        cl_program p = from_binary(cl, path);
        if (p) {
            if (cached) *cached = 1;
            return p;
        }
    }
    cl_int rc;
    cl_program p = clCreateProgramWithSource(cl->context, 1, &source, NULL, &rc);
    if (rc != CL_SUCCESS) {
        fail(err, err_len, "clCreateProgramWithSource(%s) failed: %s", name, llmc_cl_error_string(rc));
        return NULL;
    }
    rc = clBuildProgram(p, 1, &cl->device, cl->options, NULL, NULL);
    if (rc != CL_SUCCESS) {
        char log[4096] = "";
        clGetProgramBuildInfo(p, cl->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        fail(err, err_len, "clBuildProgram(%s) failed on %s: %s (a bug in llmc's generated OpenCL); build log:\n%s",
             name, cl->device_name, llmc_cl_error_string(rc), log);
        clReleaseProgram(p);
        return NULL;
    }
    if (use_cache) write_binary(p, path);
    return p;
}

cl_kernel llmc_cl_kernel(llmc_cl *cl, cl_program program, const char *name, char *err, size_t err_len)
{
    cl_int rc;
    cl_kernel k = clCreateKernel(program, name, &rc);
    if (rc != CL_SUCCESS) {
        fail(err, err_len, "clCreateKernel(%s) failed on %s: %s", name, cl->device_name, llmc_cl_error_string(rc));
        return NULL;
    }
    return k;
}

/* ---- buffers ----------------------------------------------------------------------------------- */

cl_mem llmc_cl_alloc(llmc_cl *cl, size_t bytes, const void *init, const char *what, char *err, size_t err_len)
{
    cl_int rc;
    cl_mem_flags flags = CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0);
    cl_mem mem = clCreateBuffer(cl->context, flags, bytes ? bytes : 1, (void *)init, &rc);
    if (rc != CL_SUCCESS) {
        fail(err, err_len, "clCreateBuffer(%s, %zu bytes) failed on %s: %s", what, bytes, cl->device_name,
             llmc_cl_error_string(rc));
        return NULL;
    }
    return mem;
}

void llmc_cl_release(cl_mem mem)
{
    if (mem) clReleaseMemObject(mem);
}

void llmc_cl_write(llmc_cl *cl, cl_mem dst, size_t offset, const void *src, size_t bytes)
{
    if (cl->sticky[0] || !bytes) return;
    /* blocking on the host side: the host buffer may be reused as soon as this returns */
    cl_int rc = clEnqueueWriteBuffer(cl->queue, dst, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
    if (rc != CL_SUCCESS) stick(cl, "clEnqueueWriteBuffer", "to the device", rc);
}

void llmc_cl_copy(llmc_cl *cl, cl_mem dst, size_t dst_offset, cl_mem src, size_t src_offset, size_t bytes)
{
    if (cl->sticky[0] || !bytes || (dst == src && dst_offset == src_offset)) return;
    cl_int rc = clEnqueueCopyBuffer(cl->queue, src, dst, src_offset, dst_offset, bytes, 0, NULL, NULL);
    if (rc != CL_SUCCESS) stick(cl, "clEnqueueCopyBuffer", "on the device", rc);
}

int llmc_cl_read(llmc_cl *cl, void *dst, cl_mem src, size_t offset, size_t bytes, char *err, size_t err_len)
{
    if (!cl->sticky[0] && bytes) {
        cl_int rc = clEnqueueReadBuffer(cl->queue, src, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
        if (rc != CL_SUCCESS) stick(cl, "clEnqueueReadBuffer", "to the host", rc);
    }
    if (cl->sticky[0]) {
        fail(err, err_len, "%s", cl->sticky);
        cl->sticky[0] = 0;            /* reported once; the next forward call starts clean */
        return 0;
    }
    return 1;
}

int llmc_cl_finish(llmc_cl *cl, char *err, size_t err_len)
{
    cl_int rc = clFinish(cl->queue);
    if (rc != CL_SUCCESS) stick(cl, "clFinish", "queue", rc);
    return llmc_cl_read(cl, NULL, NULL, 0, 0, err, err_len);
}

/* ---- launches ---------------------------------------------------------------------------------- */

static void run(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const size_t *local, const char *args,
                va_list ap)
{
    if (cl->sticky[0]) return;
    for (int d = 0; d < dims; d++)
        if (global[d] == 0) return;           /* nothing to do (e.g. an empty expert slot) */
    cl_int rc = CL_SUCCESS;
    for (cl_uint i = 0; args[i] && rc == CL_SUCCESS; i++) {
        switch (args[i]) {
        case 'm': { cl_mem v = va_arg(ap, cl_mem); rc = clSetKernelArg(k, i, sizeof v, &v); break; }
        case 'i': { cl_int v = va_arg(ap, int); rc = clSetKernelArg(k, i, sizeof v, &v); break; }
        case 'l': { cl_long v = va_arg(ap, long); rc = clSetKernelArg(k, i, sizeof v, &v); break; }
        case 'f': { cl_float v = (cl_float)va_arg(ap, double); rc = clSetKernelArg(k, i, sizeof v, &v); break; }
        default: rc = CL_INVALID_ARG_VALUE;
        }
    }
    const char *call = "clSetKernelArg";
    if (rc == CL_SUCCESS) {
        call = "clEnqueueNDRangeKernel";
        cl_event ev = NULL;
        const double t0 = cl->profile ? now_ms() : 0;
        rc = clEnqueueNDRangeKernel(cl->queue, k, (cl_uint)dims, NULL, global, local, 0, NULL,
                                    cl->profile ? &ev : NULL);
        cl->launches++;
        if (ev) {
            profile_add(cl, k, ev, now_ms() - t0);
            clReleaseEvent(ev);
        }
    }
    if (rc != CL_SUCCESS) {
        char name[128] = "?";
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        stick(cl, call, name, rc);
    }
}

void llmc_cl_run(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const char *args, ...)
{
    va_list ap;
    va_start(ap, args);
    run(cl, k, dims, global, NULL, args, ap);
    va_end(ap);
}

void llmc_cl_run_local(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const size_t *local,
                       const char *args, ...)
{
    va_list ap;
    va_start(ap, args);
    run(cl, k, dims, global, local, args, ap);
    va_end(ap);
}

long llmc_cl_launches(const llmc_cl *cl) { return cl->launches; }
