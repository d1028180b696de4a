/* Payloads as text: what a C caller sends reaches the container as the same bytes, and what the
 * container answers or emits comes back byte for byte (key order, number spelling, layout), on
 * every path: through the coordinator, by uuid, over routed and direct connections, blocking and
 * asynchronous. Malformed text is refused with HULYNET_EJSON before anything is sent. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

/* The example of issue 11: order, nesting, a number no double holds, two spellings a parser rewrites. */
static const char *const caller_text =
    "{\"zeta\":1,\"alpha\":2,\"mid\":{\"b\":1,\"a\":2},\"big\":12345678901234567890,\"f\":1.10,\"e\":1e2}";
/* A layout with spaces, an escape and a non-ASCII character: kept too. */
static const char *const spaced_text = "[ 1.0 , {\"z\" : null, \"a\":\"\\u00e9\\n\u00e9\"} ]";

static int last_event_is(fx_events *events, const char *text) {
    int same;
    pthread_mutex_lock(&events->lock);
    same = strcmp(events->last, text) == 0;
    pthread_mutex_unlock(&events->lock);
    return same;
}

static void check_paths(fx_network *net, int direct) {
    const char *texts[2];
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    fx_events events;
    fx_async async;
    char *out = NULL;
    char options[128];
    int i;
    texts[0] = caller_text;
    texts[1] = spaced_text;
    fx_events_init(&events);
    fx_async_init(&async);
    CHECK_OK(hulynet_agent_set_direct(net->agent, "echo", direct));
    snprintf(options, sizeof options, "{\"uuid\":\"payload-%s\"}", direct ? "direct" : "routed");
    CHECK_OK(hulynet_client_get(net->user, "echo", options, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (connection == NULL) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(connection, fx_event_fn, &events));

    for (i = 0; i < 2; i++) {
        const char *text = texts[i];
        CHECK_OK(hulynet_reference_request(reference, "echo", text, 2000, &out));
        CHECK_STR_EQ(out, text);
        hulynet_free(out);
        out = NULL;
        CHECK_OK(hulynet_client_request(net->user, hulynet_reference_uuid(reference), "echo", text, 2000, &out));
        CHECK_STR_EQ(out, text);
        hulynet_free(out);
        out = NULL;
        CHECK_OK(hulynet_connection_request(connection, "echo", text, 2000, &out));
        CHECK_STR_EQ(out, text);
        hulynet_free(out);
        out = NULL;
        /* The container emits the text it was given, as it was given. */
        CHECK_OK(hulynet_connection_request(connection, "emit", text, 2000, &out));
        CHECK_CONTAINS(out, "\"delivered\":1");
        hulynet_free(out);
        out = NULL;
        CHECK_EVENTUALLY(fx_events_count(&events) == i + 1, 2000);
        if (!CHECK_MSG(last_event_is(&events, text), "the event arrives as the container sent it"))
            check_note("event: %s", events.last);
    }

    /* Asynchronous: the callback's text is the answer's bytes. */
    CHECK_OK(hulynet_reference_request_async(reference, "echo", caller_text, 2000, fx_result_fn, &async));
    CHECK_EVENTUALLY(fx_async_calls(&async) == 1, 2000);
    pthread_mutex_lock(&async.lock);
    CHECK_INT_EQ(async.status, HULYNET_OK);
    CHECK_STR_EQ(async.text, caller_text);
    pthread_mutex_unlock(&async.lock);

    /* Malformed text never leaves the caller. */
    CHECK_STATUS(hulynet_reference_request(reference, "echo", "{\"a\":1,}", 2000, &out), HULYNET_EJSON);
    CHECK(out == NULL);
    CHECK_STATUS(hulynet_connection_request(connection, "echo", "[1] [2]", 2000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net->user, "x", "echo", "12345678901234567890x", 2000, &out), HULYNET_EJSON);
    CHECK(out == NULL);
done:
    hulynet_free(out);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    fx_async_destroy(&async);
    fx_events_destroy(&events);
}

static void test_routed(void) {
    fx_network net;
    if (fx_network_up(&net, "payload-test", "echo", 0)) check_paths(&net, 0);
    fx_network_down(&net);
}

static void test_direct(void) {
    fx_network net;
    if (fx_network_up(&net, "payload-test", "echo", 0)) check_paths(&net, 1);
    fx_network_down(&net);
}

int main(void) {
    check_init("test_c_payload", 55);
    RUN_TEST(test_routed);
    RUN_TEST(test_direct);
    return check_summary();
}
