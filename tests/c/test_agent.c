/* Agents with container kinds written in C: every callback, answers now and later, failures,
 * terminate, stateless containers, agents without an endpoint. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

typedef fx_network network;

static int network_up(network *net, const char *kind_name) { return fx_network_up(net, "agent-test", kind_name, 0); }
static void network_down(network *net) { fx_network_down(net); }

static int count_done(fx_async *results, int n) {
    int i, done = 0;
    for (i = 0; i < n; i++) done += fx_async_calls(&results[i]) > 0 ? 1 : 0;
    return done;
}

static hulynet_request *parked_request(echo_kind *kind) {
    hulynet_request *request;
    pthread_mutex_lock(&kind->lock);
    request = kind->parked;
    pthread_mutex_unlock(&kind->lock);
    return request;
}

static void test_agent_create(void) {
    echo_kind kind;
    hulynet_container_kind tables[2];
    hulynet_agent *fixed = NULL, *random1 = NULL, *random2 = NULL, *empty = NULL;
    echo_kind_init(&kind, "create");
    tables[0] = echo_table("one", &kind);
    tables[1] = echo_table("two", &kind);
    CHECK_OK(hulynet_agent_create("c-agent-fixed-1", tables, 2, &fixed));
    CHECK_STR_EQ(hulynet_agent_uuid(fixed), "c-agent-fixed-1");
    CHECK_OK(hulynet_agent_create(NULL, tables, 1, &random1));
    CHECK_OK(hulynet_agent_create(NULL, tables, 1, &random2));
    CHECK(hulynet_agent_uuid(random1) != NULL && hulynet_agent_uuid(random1)[0] != '\0');
    CHECK(strcmp(hulynet_agent_uuid(random1), hulynet_agent_uuid(random2)) != 0);
    /* The table and its strings are copied: changing them afterwards changes nothing. */
    tables[0].kind = "changed";
    tables[0].start = NULL;
    CHECK_STR_EQ(hulynet_agent_uuid(fixed), "c-agent-fixed-1");
    /* No kinds at all is allowed (an agent for stateless containers only would still need one). */
    CHECK_OK(hulynet_agent_create(NULL, NULL, 0, &empty));
    hulynet_agent_destroy(empty);
    hulynet_agent_destroy(random2);
    hulynet_agent_destroy(random1);
    hulynet_agent_destroy(fixed);
    /* Never served: no container was ever started or stopped. */
    CHECK_INT_EQ(kind.starts, 0);
    CHECK_INT_EQ(kind.terminates, 0);
    echo_kind_destroy(&kind);
}

