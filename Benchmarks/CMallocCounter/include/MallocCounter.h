#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
#include <stdint.h>
/// Number of malloc/calloc/realloc/posix_memalign calls made by this process so far.
uint64_t lvs_malloc_count(void);
#endif
