/*
 * check.h: a tiny assertion framework for the C tests of libhulynet.
 *
 * Every CHECK* macro counts one check as passed or failed and, on failure, prints where and why
 * (for calls: the call's text, its status, hulynet_strerror() and hulynet_last_error()). A failed
 * check does not stop the test; RUN_TEST runs one test function; check_summary() prints
 * "<binary>: N passed, N failed" and returns the process exit status (non-zero on failure).
 *
 * Waiting is always bounded: CHECK_EVENTUALLY / WAIT_UNTIL poll a condition every few
 * milliseconds until it holds or a deadline passes. A watchdog thread ends a binary that hangs.
 */
#ifndef HULYNET_CHECK_H
#define HULYNET_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "hulynet.h"

/* Starts the counters and a watchdog that ends the process (exit status 3) after
 * `watchdog_seconds`, printing which test was running. */
void check_init(const char *binary, int watchdog_seconds);
/* Prints the summary; returns 0 when every check passed, 1 otherwise. */
int check_summary(void);

/* Records one check. Returns `ok`. */
int check_report(int ok, const char *file, int line, const char *what);
/* Records the check of a status returned by `call_text`. Returns 1 when status == expected. */
int check_status(int status, int expected, const char *file, int line, const char *call_text);
/* As check_status, but any of two expected statuses is right. */
int check_status2(int status, int expected1, int expected2, const char *file, int line, const char *call_text);
int check_str_eq(const char *actual, const char *expected, const char *file, int line, const char *what);
int check_contains(const char *haystack, const char *needle, const char *file, int line, const char *what);
int check_not_contains(const char *haystack, const char *needle, const char *file, int line, const char *what);
int check_int_eq(long long actual, long long expected, const char *file, int line, const char *what);

/* Prints a note (no check): context for a reader of the output. */
void check_note(const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

int64_t check_now_ms(void);
void check_sleep_ms(int64_t ms);

/* The test being run (for the watchdog and failure messages). */
extern const char *check_current_test;
extern int check_failed_count;

#define CHECK(cond) check_report((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
#define CHECK_MSG(cond, what) check_report((cond) ? 1 : 0, __FILE__, __LINE__, (what))
#define CHECK_OK(call) check_status((call), HULYNET_OK, __FILE__, __LINE__, #call)
#define CHECK_STATUS(call, expected) check_status((call), (expected), __FILE__, __LINE__, #call)
#define CHECK_STATUS2(call, e1, e2) check_status2((call), (e1), (e2), __FILE__, __LINE__, #call)
#define CHECK_STR_EQ(actual, expected) check_str_eq((actual), (expected), __FILE__, __LINE__, #actual " == " #expected)
#define CHECK_CONTAINS(haystack, needle) check_contains((haystack), (needle), __FILE__, __LINE__, #haystack " contains " #needle)
#define CHECK_NOT_CONTAINS(haystack, needle) \
    check_not_contains((haystack), (needle), __FILE__, __LINE__, #haystack " does not contain " #needle)
#define CHECK_INT_EQ(actual, expected) check_int_eq((long long)(actual), (long long)(expected), __FILE__, __LINE__, #actual " == " #expected)

/* Polls `cond` every 2 ms until it holds (ok = 1) or `ms` milliseconds have passed (ok = 0). */
#define WAIT_UNTIL(ok, cond, ms)                                                                   \
    do {                                                                                           \
        int64_t wait_deadline_ = check_now_ms() + (ms);                                            \
        (ok) = 0;                                                                                  \
        for (;;) {                                                                                 \
            if (cond) {                                                                            \
                (ok) = 1;                                                                          \
                break;                                                                             \
            }                                                                                      \
            if (check_now_ms() >= wait_deadline_) break;                                          \
            check_sleep_ms(2);                                                                     \
        }                                                                                          \
    } while (0)

/* A check that `cond` comes true within `ms` milliseconds. */
#define CHECK_EVENTUALLY(cond, ms)                                                                 \
    do {                                                                                           \
        int eventually_ok_;                                                                        \
        WAIT_UNTIL(eventually_ok_, cond, ms);                                                      \
        check_report(eventually_ok_, __FILE__, __LINE__, "within " #ms " ms: " #cond);            \
    } while (0)

#define RUN_TEST(fn) check_run_test(#fn, fn)
void check_run_test(const char *name, void (*fn)(void));

#endif /* HULYNET_CHECK_H */
