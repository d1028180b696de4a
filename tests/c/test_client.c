/* The client: connect/wait, id, agents, kinds, list, get, request, listeners. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

static void test_wait_times_out(void) {
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_client *client = NULL;
    int64_t start, elapsed;
    int port = fx_free_port();
    /* Connecting does not need the server to be there: it connects in the background. */
    CHECK_OK(hulynet_client_connect("127.0.0.1", port, &timeouts, &client));
    CHECK(client != NULL);
    start = check_now_ms();
    CHECK_STATUS(hulynet_client_wait(client, 300), HULYNET_ETIMEOUT);
    elapsed = check_now_ms() - start;
    CHECK_MSG(elapsed >= 250 && elapsed < 2000, "hulynet_client_wait(300) returns after about 300 ms");
    CHECK(hulynet_last_error()[0] != '\0');
    hulynet_client_destroy(client);
}

/* The timeout_ms of agents/kinds/list bounds the call (here: no coordinator ever answers). */
static void test_calls_honour_timeout(void) {
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_client *client = NULL;
    char *out = NULL;
    int64_t start, elapsed;
    int port = fx_free_port();
    timeouts.request_ms = 1500; /* the client's default: what a call waits when timeout_ms is ignored */
    CHECK_OK(hulynet_client_connect("127.0.0.1", port, &timeouts, &client));

    start = check_now_ms();
    CHECK_STATUS(hulynet_client_kinds(client, 200, &out), HULYNET_ETIMEOUT);
    elapsed = check_now_ms() - start;
    CHECK(out == NULL);
    if (!CHECK_MSG(elapsed < 1000, "hulynet_client_kinds(timeout_ms 200) returns within 1000 ms"))
        check_note("hulynet_client_kinds took %lld ms: timeout_ms is ignored (the client's request_ms is used)", (long long)elapsed);

    start = check_now_ms();
    CHECK_STATUS(hulynet_client_agents(client, 200, &out), HULYNET_ETIMEOUT);
    elapsed = check_now_ms() - start;
    if (!CHECK_MSG(elapsed < 1000, "hulynet_client_agents(timeout_ms 200) returns within 1000 ms"))
        check_note("hulynet_client_agents took %lld ms: timeout_ms is ignored", (long long)elapsed);

    start = check_now_ms();
    CHECK_STATUS(hulynet_client_list(client, NULL, 200, &out), HULYNET_ETIMEOUT);
    elapsed = check_now_ms() - start;
    if (!CHECK_MSG(elapsed < 1000, "hulynet_client_list(timeout_ms 200) returns within 1000 ms"))
        check_note("hulynet_client_list took %lld ms: timeout_ms is ignored", (long long)elapsed);

    /* hulynet_client_request passes its timeout on. */
    start = check_now_ms();
    CHECK_STATUS(hulynet_client_request(client, "x", "echo", NULL, 200, &out), HULYNET_ETIMEOUT);
    elapsed = check_now_ms() - start;
    CHECK_MSG(elapsed < 1000, "hulynet_client_request(timeout_ms 200) returns within 1000 ms");
    hulynet_client_destroy(client);
}

typedef fx_network network; /* host serves the agent, user uses the containers */

static int network_up(network *net, const char *kind_name) { return fx_network_up(net, "client-test", kind_name, 0); }
static void network_down(network *net) { fx_network_down(net); }

