/* References follow their container: when the client serving the container's agent leaves, the
 * reference gets the container again on another agent of the kind, tells its moved handler, and
 * its connection (same handle, same event handler) works there; a request made while it moves
 * waits and succeeds; with no agent of the kind left, requests fail with HULYNET_ENOTFOUND. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

/* What a moved handler was told. */
typedef struct moves {
    pthread_mutex_t lock;
    int count;
    char uuid[128];
    char endpoint[FX_TEXT];
} moves;

static void moves_init(moves *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

static void moves_destroy(moves *m) { pthread_mutex_destroy(&m->lock); }

static void moved_fn(void *user, const char *uuid, const char *endpoint) {
    moves *m = user;
    pthread_mutex_lock(&m->lock);
    m->count++;
    fx_copy_text(m->uuid, sizeof m->uuid, uuid);
    fx_copy_text(m->endpoint, sizeof m->endpoint, endpoint);
    pthread_mutex_unlock(&m->lock);
}

/* Agent B's starts wait while the gate is closed (at most 3 s), so that the test can act while a
 * container is moving, before the move completes. */
static struct {
    pthread_mutex_t lock;
    int closed;
    int entered;
} gate = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
static int (*echo_start)(void *, hulynet_container *, const char *, const char *, void **);

static void gate_set(int closed) {
    pthread_mutex_lock(&gate.lock);
    gate.closed = closed;
    pthread_mutex_unlock(&gate.lock);
}

static int gated_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                       void **container_user) {
    int open;
    pthread_mutex_lock(&gate.lock);
    gate.entered++;
    pthread_mutex_unlock(&gate.lock);
    WAIT_UNTIL(open, fx_int(&gate.lock, &gate.closed) == 0, 3000);
    (void)open;
    return echo_start(kind_user, container, uuid, options_json, container_user);
}

/* The record of container `uuid` in a `cl` answer (the top-level object naming it), or "". */
static void record_of(const char *list, const char *uuid, char *out, size_t size) {
    char needle[160];
    const char *start = NULL, *p;
    int depth = 0, in_string = 0;
    out[0] = '\0';
    if (list == NULL) return;
    snprintf(needle, sizeof needle, "\"uuid\":\"%s\"", uuid);
    for (p = list; *p != '\0'; p++) {
        if (in_string) {
            if (*p == '\\' && p[1] != '\0') p++;
            else if (*p == '"') in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == '{') {
            if (depth++ == 0) start = p;
        } else if (*p == '}' && --depth == 0 && start != NULL) {
            size_t length = (size_t)(p - start) + 1;
            char record[FX_TEXT];
            if (length >= sizeof record) length = sizeof record - 1;
            memcpy(record, start, length);
            record[length] = '\0';
            if (strstr(record, needle) != NULL) {
                fx_copy_text(out, size, record);
                return;
            }
        }
    }
}

static void agent_of(const char *endpoint, char *out, size_t size) { fx_json_string(endpoint, "agentId", out, size); }

/* Asks the container to emit `event` to this client over `connection`: the emit worked and
 * reached one client. (A macro, so that a failure names the caller's line.) */
#define CHECK_EMIT(connection, event)                                                        \
    do {                                                                                     \
        char *emit_out_ = NULL;                                                              \
        CHECK_OK(hulynet_connection_request((connection), "emit", (event), 2000, &emit_out_)); \
        CHECK_CONTAINS(emit_out_, "\"status\":0");                                           \
        CHECK_CONTAINS(emit_out_, "\"delivered\":1");                                        \
        hulynet_free(emit_out_);                                                             \
    } while (0)