static void test_requests(void) {
    network net;
    hulynet_reference *reference = NULL;
    char *out = NULL;
    hulynet_request *parked;
    int ok;
    if (!network_up(&net, "echo")) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;

    /* Answered at once, from inside the callback. */
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "{\"now\":true}", 2000, &out), out, "{\"now\":true}");
    /* Answered later, from a thread of the container's own. */
    CHECK_ANSWER(hulynet_reference_request(reference, "later", "[\"later\",2]", 2000, &out), out, "[\"later\",2]");

    /* hulynet_request_fail: the client sees HULYNET_EREMOTE and the message. */
    out = (char *)&net;
    CHECK_STATUS(hulynet_reference_request(reference, "fail", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_CONTAINS(hulynet_last_error(), "deliberate failure");
    CHECK(out == NULL);
    CHECK_STATUS(hulynet_reference_request(reference, "later_fail", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_CONTAINS(hulynet_last_error(), "late failure");
    CHECK_STATUS(hulynet_client_request(net.user, hulynet_reference_uuid(reference), "nonsense", NULL, 2000, &out),
                 HULYNET_EREMOTE);
    CHECK_CONTAINS(hulynet_last_error(), "unknown operation nonsense");

    /* An answer that is not JSON: the reply says HULYNET_EJSON and the caller gets an error, not a hang. */
    CHECK(hulynet_reference_request(reference, "badjson", NULL, 2000, &out) != HULYNET_OK);
    CHECK(hulynet_last_error()[0] != '\0');
    check_note("a container's invalid JSON reached the client as: %s", hulynet_last_error());
    /* The callback records the status after hulynet_request_reply returns, which may be after the
     * client has its answer. */
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.reply_badjson_status) == HULYNET_EJSON, 2000);

    /* A blocking call from inside a callback is refused with HULYNET_EINVAL instead of deadlocking. */
    pthread_mutex_lock(&net.kind.lock);
    net.kind.probe_client = net.user;
    pthread_mutex_unlock(&net.kind.lock);
    CHECK_ANSWER(hulynet_reference_request(reference, "blocking", NULL, 2000, &out), out, "{\"status\":-1}");
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.blocking_status), HULYNET_EINVAL);

    /* A request never answered: the caller's timeout ends its wait; a late answer is harmless. */
    CHECK_STATUS(hulynet_reference_request(reference, "park", NULL, 300, &out), HULYNET_ETIMEOUT);
    WAIT_UNTIL(ok, (parked = parked_request(&net.kind)) != NULL, 2000);
    if (CHECK_MSG(ok, "the parked request reached the container")) {
        CHECK_OK(hulynet_request_reply(parked, "\"too late\""));
        /* Answering frees it: a second answer is refused. */
        CHECK_STATUS(hulynet_request_reply(parked, "1"), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_request_fail(parked, "again"), HULYNET_EINVAL);
    }
    /* Still serving. */
    CHECK_OK(hulynet_reference_request(reference, "echo", "5", 2000, &out));
    CHECK_STR_EQ(out, "5");
    CHECK(fx_wait_threads(&net.kind, 2000));

done:
    hulynet_free(out);
    hulynet_reference_destroy(reference);
    network_down(&net);
}

/* hulynet_agent_set_request_mode: inline request callbacks run on the agent's I/O thread, the
 * default ones on a callback thread ("hulynet-cb"); misuse is refused. */
static void test_request_mode(void) {
    network net;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    char *out = NULL;
    if (!network_up(&net, "echo")) goto done;
    CHECK_STATUS(hulynet_agent_set_request_mode(NULL, "echo", HULYNET_REQUESTS_INLINE), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_set_request_mode(net.agent, NULL, HULYNET_REQUESTS_INLINE), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_set_request_mode(net.agent, "no-such-kind", HULYNET_REQUESTS_INLINE), HULYNET_ENOTFOUND);
    CHECK_STATUS(hulynet_agent_set_request_mode(net.agent, "echo", 7), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "mode 7");

    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (connection == NULL) goto done;
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.connects) == 1, 2000);

    CHECK_ANSWER(hulynet_connection_request(connection, "thread_name", NULL, 2000, &out), out, "\"hulynet-cb\"");

    CHECK_OK(hulynet_agent_set_request_mode(net.agent, "echo", HULYNET_REQUESTS_INLINE));
    CHECK_OK(hulynet_connection_request(connection, "thread_name", NULL, 2000, &out));
    CHECK(out != NULL && strcmp(out, "\"hulynet-cb\"") != 0);
    hulynet_free(out);
    out = NULL;
    /* Through the coordinator too, and answers from other threads still work. */
    CHECK_OK(hulynet_reference_request(reference, "thread_name", NULL, 2000, &out));
    CHECK(out != NULL && strcmp(out, "\"hulynet-cb\"") != 0);
    hulynet_free(out);
    out = NULL;
    CHECK_ANSWER(hulynet_reference_request(reference, "later", "[1]", 2000, &out), out, "[1]");
    /* Inside an inline callback a blocking call is refused, as in any callback. */
    pthread_mutex_lock(&net.kind.lock);
    net.kind.probe_client = net.user;
    pthread_mutex_unlock(&net.kind.lock);
    CHECK_ANSWER(hulynet_reference_request(reference, "blocking", NULL, 2000, &out), out, "{\"status\":-1}");

    CHECK_OK(hulynet_agent_set_request_mode(net.agent, "echo", HULYNET_REQUESTS_ON_CALLBACK_THREAD));
    CHECK_OK(hulynet_connection_request(connection, "thread_name", NULL, 2000, &out));
    CHECK_STR_EQ(out, "\"hulynet-cb\"");
    CHECK(fx_wait_threads(&net.kind, 2000));

