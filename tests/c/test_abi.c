/*
 * test_abi.c: hulynet.h 0.2's growth points, old and new uses. Option structs in the 0.1 layout
 * (as a program built against hulynet.h 0.1 passes them) and sized ones (HULYNET_*_INIT), with
 * fields this library does not know; destroy notifications of every kept user pointer; a
 * container start failing with a message and a status; the experimental names; hulynet_shutdown
 * and re-initialisation.
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

/* hulynet.h 0.1's structs, as binaries built against it lay them out. */
typedef struct timeouts_v01 {
    int64_t alive_ms, unused_container_ms, ping_interval_ms, request_ms;
} timeouts_v01;

typedef struct kind_v01 {
    const char *kind;
    void *kind_user;
    int (*start)(void *, hulynet_container *, const char *, const char *, void **);
    void (*request)(void *, hulynet_request *, const char *, const char *, const char *);
    void (*connect)(void *, const char *);
    void (*disconnect)(void *, const char *);
    void (*terminate)(void *);
} kind_v01;

/* A newer caller's timeouts: one more field this library does not know. */
typedef struct timeouts_next {
    hulynet_timeouts known;
    int64_t future_ms;
} timeouts_next;

/* ---- destroy notifications ------------------------------------------------------------------- */

static pthread_mutex_t destroyed_lock = PTHREAD_MUTEX_INITIALIZER;
static int destroyed[8];

static void note_destroy(void *user) {
    int slot = (int)(intptr_t)user;
    pthread_mutex_lock(&destroyed_lock);
    if (slot >= 0 && slot < 8) destroyed[slot]++;
    pthread_mutex_unlock(&destroyed_lock);
}

static int destroyed_count(int slot) { return fx_int(&destroyed_lock, &destroyed[slot]); }

static void ignore_event(void *user, const char *json) {
    (void)user;
    (void)json;
}

static void ignore_moved(void *user, const char *uuid, const char *endpoint) {
    (void)user;
    (void)uuid;
    (void)endpoint;
}

static void ignore_log(void *user, int level, const char *message) {
    (void)user;
    (void)level;
    (void)message;
}

/* ---- tests ------------------------------------------------------------------------------------- */

/* A program built against 0.1 passes timeouts without a size field: read as before. */
static void test_timeouts_layouts(void) {
    timeouts_v01 old = {1000, 300, 200, 3000};
    hulynet_timeouts sized = HULYNET_TIMEOUTS_INIT;
    timeouts_next next;
    hulynet_server *server = NULL;
    hulynet_client *client = NULL;
    char *out = NULL;

    CHECK(sized.size == (HULYNET_SIZE_TAG | sizeof(hulynet_timeouts)));
    if (!CHECK_OK(hulynet_server_start("127.0.0.1", 0, (const hulynet_timeouts *)&old, &server))) return;
    CHECK_OK(hulynet_client_connect("127.0.0.1", hulynet_server_port(server), (const hulynet_timeouts *)&old, &client));
    CHECK_OK(hulynet_client_wait(client, 3000));
    CHECK_OK(hulynet_client_kinds(client, 2000, &out));
    hulynet_free(out);
    hulynet_client_destroy(client);
    client = NULL;
    old.alive_ms = -1; /* still checked in the old layout */
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, (const hulynet_timeouts *)&old, &client), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "alive_ms");

    /* The sized layout, with its 0.2 field. */
    sized.tick_ms = 50;
    sized.request_ms = 2000;
    CHECK_OK(hulynet_client_connect("127.0.0.1", hulynet_server_port(server), &sized, &client));
    CHECK_OK(hulynet_client_wait(client, 3000));
    hulynet_client_destroy(client);
    client = NULL;
    sized.tick_ms = -5;
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &sized, &client), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "tick_ms");

    /* A newer caller's struct: unknown fields left zero are fine, set ones are refused. */
    memset(&next, 0, sizeof next);
    next.known.size = HULYNET_STRUCT_SIZE(timeouts_next);
    CHECK_OK(hulynet_client_connect("127.0.0.1", hulynet_server_port(server), &next.known, &client));
    hulynet_client_destroy(client);
    client = NULL;
    next.future_ms = 7;
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &next.known, &client), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "does not know");
    /* An older sized caller (only the fields up to request_ms): tick_ms keeps its default. */
    sized.tick_ms = 0;
    sized.size = HULYNET_SIZE_TAG | offsetof(hulynet_timeouts, tick_ms);
    CHECK_OK(hulynet_client_connect("127.0.0.1", hulynet_server_port(server), &sized, &client));
    hulynet_client_destroy(client);
    client = NULL;
    /* A size that is no struct's. */
    sized.size = HULYNET_SIZE_TAG | 3;
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &sized, &client), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "size");
    CHECK(client == NULL);
    hulynet_server_destroy(server);
}