static void test_id_agents_kinds_list(void) {
    network net;
    char *agents = NULL, *kinds = NULL, *list = NULL;
    const char *id;
    hulynet_reference *reference = NULL;
    if (!network_up(&net, "echo")) goto done;

    id = hulynet_client_id(net.user);
    CHECK(id != NULL && id[0] != '\0');
    CHECK(id == hulynet_client_id(net.user)); /* owned by the client: the same text */
    CHECK(strcmp(id, hulynet_client_id(net.host)) != 0);

    CHECK_OK(hulynet_client_agents(net.user, 2000, &agents));
    CHECK_CONTAINS(agents, hulynet_agent_uuid(net.agent));
    CHECK_CONTAINS(agents, "\"agentId\"");
    CHECK_CONTAINS(agents, "\"endpoint\"");
    CHECK_CONTAINS(agents, "\"kinds\":[\"echo\"]");
    CHECK_CONTAINS(agents, "\"containers\":0");
    CHECK(agents != NULL && agents[0] == '[');

    CHECK_OK(hulynet_client_kinds(net.user, 2000, &kinds));
    CHECK_STR_EQ(kinds, "[\"echo\"]");

    CHECK_ANSWER(hulynet_client_list(net.user, NULL, 2000, &list), list, "[]");

    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    CHECK_OK(hulynet_client_list(net.user, NULL, 2000, &list));
    CHECK_CONTAINS(list, hulynet_reference_uuid(reference));
    CHECK_CONTAINS(list, "\"kind\":\"echo\"");
    /* hulynet records the real endpoint (the reference stores ''). */
    CHECK_NOT_CONTAINS(list, "\"endpoint\":\"\"");
    hulynet_free(list);
    list = NULL;
    CHECK_OK(hulynet_client_list(net.user, "echo", 2000, &list));
    CHECK_CONTAINS(list, hulynet_reference_uuid(reference));
    hulynet_free(list);
    list = NULL;
    CHECK_OK(hulynet_client_list(net.user, "nothing-of-this-kind", 2000, &list));
    CHECK_STR_EQ(list, "[]");

    hulynet_free(agents);
    agents = NULL;
    CHECK_OK(hulynet_client_agents(net.user, 2000, &agents));
    CHECK_CONTAINS(agents, "\"containers\":1");

done:
    hulynet_free(agents);
    hulynet_free(kinds);
    hulynet_free(list);
    hulynet_reference_destroy(reference);
    network_down(&net);
}

static void test_get(void) {
    network net;
    hulynet_reference *red1 = NULL, *red2 = NULL, *blue = NULL, *fixed1 = NULL, *fixed2 = NULL;
    char *out = NULL;
    int starts;
    if (!network_up(&net, "echo")) goto done;

    /* By kind and labels: the start sees the options; the same labels reach the same container. */
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"labels\":[\"red\"],\"extra\":{\"n\":1}}", 3000, &red1));
    CHECK(red1 != NULL);
    CHECK_CONTAINS(net.kind.last_options, "\"labels\":[\"red\"]");
    CHECK_CONTAINS(net.kind.last_options, "\"extra\":{\"n\":1}");
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"labels\":[\"red\"]}", 3000, &red2));
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"labels\":[\"blue\"]}", 3000, &blue));
    if (red1 == NULL || red2 == NULL || blue == NULL) goto done;
    CHECK_STR_EQ(hulynet_reference_uuid(red1), hulynet_reference_uuid(red2));
    CHECK(strcmp(hulynet_reference_uuid(red1), hulynet_reference_uuid(blue)) != 0);
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.starts), 2);
    CHECK_INT_EQ(net.kind.container_uuid_mismatches, 0);

    /* By uuid: the same uuid twice is the same container, started once. */
    starts = fx_int(&net.kind.lock, &net.kind.starts);
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"c-fixed-uuid-1\"}", 3000, &fixed1));
    CHECK_OK(hulynet_client_get(net.host, "echo", "{\"uuid\":\"c-fixed-uuid-1\"}", 3000, &fixed2));
    if (fixed1 == NULL || fixed2 == NULL) goto done;
    CHECK_STR_EQ(hulynet_reference_uuid(fixed1), "c-fixed-uuid-1");
    CHECK_STR_EQ(hulynet_reference_uuid(fixed2), "c-fixed-uuid-1");
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.starts), starts + 1);
    CHECK_STR_EQ(net.kind.last_uuid, "c-fixed-uuid-1");

    /* A request through the coordinator. */
    CHECK_ANSWER(hulynet_client_request(net.user, "c-fixed-uuid-1", "echo", "{\"a\":[1,2,\"three\"]}", 2000, &out), out, "{\"a\":[1,2,\"three\"]}");
    CHECK_ANSWER(hulynet_client_request(net.user, "c-fixed-uuid-1", "echo", NULL, 2000, &out), out, "null");
    CHECK_OK(hulynet_client_request(net.user, "c-fixed-uuid-1", "whoami", NULL, 2000, &out));
    CHECK_CONTAINS(out, "\"client\":null"); /* no client id through the coordinator */
    CHECK_CONTAINS(out, "\"uuid\":\"c-fixed-uuid-1\"");
    hulynet_free(out);
    out = NULL;
    /* timeout_ms <= 0: the default. */
    CHECK_ANSWER(hulynet_client_request(net.user, "c-fixed-uuid-1", "echo", "true", 0, &out), out, "true");

    /* An unknown uuid: an error that says not found. */
    out = (char *)&net;
    CHECK(hulynet_client_request(net.user, "no-such-container", "echo", "1", 2000, &out) != HULYNET_OK);
    CHECK(out == NULL);
    CHECK_CONTAINS(hulynet_last_error(), "not found");
    CHECK_STATUS(hulynet_client_request(net.user, "no-such-container", "echo", "1", 2000, &out), HULYNET_ENOTFOUND);