done:
    hulynet_free(out);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    network_down(&net);
}

/* Many requests at once, answered later from many threads. */
static void test_concurrent_requests(void) {
    enum { N = 24 };
    network net;
    hulynet_reference *reference = NULL;
    fx_async results[N];
    char data[32], expected[32];
    int i, all;
    for (i = 0; i < N; i++) fx_async_init(&results[i]);
    if (!network_up(&net, "echo")) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    for (i = 0; i < N; i++) {
        snprintf(data, sizeof data, "%d", i);
        CHECK_OK(hulynet_client_request_async(net.user, hulynet_reference_uuid(reference), i % 2 ? "later" : "echo", data,
                                              3000, fx_result_fn, &results[i]));
    }
    WAIT_UNTIL(all, count_done(results, N) == N, 5000);
    CHECK_MSG(all, "every asynchronous request completed");
    for (i = 0; i < N; i++) {
        snprintf(expected, sizeof expected, "%d", i);
        CHECK_INT_EQ(fx_async_calls(&results[i]), 1);
        CHECK_INT_EQ(results[i].status, HULYNET_OK);
        CHECK_STR_EQ(results[i].text, expected);
    }
done:
    hulynet_reference_destroy(reference);
    network_down(&net);
    for (i = 0; i < N; i++) fx_async_destroy(&results[i]);
}

static void test_start_failure(void) {
    network net;
    hulynet_reference *reference = NULL;
    if (!network_up(&net, "fragile")) goto done;
    pthread_mutex_lock(&net.kind.lock);
    net.kind.start_status = HULYNET_EINTERNAL;
    pthread_mutex_unlock(&net.kind.lock);
    reference = (hulynet_reference *)&net;
    CHECK(hulynet_client_get(net.user, "fragile", NULL, 2000, &reference) != HULYNET_OK);
    CHECK(reference == NULL);
    CHECK(hulynet_last_error()[0] != '\0');
    check_note("a start that failed reached the client as: %s", hulynet_last_error());
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.start_failures), 1);
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.terminates), 0);

    /* A failed start leaves nothing behind: the next get starts afresh. */
    pthread_mutex_lock(&net.kind.lock);
    net.kind.start_status = HULYNET_OK;
    pthread_mutex_unlock(&net.kind.lock);
    CHECK_OK(hulynet_client_get(net.user, "fragile", NULL, 2000, &reference));
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.starts), 1);
done:
    hulynet_reference_destroy(reference);
    network_down(&net);
}

static void test_terminate(void) {
    network net;
    hulynet_reference *reference = NULL, *other = NULL;
    int64_t held_until;
    if (!network_up(&net, "echo")) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;

    /* Held: it outlives the unused timeout (300 ms) by far. */
    held_until = check_now_ms() + 900;
    while (check_now_ms() < held_until && fx_int(&net.kind.lock, &net.kind.terminates) == 0) check_sleep_ms(10);
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.terminates), 0);

    /* Released: terminate comes after the unused timeout. */
    CHECK_OK(hulynet_reference_release(reference, 2000));
    CHECK_OK(hulynet_reference_release(reference, 2000)); /* idempotent */
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.terminates) == 1, 3000);
    hulynet_reference_destroy(reference);
    reference = NULL;

    /* Destroying a reference releases it too. */
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"c-destroyed-ref\"}", 3000, &other));
    hulynet_reference_destroy(other);
    other = NULL;
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.terminates) == 2, 3000);
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.starts), 2);

    /* Destroying the agent stops what it still runs, before it returns. */
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"c-held-1\"}", 3000, &reference));
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"c-held-2\"}", 3000, &other));
    hulynet_agent_destroy(net.agent);
    net.agent = NULL;
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.terminates), 4);
    CHECK_EVENTUALLY(!fx_has_kind(net.user, "echo"), 3000);
