/*
 * test_callbacks.c: callbacks run on the library's callback threads. Several container and
 * event callbacks that block for 2 s each do not slow down gets, requests and events of other
 * containers and clients; the number of threads is set by the environment or the API.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

#define SLOW_MS 2000
/* What "full speed" means on a loaded 2-core machine: far below SLOW_MS, far above a round trip. */
#define FAST_MS 500

/* ---- a kind whose requests block for SLOW_MS ------------------------------------------------ */

typedef struct slow_kind {
    pthread_mutex_t lock;
    int started;  /* request callbacks that began */
    int finished; /* request callbacks that returned */
} slow_kind;

static int slow_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                      void **container_user) {
    (void)container;
    (void)uuid;
    (void)options_json;
    *container_user = kind_user;
    return HULYNET_OK;
}

static void slow_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                         const char *client_id) {
    slow_kind *kind = container_user;
    (void)operation;
    (void)client_id;
    fx_note_thread();
    pthread_mutex_lock(&kind->lock);
    kind->started++;
    pthread_mutex_unlock(&kind->lock);
    check_sleep_ms(SLOW_MS); /* blocks its thread, as a careless callback would */
    hulynet_request_reply(request, data_json);
    pthread_mutex_lock(&kind->lock);
    kind->finished++;
    pthread_mutex_unlock(&kind->lock);
}

/* An event function that blocks for SLOW_MS on its first event. */
typedef struct slow_events {
    pthread_mutex_t lock;
    int started, finished;
} slow_events;

static void slow_event_fn(void *user, const char *json) {
    slow_events *events = user;
    int first;
    (void)json;
    fx_note_thread();
    pthread_mutex_lock(&events->lock);
    first = events->started++ == 0;
    pthread_mutex_unlock(&events->lock);
    if (first) check_sleep_ms(SLOW_MS);
    pthread_mutex_lock(&events->lock);
    events->finished++;
    pthread_mutex_unlock(&events->lock);
}

/* ---- tests ------------------------------------------------------------------------------------ */

/* The size comes from HULYNET_CALLBACK_THREADS (ctest sets 6) or the API; misuse is refused. */
static void test_pool_size(void) {
    const char *env = getenv("HULYNET_CALLBACK_THREADS");
    if (env != NULL) CHECK_INT_EQ(hulynet_callback_threads(), atoi(env));
    else CHECK(hulynet_callback_threads() >= 4);
    CHECK_STATUS(hulynet_set_callback_threads(-1), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "out of range");
    CHECK_STATUS(hulynet_set_callback_threads(1025), HULYNET_EINVAL);
    CHECK_OK(hulynet_set_callback_threads(3));
    CHECK_INT_EQ(hulynet_callback_threads(), 3);
    CHECK_OK(hulynet_set_callback_threads(0));
    if (env != NULL) CHECK_INT_EQ(hulynet_callback_threads(), atoi(env));
    CHECK_OK(hulynet_set_callback_threads(8));
    CHECK_INT_EQ(hulynet_callback_threads(), 8);
}

/* Three request callbacks and one event function block for 2 s each (more than Swift's
 * cooperative pool has threads on this machine); meanwhile a get of a new container, blocking and
 * asynchronous requests, and events of other containers and clients all finish quickly. */
