// See include/buffered_socket_io.h.
#define _GNU_SOURCE
#include "buffered_socket_io.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { IN_CAP = 65536, OUT_CAP = 65536 };

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_close)(int);
static int (*real_socketpair)(int, int, int, int[2]);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void resolve(void) {
    real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_socketpair = (int (*)(int, int, int, int[2]))dlsym(RTLD_NEXT, "socketpair");
}

static inline void ready(void) {
    if (__builtin_expect(real_read == NULL, 0)) pthread_once(&once, resolve);
}

static __thread int claimed = -1;
static __thread unsigned char *inbuf;
static __thread size_t in_pos, in_len;
static __thread int drained;
static __thread unsigned char *outbuf;
static __thread size_t out_len;

// Muted fds (stored as fd + 1; 0 is a free slot), any thread. Few: one per MQTT client.
enum { MUTE_SLOTS = 64 };
static _Atomic int muted[MUTE_SLOTS];
static _Atomic int muted_count;

static int is_muted(int fd) {
    for (int i = 0; i < MUTE_SLOTS; i++)
        if (atomic_load_explicit(&muted[i], memory_order_relaxed) == fd + 1) return 1;
    return 0;
}

static void unmute(int fd) {
    for (int i = 0; i < MUTE_SLOTS; i++) {
        int expected = fd + 1;
        if (atomic_compare_exchange_strong(&muted[i], &expected, 0)) atomic_fetch_sub(&muted_count, 1);
    }
}

static __thread int capturing;
static __thread int captured_write_end = -1;

ssize_t read(int fd, void *buf, size_t n) {
    ready();
    if (fd != claimed || fd < 0) return real_read(fd, buf, n);
    if (in_pos < in_len) {
        size_t k = in_len - in_pos < n ? in_len - in_pos : n;
        memcpy(buf, inbuf + in_pos, k);
        in_pos += k;
        return (ssize_t)k;
    }
    if (n == 0) return 0;
    ssize_t r = real_read(fd, inbuf, IN_CAP);
    if (r <= 0) {
        drained = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        return r;
    }
    drained = r < IN_CAP;
    in_len = (size_t)r;
    size_t k = in_len < n ? in_len : n;
    memcpy(buf, inbuf, k);
    in_pos = k;
    return (ssize_t)k;
}

ssize_t write(int fd, const void *buf, size_t n) {
    ready();
    if (fd != claimed || fd < 0) {
        // A muted wake-up byte: nobody reads it (see fwio_mute).
        if (n == 1 && atomic_load_explicit(&muted_count, memory_order_relaxed) > 0 && fd >= 0 && is_muted(fd)) return 1;
        return real_write(fd, buf, n);
    }
    if (out_len + n > OUT_CAP) {
        if (fwio_flush() < 0) return -1;
        if (out_len + n > OUT_CAP) {
            if (out_len == 0) return real_write(fd, buf, n);  // larger than the buffer: as is
            errno = EAGAIN;  // the library keeps the rest of its packet and writes it later
            return -1;
        }
    }
    memcpy(outbuf + out_len, buf, n);
    out_len += n;
    return (ssize_t)n;
}

// The library closing the claimed socket (a DISCONNECT sent, an error, a keepalive timeout):
// what it wrote goes out first (DISCONNECT must reach the broker, or it publishes the will),
// and the claim ends before the fd number can be reused.
int close(int fd) {
    ready();
    if (fd == claimed && fd >= 0) {
        (void)fwio_flush();
        fwio_release();
    }
    // The number may be reused for something that must be written to.
    if (atomic_load_explicit(&muted_count, memory_order_relaxed) > 0 && fd >= 0) unmute(fd);
    return real_close(fd);
}

int socketpair(int domain, int type, int protocol, int sv[2]) {
    ready();
    int r = real_socketpair(domain, type, protocol, sv);
    if (r == 0 && capturing) captured_write_end = sv[1];
    return r;
}

void fwio_capture_socketpair(void) {
    capturing = 1;
    captured_write_end = -1;
}

int fwio_captured_socketpair(void) {
    capturing = 0;
    int fd = captured_write_end;
    captured_write_end = -1;
    return fd;
}

int fwio_mute(int fd) {
    if (fd < 0) return -1;
    if (is_muted(fd)) return 0;
    for (int i = 0; i < MUTE_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&muted[i], &expected, fd + 1)) {
            atomic_fetch_add(&muted_count, 1);
            return 0;
        }
    }
    return -1;
}

int fwio_is_muted(int fd) { return fd >= 0 && is_muted(fd); }

int fwio_flush(void) {
    ready();
    size_t off = 0;
    while (off < out_len) {
        ssize_t r = real_write(claimed, outbuf + off, out_len - off);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                memmove(outbuf, outbuf + off, out_len - off);
                out_len -= off;
                return 1;
            }
            int e = errno;
            out_len = 0;
            errno = e;
            return -1;
        }
        off += (size_t)r;
    }
    out_len = 0;
    return 0;
}

void fwio_claim(int fd) {
    if (fd == claimed) return;
    fwio_release();
    if (fd < 0) return;
    inbuf = malloc(IN_CAP);
    outbuf = malloc(OUT_CAP);
    if (!inbuf || !outbuf) {
        free(inbuf);
        free(outbuf);
        inbuf = outbuf = NULL;
        return;  // unbuffered: every call passes through
    }
    claimed = fd;
}

void fwio_release(void) {
    free(inbuf);
    free(outbuf);
    inbuf = outbuf = NULL;
    in_pos = in_len = out_len = 0;
    drained = 0;
    claimed = -1;
}

int fwio_claimed(void) { return claimed; }
size_t fwio_pending_input(void) { return in_len - in_pos; }
int fwio_drained(void) { return drained; }
size_t fwio_pending_output(void) { return out_len; }

int fwio_active(void) {
    // Through the dynamic symbol, as a shared library would bind it: is it this file's read?
    ssize_t (*bound)(int, void *, size_t) = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_DEFAULT, "read");
    return bound == read;
}

#include <sys/eventfd.h>

int fwio_wake_fd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void fwio_wake(int fd) {
    eventfd_t one = 1;
    (void)eventfd_write(fd, one);
}

void fwio_drain_wake(int fd) {
    eventfd_t v;
    (void)eventfd_read(fd, &v);
}