static void test_failover(void) {
    hulynet_server *server = fx_server();
    int port = server != NULL ? hulynet_server_port(server) : 0;
    hulynet_client *host_a = NULL, *host_b = NULL, *user = NULL;
    hulynet_agent *agent_a = NULL, *agent_b = NULL;
    hulynet_reference *by_uuid = NULL, *by_labels = NULL;
    hulynet_connection *conn_uuid = NULL, *conn_labels = NULL;
    hulynet_container_kind table_b;
    echo_kind kind_a, kind_b;
    moves moved_uuid, moved_labels;
    fx_events events_uuid, events_labels, updates;
    uint64_t subscription = 0;
    fx_async held_uuid, held_labels;
    char old_label_uuid[128], agent_id[128], record[FX_TEXT];
    char *out = NULL, *list = NULL;
    const char *a_id, *b_id;
    int entered;

    echo_kind_init(&kind_a, "A");
    echo_kind_init(&kind_b, "B");
    moves_init(&moved_uuid);
    moves_init(&moved_labels);
    fx_events_init(&events_uuid);
    fx_events_init(&events_labels);
    fx_events_init(&updates);
    fx_async_init(&held_uuid);
    fx_async_init(&held_labels);
    if (server == NULL) goto done;
    host_a = fx_client(port);
    host_b = fx_client(port);
    user = fx_client(port);
    if (host_a == NULL || host_b == NULL || user == NULL) goto done;

    /* Agent A alone first, so both containers start there. */
    agent_a = fx_agent(NULL, "echo", &kind_a);
    if (agent_a == NULL || !CHECK_OK(hulynet_client_serve_agent(host_a, agent_a, "127.0.0.1", 0, 3000))) goto done;
    a_id = hulynet_agent_uuid(agent_a);
    CHECK_OK(hulynet_client_get(user, "echo", "{\"uuid\":\"failover-1\"}", 3000, &by_uuid));
    CHECK_OK(hulynet_client_get(user, "echo", "{\"labels\":[\"failover-labels\"]}", 3000, &by_labels));
    if (by_uuid == NULL || by_labels == NULL) goto done;
    fx_copy_text(old_label_uuid, sizeof old_label_uuid, hulynet_reference_uuid(by_labels));
    agent_of(hulynet_reference_endpoint(by_uuid), agent_id, sizeof agent_id);
    CHECK_STR_EQ(agent_id, a_id);
    agent_of(hulynet_reference_endpoint(by_labels), agent_id, sizeof agent_id);
    CHECK_STR_EQ(agent_id, a_id);

    table_b = echo_table("echo", &kind_b);
    echo_start = table_b.start;
    table_b.start = gated_start;
    if (!CHECK_OK(hulynet_agent_create(NULL, &table_b, 1, &agent_b))) goto done;
    if (!CHECK_OK(hulynet_client_serve_agent(host_b, agent_b, "127.0.0.1", 0, 3000))) goto done;
    b_id = hulynet_agent_uuid(agent_b);

    CHECK_OK(hulynet_reference_connect(by_uuid, 2000, &conn_uuid));
    CHECK_OK(hulynet_reference_connect(by_labels, 2000, &conn_labels));
    if (conn_uuid == NULL || conn_labels == NULL) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(conn_uuid, fx_event_fn, &events_uuid));
    CHECK_OK(hulynet_connection_set_event_handler(conn_labels, fx_event_fn, &events_labels));
    CHECK_OK(hulynet_reference_set_moved_handler(by_uuid, moved_fn, &moved_uuid));
    CHECK_OK(hulynet_reference_set_moved_handler(by_labels, moved_fn, &moved_labels));
    CHECK_EMIT(conn_uuid, "\"before\"");
    CHECK_EVENTUALLY(fx_events_seen(&events_uuid, "\"before\""), 2000);

    /* A's client leaves (unregistering agent A): both containers move to B, whose starts wait at
     * the gate, so the requests below are made while the containers are moving. */
    gate_set(1);
    hulynet_client_destroy(host_a);
    host_a = NULL;
    WAIT_UNTIL(entered, fx_int(&gate.lock, &gate.entered) > 0, 3000);
    CHECK_MSG(entered, "agent B was asked to start a container");
    CHECK_OK(hulynet_connection_request_async(conn_uuid, "whoami", NULL, 3000, fx_result_fn, &held_uuid));
    CHECK_OK(hulynet_connection_request_async(conn_labels, "whoami", NULL, 3000, fx_result_fn, &held_labels));
    CHECK_MSG(fx_int(&moved_uuid.lock, &moved_uuid.count) == 0 && fx_int(&moved_labels.lock, &moved_labels.count) == 0,
              "the requests were made before the moves completed");
    gate_set(0);

    CHECK_EVENTUALLY(fx_int(&moved_uuid.lock, &moved_uuid.count) == 1 &&
                         fx_int(&moved_labels.lock, &moved_labels.count) == 1,
                     3000);
    CHECK_EVENTUALLY(fx_async_calls(&held_uuid) == 1 && fx_async_calls(&held_labels) == 1, 3000);
    CHECK_INT_EQ(held_uuid.status, HULYNET_OK);
    CHECK_INT_EQ(held_labels.status, HULYNET_OK);
    CHECK_CONTAINS(held_uuid.text, "\"tag\":\"B\"");
    CHECK_CONTAINS(held_uuid.text, "\"uuid\":\"failover-1\"");
    CHECK_CONTAINS(held_labels.text, "\"tag\":\"B\"");

    /* The uuid reference: the same uuid, on B. */
    pthread_mutex_lock(&moved_uuid.lock);
    CHECK_STR_EQ(moved_uuid.uuid, "failover-1");
    agent_of(moved_uuid.endpoint, agent_id, sizeof agent_id);
    CHECK_STR_EQ(agent_id, b_id);
    CHECK_STR_EQ(hulynet_reference_endpoint(by_uuid), moved_uuid.endpoint);
    pthread_mutex_unlock(&moved_uuid.lock);
    CHECK_STR_EQ(hulynet_reference_uuid(by_uuid), "failover-1");

    /* The label reference: a new container with the same labels, on B. */
    pthread_mutex_lock(&moved_labels.lock);
    CHECK(strcmp(moved_labels.uuid, old_label_uuid) != 0 && moved_labels.uuid[0] != '\0');
    CHECK_STR_EQ(hulynet_reference_uuid(by_labels), moved_labels.uuid);
    CHECK_STR_EQ(hulynet_reference_endpoint(by_labels), moved_labels.endpoint);
    agent_of(moved_labels.endpoint, agent_id, sizeof agent_id);
    CHECK_STR_EQ(agent_id, b_id);
    pthread_mutex_unlock(&moved_labels.lock);
    CHECK_CONTAINS(held_labels.text, hulynet_reference_uuid(by_labels));
    CHECK_OK(hulynet_client_list(user, "echo", 2000, &list));
    record_of(list, hulynet_reference_uuid(by_labels), record, sizeof record);
    CHECK_CONTAINS(record, "\"labels\":[\"failover-labels\"]");
    CHECK_NOT_CONTAINS(list, old_label_uuid);

    /* Requests through the references and over the same connection handles reach B; the
     * container's events reach the same handlers. */
    CHECK_OK(hulynet_reference_request(by_uuid, "whoami", NULL, 2000, &out));
    CHECK_CONTAINS(out, "\"tag\":\"B\"");
    CHECK_CONTAINS(out, "\"uuid\":\"failover-1\"");
    CHECK_CONTAINS(out, "\"client\":null");
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_reference_request(by_labels, "whoami", NULL, 2000, &out));
    CHECK_CONTAINS(out, "\"tag\":\"B\"");
    CHECK_CONTAINS(out, hulynet_reference_uuid(by_labels));
    hulynet_free(out);
    out = NULL;
    CHECK_EMIT(conn_uuid, "\"after-uuid\"");
    CHECK_EMIT(conn_labels, "\"after-labels\"");
    CHECK_EVENTUALLY(fx_events_seen(&events_uuid, "\"after-uuid\"") && fx_events_seen(&events_labels, "\"after-labels\""), 2000);
    CHECK(!fx_events_seen(&events_uuid, "\"after-labels\"") && !fx_events_seen(&events_labels, "\"after-uuid\""));
    pthread_mutex_lock(&kind_b.lock);
    CHECK_STR_EQ(kind_b.last_connected, hulynet_client_id(user));
    pthread_mutex_unlock(&kind_b.lock);
    CHECK_INT_EQ(fx_int(&kind_b.lock, &kind_b.connects), 2); /* both connections reopened on B */
    /* Told once per reference. */
    CHECK_INT_EQ(fx_int(&moved_uuid.lock, &moved_uuid.count), 1);
    CHECK_INT_EQ(fx_int(&moved_labels.lock, &moved_labels.count), 1);

    /* No agent of the kind left: requests are held for their time, then fail saying why. (The
     * connection's once the client has heard that its container is gone: listeners hear it first.) */
    CHECK_OK(hulynet_client_add_listener(user, fx_event_fn, &updates, &subscription));
    hulynet_client_destroy(host_b);
    host_b = NULL;
    CHECK_STATUS(hulynet_reference_request(by_uuid, "echo", "1", 500, &out), HULYNET_ENOTFOUND);
    CHECK_CONTAINS(hulynet_last_error(), "No suitable agents");
    CHECK_EVENTUALLY(fx_events_seen(&updates, hulynet_reference_uuid(by_labels)), 3000);
    CHECK_STATUS(hulynet_connection_request(conn_labels, "echo", "1", 500, &out), HULYNET_ENOTFOUND);
    CHECK_CONTAINS(hulynet_last_error(), "No suitable agents");
    CHECK_INT_EQ(fx_int(&moved_uuid.lock, &moved_uuid.count), 1);

done:
    gate_set(0);
    hulynet_free(out);
    hulynet_free(list);
    hulynet_connection_destroy(conn_uuid);
    hulynet_connection_destroy(conn_labels);
    hulynet_reference_destroy(by_uuid);
    hulynet_reference_destroy(by_labels);
    if (subscription != 0) hulynet_client_remove_listener(user, subscription);
    hulynet_client_destroy(user);
    hulynet_client_destroy(host_b);
    hulynet_client_destroy(host_a);
    hulynet_agent_destroy(agent_b);
    hulynet_agent_destroy(agent_a);
    hulynet_server_destroy(server);
    fx_wait_threads(&kind_a, 2000);
    fx_wait_threads(&kind_b, 2000);
    echo_kind_destroy(&kind_a);
    echo_kind_destroy(&kind_b);
    moves_destroy(&moved_uuid);
    moves_destroy(&moved_labels);
    fx_events_destroy(&events_uuid);
    fx_events_destroy(&events_labels);
    fx_events_destroy(&updates);
    fx_async_destroy(&held_uuid);
    fx_async_destroy(&held_labels);
}

int main(void) {
    check_init("test_c_failover", 55);
    RUN_TEST(test_failover);
    return check_summary();
}