done:
    hulynet_reference_destroy(reference);
    hulynet_reference_destroy(other);
    network_down(&net);
}

/* Two agents offer the same stateless uuid: the first keeps it; when it goes, the second takes over. */
static void test_stateless(void) {
    hulynet_server *server = fx_server();
    hulynet_client *first_host = NULL, *second_host = NULL, *user = NULL;
    hulynet_agent *first = NULL, *second = NULL;
    echo_kind first_kind, second_kind;
    echo_container first_state, second_state;
    char *out = NULL, *list = NULL;
    int ok;
    echo_kind_init(&first_kind, "first");
    echo_kind_init(&second_kind, "second");
    memset(&first_state, 0, sizeof first_state);
    memset(&second_state, 0, sizeof second_state);
    first_state.kind = &first_kind;
    second_state.kind = &second_kind;
    snprintf(first_state.uuid, sizeof first_state.uuid, "c-stateless-1");
    snprintf(second_state.uuid, sizeof second_state.uuid, "c-stateless-1");
    if (server == NULL) goto done;
    first_host = fx_client(hulynet_server_port(server));
    second_host = fx_client(hulynet_server_port(server));
    user = fx_client(hulynet_server_port(server));
    first = fx_agent(NULL, "stateless", &first_kind);
    second = fx_agent(NULL, "stateless", &second_kind);
    if (first_host == NULL || second_host == NULL || user == NULL || first == NULL || second == NULL) goto done;

    CHECK_STATUS(hulynet_agent_add_stateless(first, "c-stateless-2", "no-such-kind", NULL), HULYNET_ENOTFOUND);
    CHECK_OK(hulynet_agent_add_stateless(first, "c-stateless-1", "stateless", &first_state));
    CHECK_OK(hulynet_agent_add_stateless(second, "c-stateless-1", "stateless", &second_state));
    CHECK_OK(hulynet_client_serve_agent(first_host, first, "127.0.0.1", 0, 3000));
    CHECK_OK(hulynet_client_serve_agent(second_host, second, "127.0.0.1", 0, 3000));

    /* The first keeps it. */
    CHECK_OK(hulynet_client_request(user, "c-stateless-1", "whoami", NULL, 2000, &out));
    CHECK_CONTAINS(out, "\"tag\":\"first\"");
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_client_list(user, "stateless", 2000, &list));
    CHECK_INT_EQ(fx_count(list, "\"uuid\":\"c-stateless-1\""), 1);
    CHECK_INT_EQ(fx_count(list, "\"kind\":\"stateless\""), 1);
    CHECK_CONTAINS(list, hulynet_agent_uuid(first));
    CHECK_NOT_CONTAINS(list, hulynet_agent_uuid(second));
    /* The second keeps its own on standby (not terminated). */
    CHECK_INT_EQ(fx_int(&second_kind.lock, &second_kind.terminates), 0);
    CHECK_INT_EQ(first_kind.starts + second_kind.starts, 0);

    /* The first goes: the second takes the uuid over and answers. */
    hulynet_client_destroy(first_host);
    first_host = NULL;
    WAIT_UNTIL(ok,
               (hulynet_free(out), out = NULL,
                hulynet_client_request(user, "c-stateless-1", "whoami", NULL, 500, &out) == HULYNET_OK &&
                    strstr(out, "\"tag\":\"second\"") != NULL),
               5000);
    CHECK_MSG(ok, "after the first agent's client is gone, the second agent answers for c-stateless-1");

