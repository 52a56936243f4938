/* The thread pool and workspace allocator of kernels compiled ahead (aq-compile), linked into
 * their shared library, so that a machine with only the TVM FFI runtime (apache-tvm-ffi, no
 * libtvm_runtime.so) runs them in parallel.
 *
 * TVM's LLVM code calls a parallel loop through the library's `__TVMBackendParallelLaunch`
 * pointer (and `__TVMBackendParallelBarrier`, `__TVMBackendAllocWorkspace`,
 * `__TVMBackendFreeWorkspace`), which libtvm_runtime.so fills in when it is loaded and nothing
 * fills in otherwise: the loader (ahead.py) points them at this file's functions, those of the
 * first library it loaded, so that every kernels library of a process shares one pool.
 * `aq_pool_start(n)` starts it: n - 1 workers plus the calling thread, which spin briefly for
 * the next launch, then sleep.
 * A launch runs tasks 0..num_task-1 (num_task 0: one per thread), thread t taking tasks
 * t, t + n, ...; it returns when all are done, -1 if any task failed. */

#define _POSIX_C_SOURCE 200809L /* posix_memalign under -std=c11 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  void* sync_handle;
  int32_t num_task;
} TVMParallelGroupEnv;
typedef int (*FTVMParallelLambda)(int task_id, TVMParallelGroupEnv* penv, void* cdata);

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPINS = 1 << 18 };  /* about 1-10 ms of spinning before a worker sleeps */

static int n_threads = 1;  /* the calling thread included */
static FTVMParallelLambda job_f;
static void* job_cdata;
static TVMParallelGroupEnv job_env;
static atomic_int job_gen, job_left, job_err, sleepers, busy;
static atomic_int barrier_count, barrier_sense;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void run_tasks(int thread) {
  for (int t = thread; t < job_env.num_task; t += n_threads)
    if (job_f(t, &job_env, job_cdata) != 0) atomic_store(&job_err, 1);
}

static void* worker(void* arg) {
  int thread = (int)(intptr_t)arg, seen = 0;
  for (;;) {
    int gen, spins = 0;
    while ((gen = atomic_load_explicit(&job_gen, memory_order_acquire)) == seen) {
      if (++spins < SPINS) {
        CPU_RELAX();
        continue;
      }
      pthread_mutex_lock(&mu);
      atomic_fetch_add(&sleepers, 1);
      while (atomic_load(&job_gen) == seen) pthread_cond_wait(&cv, &mu);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&mu);
      spins = 0;
    }
    seen = gen;
    run_tasks(thread);
    atomic_fetch_sub_explicit(&job_left, 1, memory_order_release);
  }
  return NULL;
}

static int serial(FTVMParallelLambda f, void* cdata, int num_task) {
  TVMParallelGroupEnv env = {NULL, num_task};
  int err = 0;
  for (int t = 0; t < num_task; ++t) err |= f(t, &env, cdata) != 0;
  return err ? -1 : 0;
}

int aq_parallel_launch(FTVMParallelLambda f, void* cdata, int num_task) {
  if (num_task <= 0) num_task = n_threads;
  int idle = 0;
  /* one launch at a time: a launch from another thread (or from inside a task) runs serially */
  if (n_threads == 1 || !atomic_compare_exchange_strong(&busy, &idle, 1))
    return serial(f, cdata, num_task);
  job_f = f;
  job_cdata = cdata;
  job_env.num_task = num_task;
  atomic_store(&job_err, 0);
  atomic_store(&job_left, n_threads - 1);
  pthread_mutex_lock(&mu);
  atomic_fetch_add_explicit(&job_gen, 1, memory_order_release);
  if (atomic_load(&sleepers)) pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  run_tasks(0);
  while (atomic_load_explicit(&job_left, memory_order_acquire) > 0) CPU_RELAX();
  int err = atomic_load(&job_err);
  atomic_store(&busy, 0);
  return err ? -1 : 0;
}

int aq_parallel_barrier(int task_id, TVMParallelGroupEnv* penv) {
  (void)task_id;
  int sense = atomic_load(&barrier_sense);
  if (atomic_fetch_add(&barrier_count, 1) == penv->num_task - 1) {
    atomic_store(&barrier_count, 0);
    atomic_store(&barrier_sense, !sense);
  } else {
    while (atomic_load(&barrier_sense) == sense) CPU_RELAX();
  }
  return 0;
}

void* aq_alloc_workspace(int device_type, int device_id, uint64_t nbytes, int code, int bits) {
  (void)device_type, (void)device_id, (void)code, (void)bits;
  void* p = NULL;
  return posix_memalign(&p, 64, nbytes ? nbytes : 1) == 0 ? p : NULL;
}

int aq_free_workspace(int device_type, int device_id, void* ptr) {
  (void)device_type, (void)device_id;
  free(ptr);
  return 0;
}

/* Start the pool (once: later calls only report its size). Returns its thread count. */
int aq_pool_start(int threads) {
  static int started = 0;
  if (!started) {
    started = 1;
    n_threads = threads > 1 ? threads : 1;
    for (int t = 1; t < n_threads; ++t) {
      pthread_t th;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      int failed = pthread_create(&th, &attr, worker, (void*)(intptr_t)t) != 0;
      pthread_attr_destroy(&attr);
      if (failed) {
        n_threads = t;  /* fewer threads than asked: the tasks still all run */
        break;
      }
    }
  }
  return n_threads;
}
