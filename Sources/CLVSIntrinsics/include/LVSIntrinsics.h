#ifndef LVS_INTRINSICS_H
#define LVS_INTRINSICS_H
/* Compiler intrinsics the Swift standard library does not expose. Header-only: no system calls. */

/// Asks the CPU to start loading the cache line at `address` for reading. Unlike a plain load it
/// retires at once, so the work that follows is not held up waiting for memory.
static inline __attribute__((always_inline)) void lvs_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// The same, for a line that is about to be written.
static inline __attribute__((always_inline)) void lvs_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}
#endif
