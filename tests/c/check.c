/* check.c: the counters, reports and watchdog of check.h. */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *check_current_test = "(none)";
int check_failed_count = 0;

static const char *binary_name = "test";
static int passed_count = 0;
static int watchdog_seconds_ = 60;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

int64_t check_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void check_sleep_ms(int64_t ms) {
    struct timespec pause;
    pause.tv_sec = (time_t)(ms / 1000);
    pause.tv_nsec = (long)((ms % 1000) * 1000000);
    while (nanosleep(&pause, &pause) != 0) {
    }
}

static void *watchdog(void *unused) {
    int64_t deadline = check_now_ms() + (int64_t)watchdog_seconds_ * 1000;
    (void)unused;
    while (check_now_ms() < deadline) check_sleep_ms(100);
    fprintf(stderr, "\n%s: WATCHDOG: still running after %d s (test %s): a call hangs; aborting\n", binary_name,
            watchdog_seconds_, check_current_test);
    fflush(stderr);
    _exit(3);
    return NULL;
}

void check_init(const char *binary, int watchdog_seconds) {
    pthread_t thread;
    binary_name = binary;
    watchdog_seconds_ = watchdog_seconds;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pthread_create(&thread, NULL, watchdog, NULL) == 0) pthread_detach(thread);
}

int check_summary(void) {
    int passed, failed;
    pthread_mutex_lock(&counter_lock);
    passed = passed_count;
    failed = check_failed_count;
    pthread_mutex_unlock(&counter_lock);
    printf("%s: %d passed, %d failed\n", binary_name, passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

int check_report(int ok, const char *file, int line, const char *what) {
    pthread_mutex_lock(&counter_lock);
    if (ok) passed_count++;
    else check_failed_count++;
    pthread_mutex_unlock(&counter_lock);
    if (!ok) {
        printf("FAIL %s:%d [%s]: %s\n", file, line, check_current_test, what);
        fflush(stdout);
    }
    return ok;
}

static int report_status(int ok, int status, const char *expected_text, const char *file, int line, const char *call_text) {
    if (!ok) {
        /* Read the thread's last error before anything else can replace it. */
        const char *last = hulynet_last_error();
        char detail[2048];
        snprintf(detail, sizeof detail, "%s\n     returned %d (%s), expected %s; hulynet_last_error: \"%s\"", call_text,
                 status, hulynet_strerror(status), expected_text, last ? last : "(NULL)");
        return check_report(0, file, line, detail);
    }
    return check_report(1, file, line, call_text);
}

int check_status(int status, int expected, const char *file, int line, const char *call_text) {
    char expected_text[128];
    snprintf(expected_text, sizeof expected_text, "%d (%s)", expected, hulynet_strerror(expected));
    return report_status(status == expected, status, expected_text, file, line, call_text);
}

int check_status2(int status, int expected1, int expected2, const char *file, int line, const char *call_text) {
    char expected_text[256];
    snprintf(expected_text, sizeof expected_text, "%d (%s) or %d (%s)", expected1, hulynet_strerror(expected1), expected2,
             hulynet_strerror(expected2));
    return report_status(status == expected1 || status == expected2, status, expected_text, file, line, call_text);
}

int check_str_eq(const char *actual, const char *expected, const char *file, int line, const char *what) {
    int ok = actual != NULL && expected != NULL && strcmp(actual, expected) == 0;
    if (!ok) {
        char detail[2048];
        snprintf(detail, sizeof detail, "%s\n     actual \"%.900s\", expected \"%.900s\"", what, actual ? actual : "(NULL)",
                 expected ? expected : "(NULL)");
        return check_report(0, file, line, detail);
    }
    return check_report(1, file, line, what);
}

int check_contains(const char *haystack, const char *needle, const char *file, int line, const char *what) {
    int ok = haystack != NULL && needle != NULL && strstr(haystack, needle) != NULL;
    if (!ok) {
        char detail[2048];
        snprintf(detail, sizeof detail, "%s\n     text \"%.1500s\" lacks \"%s\"", what, haystack ? haystack : "(NULL)",
                 needle ? needle : "(NULL)");
        return check_report(0, file, line, detail);
    }
    return check_report(1, file, line, what);
}

int check_not_contains(const char *haystack, const char *needle, const char *file, int line, const char *what) {
    int ok = haystack != NULL && needle != NULL && strstr(haystack, needle) == NULL;
    if (!ok) {
        char detail[2048];
        snprintf(detail, sizeof detail, "%s\n     text \"%.1500s\"", what, haystack ? haystack : "(NULL)");
        return check_report(0, file, line, detail);
    }
    return check_report(1, file, line, what);
}

int check_int_eq(long long actual, long long expected, const char *file, int line, const char *what) {
    if (actual != expected) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s\n     actual %lld, expected %lld", what, actual, expected);
        return check_report(0, file, line, detail);
    }
    return check_report(1, file, line, what);
}

void check_note(const char *format, ...) {
    va_list args;
    va_start(args, format);
    printf("     note: ");
    vprintf(format, args);
    printf("\n");
    va_end(args);
    fflush(stdout);
}

void check_run_test(const char *name, void (*fn)(void)) {
    int failed_before;
    int64_t start = check_now_ms();
    pthread_mutex_lock(&counter_lock);
    failed_before = check_failed_count;
    pthread_mutex_unlock(&counter_lock);
    check_current_test = name;
    printf("---- %s\n", name);
    fn();
    pthread_mutex_lock(&counter_lock);
    failed_before = check_failed_count - failed_before;
    pthread_mutex_unlock(&counter_lock);
    printf("%s %s (%lld ms)\n", failed_before == 0 ? "PASS" : "FAIL", name, (long long)(check_now_ms() - start));
    check_current_test = "(between tests)";
}
