/* What `.ci/run` preloads into the fuzz targets' bounded run (never into anything else),
 * so that one commit explores the same inputs on every run: the targets' code hashes with
 * keys from getrandom (std's RandomState), reads the clock (event ids, timestamps), and
 * libFuzzer follows what that code does. Together with a fixed -seed and address-space
 * randomization off (`setarch -R`: code that hashes addresses), the run is repeatable.
 *
 * getrandom/getentropy: a fixed xorshift stream. clock_gettime: a clock that starts at a
 * fixed instant and moves one microsecond a call, whichever clock is asked for. */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

static unsigned long long state = 0x9E3779B97F4A7C15ULL;
static unsigned long long ticks = 0;

static unsigned char next_byte(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned char)state;
}

ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
    (void)flags;
    unsigned char *out = buf;
    for (size_t i = 0; i < len; i++) {
        out[i] = next_byte();
    }
    return (ssize_t)len;
}

int getentropy(void *buf, size_t len) {
    getrandom(buf, len, 0);
    return 0;
}

int clock_gettime(clockid_t clock, struct timespec *tp) {
    (void)clock;
    unsigned long long ns = 1700000000ULL * 1000000000ULL + (ticks++) * 1000ULL;
    tp->tv_sec = (time_t)(ns / 1000000000ULL);
    tp->tv_nsec = (long)(ns % 1000000000ULL);
    return 0;
}
