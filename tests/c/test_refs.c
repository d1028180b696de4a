/* References and connections: accessors, requests, connections, events from
 * hulynet_container_emit, release; the asynchronous calls. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

typedef fx_network network;

static int network_up(network *net) { return fx_network_up(net, "refs", "echo", 1); }
static void network_down(network *net) { fx_network_down(net); }

static void test_reference(void) {
    network net;
    hulynet_reference *reference = NULL;
    char *out = NULL, *list = NULL;
    char agent_id[128];
    const char *uuid, *endpoint;
    if (!network_up(&net)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;

    uuid = hulynet_reference_uuid(reference);
    endpoint = hulynet_reference_endpoint(reference);
    CHECK(uuid != NULL && uuid[0] != '\0');
    CHECK(uuid == hulynet_reference_uuid(reference)); /* owned by the reference */
    CHECK_STR_EQ(uuid, net.kind.last_uuid);
    /* The endpoint is JSON {host, port, kind, agentId, uuid?}: routed through the served agent. */
    CHECK(endpoint != NULL && endpoint[0] == '{');
    CHECK_CONTAINS(endpoint, "\"host\":\"127.0.0.1\"");
    CHECK_CONTAINS(endpoint, "\"port\":");
    CHECK_CONTAINS(endpoint, "\"kind\":0");
    fx_json_string(endpoint, "agentId", agent_id, sizeof agent_id);
    CHECK_STR_EQ(agent_id, hulynet_agent_uuid(net.agent));
    CHECK_OK(hulynet_client_list(net.user, "echo", 2000, &list));
    CHECK_CONTAINS(list, uuid);

    /* Escapes come back as written (the text travels byte for byte, see test_payload). */
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "{\"r\":\"\\u00e9t\\u00e9 \\\"q\\\"\"}", 2000, &out), out, "{\"r\":\"\\u00e9t\\u00e9 \\\"q\\\"\"}");
    CHECK_OK(hulynet_reference_request(reference, "echo", NULL, 0, &out)); /* NULL data: null; default timeout */
    CHECK_STR_EQ(out, "null");
    hulynet_free(out);
    out = NULL;
    /* A negative timeout is refused, not taken for the default. */
    CHECK_STATUS(hulynet_reference_request(reference, "echo", NULL, -1, &out), HULYNET_EINVAL);
    CHECK(out == NULL);
    CHECK_STATUS(hulynet_reference_request(reference, "fail", "1", 2000, &out), HULYNET_EREMOTE);
    CHECK_CONTAINS(hulynet_last_error(), "deliberate failure");

    CHECK_OK(hulynet_reference_release(reference, 2000));
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.terminates) == 1, 3000);
done:
    hulynet_free(out);
    hulynet_free(list);
    hulynet_reference_destroy(reference);
    network_down(&net);
}