static void test_slow_callbacks(void) {
    fx_network net;
    slow_kind slow;
    slow_events blocked;
    fx_events events;
    fx_async async[10];
    hulynet_container_kind table;
    hulynet_agent *slow_agent = NULL;
    hulynet_client *slow_host = NULL;
    hulynet_reference *slow_ref = NULL, *echo_ref = NULL, *other_ref = NULL, *fresh = NULL;
    hulynet_connection *blocked_conn = NULL, *live_conn = NULL;
    fx_async slow_results[3];
    char *out = NULL;
    int64_t began, worst = 0, took;
    int i, ok;

    memset(&slow, 0, sizeof slow);
    pthread_mutex_init(&slow.lock, NULL);
    memset(&blocked, 0, sizeof blocked);
    pthread_mutex_init(&blocked.lock, NULL);
    fx_events_init(&events);
    for (i = 0; i < 10; i++) fx_async_init(&async[i]);
    for (i = 0; i < 3; i++) fx_async_init(&slow_results[i]);
    CHECK_OK(hulynet_set_callback_threads(8));

    if (!fx_network_up(&net, "cb", "echo", 1)) goto done;
    memset(&table, 0, sizeof table);
    table.size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    table.kind = "slow";
    table.kind_user = &slow;
    table.start = slow_start;
    table.request = slow_request;
    slow_host = fx_client(hulynet_server_port(net.server));
    if (slow_host == NULL || !CHECK_OK(hulynet_agent_create(NULL, &table, 1, &slow_agent))) goto done;
    if (!CHECK_OK(hulynet_client_serve_agent(slow_host, slow_agent, "127.0.0.1", 0, 3000))) goto done;

    /* The user's connection to an echo container, whose event function will block. */
    if (!CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"cb-echo\"}", 3000, &echo_ref))) goto done;
    if (!CHECK_OK(hulynet_reference_connect(echo_ref, 3000, &blocked_conn))) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(blocked_conn, slow_event_fn, &blocked));
    /* The other client's connection to the same container, with a quick event function. */
    if (!CHECK_OK(hulynet_client_get(net.other, "echo", "{\"uuid\":\"cb-echo\"}", 3000, &other_ref))) goto done;
    if (!CHECK_OK(hulynet_reference_connect(other_ref, 3000, &live_conn))) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(live_conn, fx_event_fn, &events));
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.connects) == 2, 2000);

    /* Block: three slow requests and the user's event function. */
    if (!CHECK_OK(hulynet_client_get(net.user, "slow", NULL, 3000, &slow_ref))) goto done;
    for (i = 0; i < 3; i++)
        CHECK_OK(hulynet_reference_request_async(slow_ref, "wait", "1", 10000, fx_result_fn, &slow_results[i]));
    CHECK_OK(hulynet_connection_request(live_conn, "emit_all", "\"first\"", 2000, &out));
    CHECK_CONTAINS(out, "\"delivered\":2");
    hulynet_free(out);
    out = NULL;
    WAIT_UNTIL(ok, fx_int(&slow.lock, &slow.started) == 3 && fx_int(&blocked.lock, &blocked.started) == 1, 1500);
    CHECK_MSG(ok, "three slow requests and one slow event function run at the same time");
    began = check_now_ms();

    /* Meanwhile, at full speed: a get that starts a new container... */
    took = check_now_ms();
    CHECK_OK(hulynet_client_get(net.other, "echo", "{\"uuid\":\"cb-fresh\"}", 3000, &fresh));
    took = check_now_ms() - took;
    check_note("get of a new container while callbacks block: %lld ms", (long long)took);
    CHECK(took < FAST_MS);
    /* ...blocking requests through the coordinator and on a connection... */
    for (i = 0; i < 20; i++) {
        took = check_now_ms();
        CHECK_ANSWER(hulynet_reference_request(fresh, "echo", "[1,2]", 2000, &out), out, "[1,2]");
        CHECK_ANSWER(hulynet_connection_request(live_conn, "echo", "3", 2000, &out), out, "3");
        took = check_now_ms() - took;
        if (took > worst) worst = took;
    }
    check_note("slowest pair of requests while callbacks block: %lld ms", (long long)worst);
    CHECK(worst < FAST_MS);
    /* ...asynchronous requests with their result functions... */
    took = check_now_ms();
    for (i = 0; i < 10; i++) CHECK_OK(hulynet_reference_request_async(fresh, "echo", "7", 2000, fx_result_fn, &async[i]));
    for (i = 0; i < 10; i++) CHECK_EVENTUALLY(fx_async_calls(&async[i]) == 1, FAST_MS);
    took = check_now_ms() - took;
    check_note("10 asynchronous requests while callbacks block: %lld ms", (long long)took);
    CHECK(took < FAST_MS);
    for (i = 0; i < 10; i++) CHECK_STR_EQ(async[i].text, "7");
    /* ...and events to the other client, while the user's event function still blocks. */
    took = check_now_ms();
    CHECK_OK(hulynet_connection_request(live_conn, "emit_all", "\"second\"", 2000, &out));
    CHECK_CONTAINS(out, "\"delivered\":2");
    hulynet_free(out);
    out = NULL;
    CHECK_EVENTUALLY(fx_events_seen(&events, "\"second\""), FAST_MS);
    took = check_now_ms() - took;
    check_note("an event while another connection's event function blocks: %lld ms", (long long)took);

    /* All of that happened while the slow callbacks were still blocked. */
    check_note("fast phase: %lld ms", (long long)(check_now_ms() - began));
    CHECK_INT_EQ(fx_int(&slow.lock, &slow.finished), 0);
    CHECK_INT_EQ(fx_int(&blocked.lock, &blocked.finished), 0);

    /* Then the slow ones finish, and the blocked connection gets its second event in order. */
    for (i = 0; i < 3; i++) CHECK_EVENTUALLY(fx_async_calls(&slow_results[i]) == 1, 2 * SLOW_MS);
    for (i = 0; i < 3; i++) CHECK_INT_EQ(slow_results[i].status, HULYNET_OK);
    CHECK_EVENTUALLY(fx_int(&blocked.lock, &blocked.finished) == 2, 2 * SLOW_MS);
    CHECK_INT_EQ(fx_off_pool_calls(), 0);

done:
    hulynet_free(out);
    hulynet_connection_destroy(blocked_conn);
    hulynet_connection_destroy(live_conn);
    hulynet_reference_destroy(fresh);
    hulynet_reference_destroy(other_ref);
    hulynet_reference_destroy(echo_ref);
    hulynet_reference_destroy(slow_ref);
    hulynet_agent_destroy(slow_agent);
    hulynet_client_destroy(slow_host);
    fx_network_down(&net);
    for (i = 0; i < 10; i++) fx_async_destroy(&async[i]);
    for (i = 0; i < 3; i++) fx_async_destroy(&slow_results[i]);
    fx_events_destroy(&events);
    pthread_mutex_destroy(&blocked.lock);
    pthread_mutex_destroy(&slow.lock);
}

int main(void) {
    check_init("test_c_callbacks", 55);
    RUN_TEST(test_pool_size);
    RUN_TEST(test_slow_callbacks);
    return check_summary();
}