done:
    hulynet_free(out);
    hulynet_free(list);
    hulynet_client_destroy(user);
    hulynet_agent_destroy(second);
    hulynet_agent_destroy(first);
    hulynet_client_destroy(second_host);
    hulynet_client_destroy(first_host);
    hulynet_server_destroy(server);
    /* Destroying an agent terminates its stateless containers with the user pointer given. */
    CHECK_INT_EQ(fx_int(&first_kind.lock, &first_kind.terminates), 1);
    CHECK_INT_EQ(fx_int(&second_kind.lock, &second_kind.terminates), 1);
    echo_kind_destroy(&first_kind);
    echo_kind_destroy(&second_kind);
}

/* An agent registered without an endpoint: requests go through the coordinator; no connections. */
static void test_register_agent(void) {
    hulynet_server *server = fx_server();
    hulynet_client *host = NULL, *user = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    echo_kind kind;
    char *out = NULL;
    echo_kind_init(&kind, "registered");
    if (server == NULL) goto done;
    host = fx_client(hulynet_server_port(server));
    user = fx_client(hulynet_server_port(server));
    agent = fx_agent(NULL, "endpointless", &kind);
    if (host == NULL || user == NULL || agent == NULL) goto done;
    CHECK_OK(hulynet_client_register_agent(host, agent, 3000));
    /* One client at most serves an agent. */
    CHECK_STATUS(hulynet_client_register_agent(user, agent, 3000), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(user, agent, "127.0.0.1", 0, 3000), HULYNET_EINVAL);

    CHECK_OK(hulynet_client_get(user, "endpointless", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_CONTAINS(hulynet_reference_endpoint(reference), "\"kind\":2");
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "\"through the coordinator\"", 2000, &out), out, "\"through the coordinator\"");
    CHECK_OK(hulynet_client_request(user, hulynet_reference_uuid(reference), "later", "7", 2000, &out));
    CHECK_STR_EQ(out, "7");

    connection = (hulynet_connection *)&kind;
    CHECK(hulynet_reference_connect(reference, 2000, &connection) != HULYNET_OK);
    CHECK(connection == NULL);
    CHECK(hulynet_last_error()[0] != '\0');
    check_note("connect to a container without endpoint: %s", hulynet_last_error());
    /* The reference still works after the failed connect. */
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_reference_request(reference, "echo", "8", 2000, &out));
    CHECK_STR_EQ(out, "8");
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

/* Errors by their code, not their text: a container's EAGAIN / ELIMIT reach the caller as such
 * (through the coordinator, on a connection, asynchronously); a container's text that looks
 * like the network's "not found" stays a container's error. */