static void test_connection(void) {
    network net;
    hulynet_reference *reference = NULL, *other_reference = NULL;
    hulynet_connection *connection = NULL, *other_connection = NULL;
    hulynet_container *container;
    fx_events events, other_events;
    char *out = NULL;
    int delivered;
    fx_events_init(&events);
    fx_events_init(&other_events);
    if (!network_up(&net)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_OK(hulynet_reference_connect(reference, 2000, &connection));
    if (connection == NULL) goto done;
    /* The container learnt of the connection, with the client's id, before connect returned. */
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.connects), 1);
    CHECK_STR_EQ(net.kind.last_connected, hulynet_client_id(net.user));

    /* Requests over the connection carry the client's id. */
    CHECK_OK(hulynet_connection_request(connection, "whoami", NULL, 2000, &out));
    CHECK_CONTAINS(out, hulynet_client_id(net.user));
    hulynet_free(out);
    out = NULL;
    CHECK_ANSWER(hulynet_connection_request(connection, "echo", "[1,{\"b\":false}]", 2000, &out), out, "[1,{\"b\":false}]");
    CHECK_ANSWER(hulynet_connection_request(connection, "later", "\"slow\"", 0, &out), out, "\"slow\"");
    CHECK_STATUS(hulynet_connection_request(connection, "fail", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_CONTAINS(hulynet_last_error(), "deliberate failure");

    container = fx_last_container(&net.kind);
    if (!CHECK(container != NULL)) goto done;
    CHECK_STR_EQ(hulynet_container_uuid(container), hulynet_reference_uuid(reference));

    /* An event sent before a handler is set goes to the first handler set. */
    delivered = -1;
    CHECK_OK(hulynet_container_emit(container, hulynet_client_id(net.user), "{\"early\":1}", &delivered));
    CHECK_INT_EQ(delivered, 1);
    CHECK_OK(hulynet_connection_set_event_handler(connection, fx_event_fn, &events));
    CHECK_EVENTUALLY(fx_events_seen(&events, "{\"early\":1}"), 2000);

    /* To one client by id. */
    delivered = -1;
    CHECK_OK(hulynet_container_emit(container, hulynet_client_id(net.user), "{\"to\":\"user\"}", &delivered));
    CHECK_INT_EQ(delivered, 1);
    CHECK_EVENTUALLY(fx_events_seen(&events, "{\"to\":\"user\"}"), 2000);
    CHECK_STR_EQ(events.last, "{\"to\":\"user\"}");

    /* A second client connects: to all (NULL) reaches both. */
    CHECK_OK(hulynet_client_get(net.other, "echo", "{\"uuid\":null}", 3000, &other_reference));
    if (other_reference == NULL) goto done;
    CHECK_STR_EQ(hulynet_reference_uuid(other_reference), hulynet_reference_uuid(reference));
    CHECK_OK(hulynet_reference_connect(other_reference, 2000, &other_connection));
    if (other_connection == NULL) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(other_connection, fx_event_fn, &other_events));
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.connects), 2);
    delivered = -1;
    CHECK_OK(hulynet_container_emit(container, NULL, "\"everyone\"", &delivered));
    CHECK_INT_EQ(delivered, 2);
    CHECK_EVENTUALLY(fx_events_seen(&events, "\"everyone\"") && fx_events_seen(&other_events, "\"everyone\""), 2000);
    CHECK_OK(hulynet_container_emit(container, NULL, "2", NULL)); /* delivered may be NULL */
    CHECK_EVENTUALLY(fx_events_count(&other_events) == 2, 2000);
    CHECK_EVENTUALLY(fx_events_count(&events) == 4, 2000); /* each connection receives on its own thread */

    /* An emit from inside a request: the event arrives before the answer. */
    CHECK_OK(hulynet_connection_request(other_connection, "emit", "{\"from\":\"inside\"}", 2000, &out));
    CHECK_CONTAINS(out, "\"status\":0");
    CHECK_CONTAINS(out, "\"delivered\":1");
    CHECK(fx_events_seen(&other_events, "{\"from\":\"inside\"}"));
    CHECK(!fx_events_seen(&events, "{\"from\":\"inside\"}"));
    hulynet_free(out);
    out = NULL;

    /* An unknown client id. */
    delivered = -1;
    CHECK_STATUS(hulynet_container_emit(container, "no-such-client", "1", &delivered), HULYNET_ENOTFOUND);
    CHECK_INT_EQ(delivered, 0);
    CHECK(hulynet_last_error()[0] != '\0');

    /* A NULL handler stops the events. */
    CHECK_OK(hulynet_connection_set_event_handler(other_connection, NULL, NULL));
    CHECK_OK(hulynet_connection_request(other_connection, "emit", "\"unheard\"", 2000, &out));
    CHECK_CONTAINS(out, "\"status\":0");
    CHECK_CONTAINS(out, "\"delivered\":1");
    CHECK(!fx_events_seen(&other_events, "\"unheard\""));
    hulynet_free(out);
    out = NULL;

    /* Destroying a connection disconnects it. */
    hulynet_connection_destroy(other_connection);
    other_connection = NULL;
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.disconnects) == 1, 2000);
    CHECK_STR_EQ(net.kind.last_disconnected, hulynet_client_id(net.other));
    delivered = -1;
    CHECK_OK(hulynet_container_emit(container, NULL, "\"last\"", &delivered));
    CHECK_INT_EQ(delivered, 1);
    CHECK_STATUS(hulynet_container_emit(container, hulynet_client_id(net.other), "1", &delivered), HULYNET_ENOTFOUND);
    CHECK_EVENTUALLY(fx_events_seen(&events, "\"last\""), 2000);