done:
    hulynet_free(out);
    hulynet_reference_destroy(red1);
    hulynet_reference_destroy(red2);
    hulynet_reference_destroy(blue);
    hulynet_reference_destroy(fixed1);
    hulynet_reference_destroy(fixed2);
    network_down(&net);
}

typedef struct get_call {
    hulynet_client *client;
    int64_t timeout_ms;
    int status;
    int finished;
    pthread_mutex_t lock;
    hulynet_reference *reference;
    char error[512];
} get_call;

static void *get_thread(void *argument) {
    get_call *call = argument;
    hulynet_reference *reference = NULL;
    int status = hulynet_client_get(call->client, "no-agent-offers-this", NULL, call->timeout_ms, &reference);
    pthread_mutex_lock(&call->lock);
    call->status = status;
    call->reference = reference;
    snprintf(call->error, sizeof call->error, "%s", hulynet_last_error());
    call->finished = 1;
    pthread_mutex_unlock(&call->lock);
    return NULL;
}

/* A kind no agent offers: the get fails once timeout_ms has passed. */
static void test_get_unknown_kind(void) {
    hulynet_server *server = fx_server();
    static get_call call; /* static: a get that never returns keeps using it */
    pthread_t thread;
    int returned = 0;
    int64_t start;
    if (server == NULL) return;
    memset(&call, 0, sizeof call);
    pthread_mutex_init(&call.lock, NULL);
    call.client = fx_client(hulynet_server_port(server));
    call.timeout_ms = 400;
    call.status = 1;
    if (call.client == NULL) goto done;
    start = check_now_ms();
    CHECK(pthread_create(&thread, NULL, get_thread, &call) == 0);
    WAIT_UNTIL(returned, fx_int(&call.lock, &call.finished), 2500);
    if (!CHECK_MSG(returned, "hulynet_client_get(kind nobody offers, timeout_ms 400) returns within 2.5 s")) {
        check_note("hulynet_client_get ignores timeout_ms: still waiting after %lld ms; destroying the client to end it",
                   (long long)(check_now_ms() - start));
        hulynet_client_destroy(call.client);
        call.client = NULL;
        WAIT_UNTIL(returned, fx_int(&call.lock, &call.finished), 1500);
        CHECK_MSG(returned, "destroying the client ends a get blocked in another thread");
        if (returned) check_note("the blocked get then returned %d (%s): %s", call.status, hulynet_strerror(call.status), call.error);
    } else {
        CHECK(call.status != HULYNET_OK);
        CHECK(call.status == HULYNET_ENOTFOUND || call.status == HULYNET_ETIMEOUT);
        CHECK(call.reference == NULL);
        CHECK_MSG(call.error[0] != '\0', "the failed get's last error is set");
    }
    if (returned) pthread_join(thread, NULL);
    else pthread_detach(thread);
done:
    hulynet_client_destroy(call.client);
    hulynet_server_destroy(server);
    if (returned) pthread_mutex_destroy(&call.lock);
}