static void test_error_statuses(void) {
    network net;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    fx_async async;
    char *out = NULL;
    fx_async_init(&async);
    if (!network_up(&net, "echo")) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (connection == NULL) goto done;

    CHECK_STATUS(hulynet_reference_request(reference, "busy", NULL, 2000, &out), HULYNET_EAGAIN);
    CHECK_STR_EQ(hulynet_last_error(), "busy, retry later");
    CHECK_STATUS(hulynet_connection_request(connection, "busy", NULL, 2000, &out), HULYNET_EAGAIN);
    CHECK_STATUS(hulynet_reference_request(reference, "too_big", NULL, 2000, &out), HULYNET_ELIMIT);
    CHECK_STR_EQ(hulynet_last_error(), "over the container's limit");
    CHECK_STATUS(hulynet_connection_request(connection, "too_big", NULL, 2000, &out), HULYNET_ELIMIT);
    CHECK_STATUS(hulynet_reference_request(reference, "says_not_found", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_STR_EQ(hulynet_last_error(), "Container abc not found");
    CHECK_STATUS(hulynet_connection_request(connection, "says_not_found", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_STATUS(hulynet_reference_request(reference, "fail", NULL, 2000, &out), HULYNET_EREMOTE);
    /* A status a container may not give is refused, and the request still ends. */
    CHECK_STATUS(hulynet_reference_request(reference, "bad_status", NULL, 2000, &out), HULYNET_EREMOTE);
    CHECK_INT_EQ(fx_int(&net.kind.lock, &net.kind.reply_badjson_status), HULYNET_EINVAL);
    CHECK_OK(hulynet_reference_request_async(reference, "busy", NULL, 2000, fx_result_fn, &async));
    CHECK_EVENTUALLY(fx_async_calls(&async) == 1, 2000);
    CHECK_INT_EQ(async.status, HULYNET_EAGAIN);
    CHECK_STR_EQ(async.text, "busy, retry later");
    /* The network's own not-found, by its code. */
    CHECK_STATUS(hulynet_client_request(net.user, "no-such-container", "echo", NULL, 2000, &out), HULYNET_ENOTFOUND);
    CHECK_STATUS(hulynet_request_fail_status(NULL, HULYNET_EAGAIN, "x"), HULYNET_EINVAL);
    CHECK_STR_EQ(hulynet_strerror(HULYNET_EAGAIN), "retry later");
    CHECK_STR_EQ(hulynet_strerror(HULYNET_ELIMIT), "a limit is reached");
done:
    hulynet_free(out);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    network_down(&net);
    fx_async_destroy(&async);
}

/* hulynet_agent_set_direct: a container on an endpoint of its own. Its endpoint reference is a
 * direct one (kind 1, naming the container) on another port than the agent's; a connection to
 * it serves requests (seeing the caller's id) and events; requests through the coordinator work
 * too; routed again for containers started after it is turned off. */
static int first_port(const char *text) {
    const char *at = text != NULL ? strstr(text, "port") : NULL;
    if (at == NULL) return -1;
    while (*at != '\0' && (*at < '0' || *at > '9')) at++;
    return atoi(at);
}

static void test_direct_container(void) {
    network net;
    hulynet_reference *reference = NULL, *routed = NULL;
    hulynet_connection *connection = NULL;
    fx_events events;
    char *out = NULL;
    char expected[256];
    char *agents = NULL;
    fx_events_init(&events);
    if (!network_up(&net, "echo")) goto done;
    CHECK_STATUS(hulynet_agent_set_direct(NULL, "echo", 1), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_set_direct(net.agent, "no-such-kind", 1), HULYNET_ENOTFOUND);
    CHECK_STATUS(hulynet_agent_set_direct(net.agent, "echo", 2), HULYNET_EINVAL);
    CHECK_OK(hulynet_agent_set_direct(net.agent, "echo", 1));

    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"direct-1\"}", 3000, &reference));
    if (reference == NULL) goto done;
    CHECK_CONTAINS(hulynet_reference_endpoint(reference), "\"kind\":1");
    CHECK_CONTAINS(hulynet_reference_endpoint(reference), "\"uuid\":\"direct-1\"");
    CHECK_CONTAINS(hulynet_reference_endpoint(reference), "\"host\":\"127.0.0.1\"");
    /* Its port is not the agent's (the first number after "port" in each text). */
    CHECK_OK(hulynet_client_agents(net.user, 2000, &agents));
    CHECK(first_port(agents) > 0 && first_port(hulynet_reference_endpoint(reference)) > 0);
    CHECK(first_port(agents) != first_port(hulynet_reference_endpoint(reference)));

    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (connection == NULL) goto done;
    CHECK_OK(hulynet_connection_set_event_handler(connection, fx_event_fn, &events));
    CHECK_ANSWER(hulynet_connection_request(connection, "echo", "{\"d\":1}", 2000, &out), out, "{\"d\":1}");
    CHECK_OK(hulynet_connection_request(connection, "whoami", NULL, 2000, &out));
    snprintf(expected, sizeof expected, "\"client\":\"%s\"", hulynet_client_id(net.user));
    CHECK_CONTAINS(out, expected);
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_connection_request(connection, "emit", "\"direct event\"", 2000, &out));
    CHECK_CONTAINS(out, "\"delivered\":1");
    hulynet_free(out);
    out = NULL;
    CHECK_EVENTUALLY(fx_events_seen(&events, "\"direct event\""), 2000);
    CHECK_EVENTUALLY(fx_int(&net.kind.lock, &net.kind.connects) == 1, 2000);
    CHECK_ANSWER(hulynet_reference_request(reference, "echo", "[2]", 2000, &out), out, "[2]");

    /* Off again: the next container is routed (kind 0). */
    CHECK_OK(hulynet_agent_set_direct(net.agent, "echo", 0));
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"routed-1\"}", 3000, &routed));
    if (routed == NULL) goto done;
    CHECK_CONTAINS(hulynet_reference_endpoint(routed), "\"kind\":0");