done:
    hulynet_free(out);
    hulynet_connection_destroy(other_connection);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(other_reference);
    hulynet_reference_destroy(reference);
    network_down(&net);
    fx_events_destroy(&events);
    fx_events_destroy(&other_events);
}

static void test_async(void) {
    network net;
    fx_async got, requested, failed, unknown, connected, conn_failed;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    fx_async_init(&got);
    fx_async_init(&requested);
    fx_async_init(&failed);
    fx_async_init(&unknown);
    fx_async_init(&connected);
    fx_async_init(&conn_failed);
    if (!network_up(&net)) goto done;

    CHECK_OK(hulynet_client_get_async(net.user, "echo", "{\"labels\":[\"async\"]}", 3000, fx_reference_fn, &got));
    CHECK_EVENTUALLY(fx_async_calls(&got) == 1, 3000);
    CHECK_INT_EQ(got.status, HULYNET_OK);
    reference = got.reference;
    if (!CHECK(reference != NULL)) goto done;
    CHECK_STR_EQ(hulynet_reference_uuid(reference), net.kind.last_uuid);
    CHECK_CONTAINS(net.kind.last_options, "async");

    CHECK_OK(hulynet_client_request_async(net.user, hulynet_reference_uuid(reference), "later", "{\"x\":[true]}", 2000,
                                          fx_result_fn, &requested));
    CHECK_OK(hulynet_client_request_async(net.user, hulynet_reference_uuid(reference), "fail", NULL, 2000, fx_result_fn,
                                          &failed));
    CHECK_OK(hulynet_client_request_async(net.user, "no-such-container", "echo", NULL, 2000, fx_result_fn, &unknown));
    CHECK_EVENTUALLY(fx_async_calls(&requested) == 1 && fx_async_calls(&failed) == 1 && fx_async_calls(&unknown) == 1, 3000);
    CHECK_INT_EQ(requested.status, HULYNET_OK);
    CHECK_STR_EQ(requested.text, "{\"x\":[true]}");
    CHECK_INT_EQ(failed.status, HULYNET_EREMOTE);
    CHECK_STR_EQ(failed.text, "deliberate failure");
    CHECK_INT_EQ(unknown.status, HULYNET_ENOTFOUND);
    CHECK_CONTAINS(unknown.text, "not found");

    CHECK_OK(hulynet_reference_connect(reference, 2000, &connection));
    if (connection == NULL) goto done;
    CHECK_OK(hulynet_connection_request_async(connection, "whoami", NULL, 2000, fx_result_fn, &connected));
    CHECK_OK(hulynet_connection_request_async(connection, "later_fail", NULL, 2000, fx_result_fn, &conn_failed));
    CHECK_EVENTUALLY(fx_async_calls(&connected) == 1 && fx_async_calls(&conn_failed) == 1, 3000);
    CHECK_INT_EQ(connected.status, HULYNET_OK);
    CHECK_CONTAINS(connected.text, hulynet_client_id(net.user));
    CHECK_INT_EQ(conn_failed.status, HULYNET_EREMOTE);
    CHECK_STR_EQ(conn_failed.text, "late failure");

    /* Each completion is called once. */
    check_sleep_ms(50);
    CHECK_INT_EQ(fx_async_calls(&got) + fx_async_calls(&requested) + fx_async_calls(&failed) + fx_async_calls(&unknown) +
                     fx_async_calls(&connected) + fx_async_calls(&conn_failed),
                 6);
done:
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    network_down(&net);
    fx_async_destroy(&got);
    fx_async_destroy(&requested);
    fx_async_destroy(&failed);
    fx_async_destroy(&unknown);
    fx_async_destroy(&connected);
    fx_async_destroy(&conn_failed);
}