static void test_listeners(void) {
    hulynet_server *server = fx_server();
    hulynet_client *watcher = NULL, *host = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *first = NULL, *second = NULL;
    echo_kind kind;
    fx_events removed, witness;
    uint64_t removed_id = 0, witness_id = 0;
    char pattern[256];
    int before;
    echo_kind_init(&kind, "listened");
    fx_events_init(&removed);
    fx_events_init(&witness);
    if (server == NULL) goto done;
    watcher = fx_client(hulynet_server_port(server));
    host = fx_client(hulynet_server_port(server));
    agent = fx_agent(NULL, "listened", &kind);
    if (watcher == NULL || host == NULL || agent == NULL) goto done;

    CHECK_OK(hulynet_client_add_listener(watcher, fx_event_fn, &removed, &removed_id));
    CHECK_OK(hulynet_client_add_listener(watcher, fx_event_fn, &witness, &witness_id));
    CHECK(removed_id != witness_id);

    /* Agent added. */
    CHECK_OK(hulynet_client_serve_agent(host, agent, "127.0.0.1", 0, 3000));
    snprintf(pattern, sizeof pattern, "{\"id\":\"%s\"", hulynet_agent_uuid(agent));
    CHECK_EVENTUALLY(fx_events_seen(&removed, hulynet_agent_uuid(agent)), 3000);
    CHECK(fx_events_seen(&removed, "\"agents\":[{"));
    CHECK(fx_events_seen(&removed, "\"event\":0"));
    CHECK(fx_events_seen(&removed, "\"kinds\":[\"listened\"]"));

    /* Container added. */
    CHECK_OK(hulynet_client_get(host, "listened", NULL, 3000, &first));
    if (first == NULL) goto done;
    CHECK_EVENTUALLY(fx_events_seen(&removed, hulynet_reference_uuid(first)), 3000);
    CHECK(fx_events_seen(&removed, "\"containers\":[{"));
    CHECK(fx_events_seen(&removed, "\"container\":{"));

    /* Removed: no more events for it; the witness still gets them. */
    CHECK_OK(hulynet_client_remove_listener(watcher, removed_id));
    CHECK_STATUS(hulynet_client_remove_listener(watcher, removed_id), HULYNET_ENOTFOUND);
    CHECK_STATUS(hulynet_client_remove_listener(watcher, 987654321), HULYNET_ENOTFOUND);
    before = fx_events_count(&removed);
    CHECK_OK(hulynet_client_get(host, "listened", "{\"uuid\":\"listened-second\"}", 3000, &second));
    CHECK_EVENTUALLY(fx_events_seen(&witness, "listened-second"), 3000);
    CHECK_INT_EQ(fx_events_count(&removed), before);
    CHECK(!fx_events_seen(&removed, "listened-second"));

    /* Container removed (event 2) after its release and the unused timeout. */
    CHECK_OK(hulynet_reference_release(second, 2000));
    CHECK_EVENTUALLY(fx_events_seen(&witness, "\"event\":2"), 3000);
    CHECK_OK(hulynet_client_remove_listener(watcher, witness_id));

done:
    hulynet_reference_destroy(first);
    hulynet_reference_destroy(second);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(host);
    hulynet_client_destroy(watcher);
    hulynet_server_destroy(server);
    fx_events_destroy(&removed);
    fx_events_destroy(&witness);
    echo_kind_destroy(&kind);
}

int main(void) {
    check_init("test_c_client", 55);
    RUN_TEST(test_wait_times_out);
    RUN_TEST(test_calls_honour_timeout);
    RUN_TEST(test_id_agents_kinds_list);
    RUN_TEST(test_get);
    RUN_TEST(test_get_unknown_kind);
    RUN_TEST(test_listeners);
    return check_summary();
}
