#ifndef FLEETWATCH_BUFFERED_SOCKET_IO_H
#define FLEETWATCH_BUFFERED_SOCKET_IO_H

#include <stddef.h>

// Buffered reads and writes of one socket on one thread, under a library that does its own
// read(2)/write(2) calls (libmosquitto reads each MQTT packet's fixed header a byte at a time
// and writes every PUBACK on its own). This file defines read() and write() for the process;
// they pass every call straight to the C library's, except calls made on a thread that has
// claimed a socket, for that socket. close() of the claimed socket on that thread sends the
// held output and ends the claim first. socketpair() passes through, noting the pair while
// a thread captures (fwio_capture_socketpair). See docs/architecture.md ("MQTT I/O").

/// 1 if this process's read() and write() are the ones below (the executable exports them, so
/// shared libraries bind to them); 0 if not, and claiming then buffers nothing.
int fwio_active(void);

/// The calling thread claims `fd`: its reads fill a 64 KiB buffer with one system call, its
/// writes are held until `fwio_flush`. Claiming another fd drops what was buffered for the old
/// one. Other threads and other fds are untouched.
void fwio_claim(int fd);

/// Drops the claim and anything buffered (call `fwio_flush` first to keep the output).
void fwio_release(void);

/// The fd this thread has claimed, or -1.
int fwio_claimed(void);

/// Bytes read from the socket and not yet taken by the library.
size_t fwio_pending_input(void);

/// 1 if the last read(2) of the claimed socket returned less than it asked for (or would have
/// blocked): it held no more at that moment, so poll(2) before reading again.
int fwio_drained(void);

/// Bytes written by the library and not yet sent.
size_t fwio_pending_output(void);

/// Sends the held output: 0 when all is sent, 1 when the socket is full (poll for POLLOUT and
/// flush again), -1 on an error (errno; the output is dropped, as a reset connection drops its
/// kernel send buffer).
int fwio_flush(void);

/// Wake-up bytes nobody reads. libmosquitto writes one byte to its own socketpair for every
/// packet it queues (one system call per PUBACK), so that `mosquitto_loop`'s select wakes up.
/// A client driven without `mosquitto_loop` never reads that socketpair: the writes only fail
/// once it is full, a system call each. Around `mosquitto_new`, `fwio_capture_socketpair()`
/// starts noting the socketpairs this thread creates and `fwio_captured_socketpair()` stops and
/// returns the write end of the last one (-1 if none: socketpair() is not this file's). Then
/// `fwio_mute(fd)` makes every 1-byte write to it, from any thread, return 1 without a system
/// call, until the fd is closed. 0 on success, -1 if fd < 0 or all 64 slots are taken.
void fwio_capture_socketpair(void);
int fwio_captured_socketpair(void);
int fwio_mute(int fd);
int fwio_is_muted(int fd);

/// An eventfd another thread can wake a poll(2) with (non-blocking, close-on-exec); -1 on error.
int fwio_wake_fd(void);
void fwio_wake(int fd);
void fwio_drain_wake(int fd);

#endif
