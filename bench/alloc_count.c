/* An LD_PRELOAD library that counts heap allocations (calls and bytes) of the whole process,
 * for bench/allocs_per_step.py: dcgan_alloc_stats(out) writes {calls, bytes} so far.
 * Build: gcc -O2 -shared -fPIC -o alloc_count.so alloc_count.c */
#include <stddef.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong n_calls, n_bytes;

static void count(size_t n) {
  atomic_fetch_add_explicit(&n_calls, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, n, memory_order_relaxed);
}

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(n); return __libc_realloc(p, n); }
void *memalign(size_t al, size_t n) { count(n); return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { count(n); return __libc_memalign(al, n); }
int posix_memalign(void **p, size_t al, size_t n) {
  count(n);
  *p = __libc_memalign(al, n);
  return *p ? 0 : 12; /* ENOMEM */
}

void dcgan_alloc_stats(unsigned long *out) {
  out[0] = atomic_load(&n_calls);
  out[1] = atomic_load(&n_bytes);
}
