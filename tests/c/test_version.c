/* Version, status texts, last error (per thread), hulynet_free and the log handler. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

static void test_version(void) {
    CHECK_INT_EQ(hulynet_version_number(), HULYNET_VERSION_NUMBER);
    CHECK_STR_EQ(hulynet_version_string(), HULYNET_VERSION_STRING);
    CHECK_INT_EQ(HULYNET_VERSION_NUMBER, HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH);
    /* Static storage: the same pointer every time. */
    CHECK(hulynet_version_string() == hulynet_version_string());
}

static void test_strerror(void) {
    static const int codes[] = {HULYNET_OK,       HULYNET_EINVAL, HULYNET_EJSON,  HULYNET_ENOTFOUND, HULYNET_ETIMEOUT,
                                HULYNET_ECLOSED,  HULYNET_EREMOTE, HULYNET_EBIND, HULYNET_ECONNECT,  HULYNET_EINTERNAL,
                                HULYNET_EAGAIN,   HULYNET_ELIMIT};
    const size_t count = sizeof codes / sizeof codes[0];
    size_t i, j;
    const char *unknown = hulynet_strerror(12345);
    for (i = 0; i < count; i++) {
        const char *text = hulynet_strerror(codes[i]);
        CHECK_MSG(text != NULL && text[0] != '\0', "hulynet_strerror(code) is non-empty");
        CHECK_MSG(text != NULL && unknown != NULL && strcmp(text, unknown) != 0, "a known code is not \"unknown status\"");
        for (j = 0; j < i; j++) {
            const char *other = hulynet_strerror(codes[j]);
            CHECK_MSG(text != NULL && other != NULL && strcmp(text, other) != 0, "status texts are distinct");
        }
    }
    CHECK_STR_EQ(unknown, "unknown status");
    CHECK_STR_EQ(hulynet_strerror(-12), "unknown status");
    CHECK_STR_EQ(hulynet_strerror(1), "unknown status");
    CHECK_STR_EQ(hulynet_strerror(-2147483647 - 1), "unknown status");
}

typedef struct thread_probe {
    char before[256];
    char after[256];
    int status;
} thread_probe;

static void *fresh_thread(void *argument) {
    thread_probe *probe = argument;
    hulynet_server *server = NULL;
    snprintf(probe->before, sizeof probe->before, "%s", hulynet_last_error() ? hulynet_last_error() : "(NULL)");
    probe->status = hulynet_server_start("127.0.0.1", -5, NULL, &server);
    snprintf(probe->after, sizeof probe->after, "%s", hulynet_last_error() ? hulynet_last_error() : "(NULL)");
    return NULL;
}

static void test_last_error(void) {
    hulynet_server *server = NULL;
    char mine[256];
    thread_probe probe;
    pthread_t thread;

    CHECK_STATUS(hulynet_server_start(NULL, 0, NULL, &server), HULYNET_EINVAL);
    CHECK(server == NULL);
    CHECK(hulynet_last_error() != NULL && hulynet_last_error()[0] != '\0');
    CHECK_CONTAINS(hulynet_last_error(), "host");
    snprintf(mine, sizeof mine, "%s", hulynet_last_error());

    /* Per thread: a new thread starts with "" and its failure does not change this thread's. */
    memset(&probe, 0, sizeof probe);
    CHECK(pthread_create(&thread, NULL, fresh_thread, &probe) == 0);
    pthread_join(thread, NULL);
    CHECK_STR_EQ(probe.before, "");
    CHECK_INT_EQ(probe.status, HULYNET_EINVAL);
    CHECK_CONTAINS(probe.after, "port");
    CHECK_STR_EQ(hulynet_last_error(), mine);

    /* A later failure replaces the message. */
    CHECK_STATUS(hulynet_server_port(NULL), HULYNET_EINVAL);
    CHECK(hulynet_last_error() != NULL && hulynet_last_error()[0] != '\0');
}

static void test_free(void) {
    hulynet_client *client = NULL;
    char *out = NULL;
    hulynet_free(NULL); /* does nothing */
    /* A failed call leaves *out NULL, which hulynet_free accepts. */
    out = (char *)&client;
    CHECK_STATUS(hulynet_client_kinds(client, 100, &out), HULYNET_EINVAL);
    CHECK(out == NULL);
    hulynet_free(out);
}

typedef struct log_sink {
    pthread_mutex_t lock;
    int count;
    int bad_level;
    int empty;
} log_sink;

static void log_fn(void *user, int level, const char *message) {
    log_sink *sink = user;
    pthread_mutex_lock(&sink->lock);
    sink->count++;
    if (level < HULYNET_LOG_TRACE || level > HULYNET_LOG_CRITICAL) sink->bad_level++;
    if (message == NULL || message[0] == '\0') sink->empty++;
    pthread_mutex_unlock(&sink->lock);
}

static void test_log_handler(void) {
    static log_sink sink; /* static: a log call racing with the reset may still arrive */
    hulynet_server *server = NULL;
    int after_reset;
    memset(&sink, 0, sizeof sink);
    pthread_mutex_init(&sink.lock, NULL);

    CHECK_STATUS(hulynet_set_log_handler(log_fn, &sink, -1), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_set_log_handler(log_fn, &sink, HULYNET_LOG_CRITICAL + 1), HULYNET_EINVAL);
    CHECK_OK(hulynet_set_log_handler(log_fn, &sink, HULYNET_LOG_TRACE));
    /* A server logs (at least) that it listens, at info level. */
    CHECK_OK(hulynet_server_start("127.0.0.1", 0, NULL, &server));
    CHECK_EVENTUALLY(fx_int(&sink.lock, &sink.count) > 0, 2000);
    hulynet_server_destroy(server);
    server = NULL;
    CHECK_INT_EQ(fx_int(&sink.lock, &sink.bad_level), 0);
    CHECK_INT_EQ(fx_int(&sink.lock, &sink.empty), 0);

    /* Back to the default: the handler is not called any more. */
    CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_INFO));
    after_reset = fx_int(&sink.lock, &sink.count);
    CHECK_OK(hulynet_server_start("127.0.0.1", 0, NULL, &server));
    hulynet_server_destroy(server);
    CHECK_INT_EQ(fx_int(&sink.lock, &sink.count), after_reset);
}

int main(void) {
    check_init("test_c_version", 50);
    RUN_TEST(test_version);
    RUN_TEST(test_strerror);
    RUN_TEST(test_last_error);
    RUN_TEST(test_free);
    RUN_TEST(test_log_handler);
    return check_summary();
}