/* An asynchronous get whose start fails completes with an error and no reference. */
static void test_async_get_fails(void) {
    network net;
    fx_async got;
    fx_async_init(&got);
    if (!network_up(&net)) goto done;
    pthread_mutex_lock(&net.kind.lock);
    net.kind.start_status = HULYNET_EINVAL;
    pthread_mutex_unlock(&net.kind.lock);
    CHECK_OK(hulynet_client_get_async(net.user, "echo", NULL, 2000, fx_reference_fn, &got));
    CHECK_EVENTUALLY(fx_async_calls(&got) == 1, 3000);
    CHECK(got.status != HULYNET_OK);
    CHECK(got.reference == NULL);
    CHECK(got.text[0] != '\0' && strcmp(got.text, "(null)") != 0);
    check_note("an async get whose start failed: %d (%s) %s", got.status, hulynet_strerror(got.status), got.text);
done:
    hulynet_reference_destroy(got.reference);
    network_down(&net);
    fx_async_destroy(&got);
}

/* Inside completion callbacks: blocking calls are refused; non-blocking ones and destroy work. */
typedef struct inside {
    pthread_mutex_t lock;
    hulynet_client *client;
    int done;
    int blocking_status;
    int async_status;
    fx_async nested;
} inside;

static void inside_get_done(void *user, int status, hulynet_reference *reference, const char *error) {
    inside *probe = user;
    char *out = NULL;
    int blocking, async;
    (void)error;
    blocking = status == HULYNET_OK ? hulynet_reference_request(reference, "echo", "1", 1000, &out) : status;
    hulynet_free(out);
    async = status == HULYNET_OK ? hulynet_client_request_async(probe->client, hulynet_reference_uuid(reference), "echo",
                                                                "\"nested\"", 2000, fx_result_fn, &probe->nested)
                                 : status;
    hulynet_reference_destroy(reference); /* destroy functions may be called from callbacks */
    pthread_mutex_lock(&probe->lock);
    probe->blocking_status = blocking;
    probe->async_status = async;
    probe->done = 1;
    pthread_mutex_unlock(&probe->lock);
}

static void test_callbacks_inside(void) {
    network net;
    inside probe;
    memset(&probe, 0, sizeof probe);
    pthread_mutex_init(&probe.lock, NULL);
    fx_async_init(&probe.nested);
    if (!network_up(&net)) goto done;
    probe.client = net.user;
    CHECK_OK(hulynet_client_get_async(net.user, "echo", NULL, 3000, inside_get_done, &probe));
    CHECK_EVENTUALLY(fx_int(&probe.lock, &probe.done) == 1, 3000);
    CHECK_INT_EQ(probe.blocking_status, HULYNET_EINVAL);
    CHECK_INT_EQ(probe.async_status, HULYNET_OK);
    CHECK_EVENTUALLY(fx_async_calls(&probe.nested) == 1, 3000);
    CHECK_INT_EQ(probe.nested.status, HULYNET_OK);
    CHECK_STR_EQ(probe.nested.text, "\"nested\"");
    /* The reference destroyed inside the callback was released: the container stops. */
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.terminates) == 1, 3000);
done:
    network_down(&net);
    fx_async_destroy(&probe.nested);
    pthread_mutex_destroy(&probe.lock);
}

int main(void) {
    check_init("test_c_refs", 55);
    RUN_TEST(test_reference);
    RUN_TEST(test_connection);
    RUN_TEST(test_async);
    RUN_TEST(test_async_get_fails);
    RUN_TEST(test_callbacks_inside);
    return check_summary();
}