done:
    hulynet_free(out);
    hulynet_free(agents);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(routed);
    hulynet_reference_destroy(reference);
    network_down(&net);
    fx_events_destroy(&events);
}

/* Log records with their fields apart: the coordinator's "agent registered" names the agent. */
typedef struct log_records {
    pthread_mutex_t lock;
    int registered; /* records "agent registered" whose agent field is `agent` */
    int fields_sorted;
    char agent[128];
} log_records;

static void record_log(void *user, int level, const char *logger, const char *message, const hulynet_log_field *fields,
                       size_t field_count) {
    log_records *records = user;
    size_t i;
    int names_agent = 0, sorted = 1;
    (void)level;
    if (logger == NULL || message == NULL || strcmp(message, "agent registered") != 0) return;
    for (i = 0; i < field_count; i++) {
        if (i > 0 && strcmp(fields[i - 1].key, fields[i].key) > 0) sorted = 0;
        pthread_mutex_lock(&records->lock);
        if (strcmp(fields[i].key, "agent") == 0 && strcmp(fields[i].value, records->agent) == 0) names_agent = 1;
        pthread_mutex_unlock(&records->lock);
    }
    pthread_mutex_lock(&records->lock);
    if (names_agent) records->registered++;
    if (sorted) records->fields_sorted++;
    pthread_mutex_unlock(&records->lock);
}

static void test_log_records(void) {
    network net;
    log_records records;
    memset(&records, 0, sizeof records);
    pthread_mutex_init(&records.lock, NULL);
    CHECK_STATUS(hulynet_set_log_record_handler(record_log, &records, NULL, 99), HULYNET_EINVAL);
    CHECK_OK(hulynet_set_log_record_handler(record_log, &records, NULL, HULYNET_LOG_INFO));
    memset(&net, 0, sizeof net);
    net.agent = NULL;
    /* The agent's uuid is known only once it exists: record it before it registers. */
    echo_kind_init(&net.kind, "log-test");
    net.server = fx_server();
    if (net.server != NULL) {
        net.host = fx_client(hulynet_server_port(net.server));
        net.agent = fx_agent(NULL, "echo", &net.kind);
        if (net.agent != NULL && net.host != NULL) {
            pthread_mutex_lock(&records.lock);
            fx_copy_text(records.agent, sizeof records.agent, hulynet_agent_uuid(net.agent));
            pthread_mutex_unlock(&records.lock);
            CHECK_OK(hulynet_client_serve_agent(net.host, net.agent, "127.0.0.1", 0, 3000));
            CHECK_EVENTUALLY(fx_int(&records.lock, &records.registered) >= 1, 3000);
            CHECK(fx_int(&records.lock, &records.fields_sorted) >= 1);
        }
    }
    CHECK_OK(hulynet_set_log_record_handler(NULL, NULL, NULL, HULYNET_LOG_WARNING));
    fx_network_down(&net);
    pthread_mutex_destroy(&records.lock);
}

int main(void) {
    check_init("test_c_agent", 55);
    RUN_TEST(test_agent_create);
    RUN_TEST(test_requests);
    RUN_TEST(test_request_mode);
    RUN_TEST(test_error_statuses);
    RUN_TEST(test_direct_container);
    RUN_TEST(test_concurrent_requests);
    RUN_TEST(test_start_failure);
    RUN_TEST(test_terminate);
    RUN_TEST(test_stateless);
    RUN_TEST(test_register_agent);
    RUN_TEST(test_log_records);
    return check_summary();
}