/* A kind table in the 0.1 layout (two entries: the stride is the old struct's) and a sized one
 * that stops before kind_user_destroy both serve requests. */
static void test_kind_layouts(void) {
    hulynet_server *server = fx_server();
    hulynet_client *host = NULL, *user = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    echo_kind kind;
    kind_v01 old[2];
    hulynet_container_kind entry;
    char *out = NULL;
    int i;
    echo_kind_init(&kind, "abi");
    if (server == NULL) goto done;
    host = fx_client(hulynet_server_port(server));
    user = fx_client(hulynet_server_port(server));
    if (host == NULL || user == NULL) goto done;
    for (i = 0; i < 2; i++) {
        entry = echo_table(i == 0 ? "old-a" : "old-b", &kind);
        old[i].kind = entry.kind;
        old[i].kind_user = entry.kind_user;
        old[i].start = entry.start;
        old[i].request = entry.request;
        old[i].connect = entry.connect;
        old[i].disconnect = entry.disconnect;
        old[i].terminate = entry.terminate;
    }
    if (!CHECK_OK(hulynet_agent_create(NULL, (const hulynet_container_kind *)old, 2, &agent))) goto done;
    CHECK_OK(hulynet_client_serve_agent(host, agent, "127.0.0.1", 0, 3000));
    CHECK_OK(hulynet_client_get(user, "old-b", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "[\"b\"]", 2000, &out), out, "[\"b\"]");
    hulynet_reference_destroy(reference);
    reference = NULL;
    hulynet_agent_destroy(agent);
    agent = NULL;

    /* 0.1 layout with a NULL kind: the message points at the INIT macro. */
    old[0].kind = NULL;
    CHECK_STATUS(hulynet_agent_create(NULL, (const hulynet_container_kind *)old, 1, &agent), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "kinds[0].kind is NULL");

    /* Sized, without the 0.2 field. */
    entry = echo_table("short", &kind);
    entry.size = HULYNET_SIZE_TAG | offsetof(hulynet_container_kind, kind_user_destroy);
    entry.kind_user_destroy = note_destroy; /* past its size: not read */
    if (!CHECK_OK(hulynet_agent_create(NULL, &entry, 1, &agent))) goto done;
    CHECK_OK(hulynet_client_register_agent(host, agent, 3000));
    CHECK_OK(hulynet_client_get(user, "short", NULL, 3000, &reference));
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "1", 2000, &out), out, "1");
done:
    hulynet_free(out);
    hulynet_reference_destroy(reference);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(user);
    hulynet_client_destroy(host);
    hulynet_server_destroy(server);
    fx_wait_threads(&kind, 2000);
    echo_kind_destroy(&kind);
}

/* A start that fails with a message and a status: the client's get receives both. */
typedef struct refusing_kind {
    int outside_status; /* hulynet_container_start_error after start returned */
    hulynet_container *last;
} refusing_kind;

static int refusing_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                          void **container_user) {
    refusing_kind *kind = kind_user;
    (void)uuid;
    (void)container_user;
    kind->last = container;
    if (strstr(options_json, "busy") != NULL) {
        hulynet_container_start_error(container, "no room now, try again");
        return HULYNET_EAGAIN;
    }
    hulynet_container_start_error(container, "tenant t1 is over its quota");
    return HULYNET_ELIMIT;
}

