#ifndef HULYNET_CZEROMQ_SHIM_H
#define HULYNET_CZEROMQ_SHIM_H
#include <zmq.h>
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>

/* errno is a macro on glibc; Swift cannot read it directly in every mode. */
static inline int hulynet_zmq_errno(void) { return zmq_errno(); }
/* A non-blocking eventfd that wakes an I/O loop's poll. */
static inline int hulynet_wake_fd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
#endif