static void refusing_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                             const char *client_id) {
    (void)container_user;
    (void)operation;
    (void)data_json;
    (void)client_id;
    hulynet_request_fail(request, "never started");
}

static void test_start_error_and_kind_destroy(void) {
    fx_network net;
    refusing_kind refusing = {0, NULL};
    hulynet_container_kind entry = HULYNET_CONTAINER_KIND_INIT;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    if (!fx_network_up(&net, "abi", "echo", 0)) goto done;
    entry.kind = "refusing";
    entry.kind_user = &refusing;
    entry.start = refusing_start;
    entry.request = refusing_request;
    entry.kind_user_destroy = note_destroy;
    entry.kind_user = &refusing;
    if (!CHECK_OK(hulynet_agent_create(NULL, &entry, 1, &agent))) goto done;
    CHECK_OK(hulynet_client_register_agent(net.host, agent, 3000));
    CHECK_STATUS(hulynet_client_get(net.user, "refusing", NULL, 3000, &reference), HULYNET_ELIMIT);
    CHECK_CONTAINS(hulynet_last_error(), "tenant t1 is over its quota");
    CHECK_STATUS(hulynet_client_get(net.user, "refusing", "{\"extra\":{\"busy\":true}}", 3000, &reference), HULYNET_EAGAIN);
    CHECK_CONTAINS(hulynet_last_error(), "no room now, try again");
    CHECK(reference == NULL);
    /* Outside a start (this container's start has returned; its handle is gone): refused. */
    CHECK_STATUS(hulynet_container_start_error(refusing.last, "late"), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_container_start_error(NULL, "x"), HULYNET_EINVAL);
done:
    hulynet_agent_destroy(agent);
    fx_network_down(&net);
}

/* kind_user_destroy: once, when the agent is destroyed; the user pointer is the kind_user. */
static void kind_destroy_slot2(void *user) { note_destroy(user); }

static void test_kind_user_destroy(void) {
    hulynet_container_kind entry = HULYNET_CONTAINER_KIND_INIT;
    hulynet_agent *agent = NULL;
    echo_kind kind;
    echo_kind_init(&kind, "destroy");
    entry = echo_table("destroyed", &kind);
    entry.kind_user = (void *)(intptr_t)2; /* a slot number instead of the echo kind: start is never called */
    entry.kind_user_destroy = kind_destroy_slot2;
    if (!CHECK_OK(hulynet_agent_create(NULL, &entry, 1, &agent))) return;
    CHECK_INT_EQ(destroyed_count(2), 0);
    hulynet_agent_destroy(agent);
    CHECK_INT_EQ(destroyed_count(2), 1);
    /* A failed create keeps nothing: no notification. */
    entry.request = NULL;
    CHECK_STATUS(hulynet_agent_create(NULL, &entry, 1, &agent), HULYNET_EINVAL);
    CHECK_INT_EQ(destroyed_count(2), 1);
    echo_kind_destroy(&kind);
}

/* The *_v2 functions: each user pointer's destroy notification comes once, when it is let go. */
static void test_destroy_notifications(void) {
    fx_network net;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    uint64_t subscription = 0;
    if (!fx_network_up(&net, "abi", "echo", 0)) goto done;

    /* Listener: removed -> destroyed; the user's on client destroy. */
    CHECK_OK(hulynet_client_add_listener_v2(net.user, ignore_event, (void *)(intptr_t)0, note_destroy, &subscription));
    CHECK_INT_EQ(destroyed_count(0), 0);
    CHECK_OK(hulynet_client_remove_listener(net.user, subscription));
    CHECK_INT_EQ(destroyed_count(0), 1);
    CHECK_STATUS(hulynet_client_add_listener_v2(net.user, NULL, (void *)(intptr_t)0, note_destroy, &subscription),
                 HULYNET_EINVAL);
    CHECK_OK(hulynet_client_add_listener_v2(net.other == NULL ? net.host : net.other, ignore_event, (void *)(intptr_t)1,
                                            note_destroy, &subscription));

    /* Event handler: replaced -> the first destroyed; the connection destroyed -> the second. */
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (connection == NULL) goto done;
    CHECK_OK(hulynet_connection_set_event_handler_v2(connection, ignore_event, (void *)(intptr_t)3, note_destroy));
    CHECK_OK(hulynet_connection_set_event_handler_v2(connection, ignore_event, (void *)(intptr_t)4, note_destroy));
    CHECK_INT_EQ(destroyed_count(3), 1);
    CHECK_INT_EQ(destroyed_count(4), 0);
    hulynet_connection_destroy(connection);
    connection = NULL;
    CHECK_INT_EQ(destroyed_count(4), 1);

    /* Moved handler: NULL replaces it -> destroyed; a second one goes with the reference. */
    CHECK_OK(hulynet_reference_set_moved_handler_v2(reference, ignore_moved, (void *)(intptr_t)5, note_destroy));
    CHECK_OK(hulynet_reference_set_moved_handler_v2(reference, NULL, NULL, NULL));
    CHECK_INT_EQ(destroyed_count(5), 1);
    CHECK_OK(hulynet_reference_set_moved_handler_v2(reference, ignore_moved, (void *)(intptr_t)6, note_destroy));
    hulynet_reference_destroy(reference);
    reference = NULL;
    CHECK_INT_EQ(destroyed_count(6), 1);

    /* Log handler: replaced -> destroyed. */
    CHECK_OK(hulynet_set_log_handler_v2(ignore_log, (void *)(intptr_t)7, note_destroy, HULYNET_LOG_ERROR));
    CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_WARNING));
    CHECK_INT_EQ(destroyed_count(7), 1);
done:
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    fx_network_down(&net);
    /* The host's listener went with its client. */
    CHECK_INT_EQ(destroyed_count(1), 1);
}

/* The experimental names, and the 0.1 names that stay. */
static void test_experimental_names(void) {
    CHECK_INT_EQ(HULYNET_EXPERIMENTAL_REQUESTS_INLINE, HULYNET_REQUESTS_INLINE);
    CHECK_INT_EQ(HULYNET_EXPERIMENTAL_REQUESTS_ON_CALLBACK_THREAD, HULYNET_REQUESTS_ON_CALLBACK_THREAD);
    CHECK_INT_EQ(HULYNET_VERSION_NUMBER, 200);
    CHECK_STR_EQ(hulynet_version_string(), "0.2.0");
}

/* hulynet_shutdown: refused while a handle lives; then frees the shared context, and the next
 * objects re-initialise it. */
static void test_shutdown(void) {
    hulynet_server *server = fx_server();
    hulynet_client *client = NULL;
    if (server == NULL) return;
    client = fx_client(hulynet_server_port(server));
    CHECK_STATUS(hulynet_shutdown(1000), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "still alive");
    CHECK_STATUS(hulynet_shutdown(-1), HULYNET_EINVAL);
    hulynet_client_destroy(client);
    hulynet_server_destroy(server);
    CHECK_OK(hulynet_set_log_handler_v2(ignore_log, (void *)(intptr_t)7, note_destroy, HULYNET_LOG_ERROR));
    CHECK_OK(hulynet_shutdown(5000));
    CHECK_INT_EQ(destroyed_count(7), 2); /* the log handler went with it */
    CHECK_OK(hulynet_shutdown(0));      /* twice is fine */

    /* Usable again. */
    server = fx_server();
    if (server == NULL) return;
    client = fx_client(hulynet_server_port(server));
    CHECK(client != NULL);
    hulynet_client_destroy(client);
    hulynet_server_destroy(server);
    CHECK_OK(hulynet_shutdown(5000));
}

int main(void) {
    check_init("test_c_abi", 55);
    RUN_TEST(test_timeouts_layouts);
    RUN_TEST(test_kind_layouts);
    RUN_TEST(test_start_error_and_kind_destroy);
    RUN_TEST(test_kind_user_destroy);
    RUN_TEST(test_destroy_notifications);
    RUN_TEST(test_experimental_names);
    RUN_TEST(test_shutdown);
    return check_summary();
}
