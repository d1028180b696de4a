/* Misuse: nothing may crash. NULL handles and pointers, invalid JSON, invalid UTF-8, destroyed
 * handles, handles of the wrong type, children of a destroyed client, blocking calls and
 * destroys from inside callbacks, out-of-range arguments. */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

/* A small network: a server, a client serving an agent of kind "echo", a client using a
 * container of it through a reference and a connection. */
typedef struct network {
    fx_network base;
    hulynet_reference *reference;
    hulynet_connection *connection;
    hulynet_container *container; /* the container `reference` holds */
} network;

static int network_up(network *net) {
    net->reference = NULL;
    net->connection = NULL;
    net->container = NULL;
    if (!fx_network_up(&net->base, "misuse", "echo", 0)) return 0;
    if (!CHECK_OK(hulynet_client_get(net->base.user, "echo", NULL, 3000, &net->reference))) return 0;
    net->container = fx_last_container(&net->base.kind);
    return CHECK_OK(hulynet_reference_connect(net->reference, 3000, &net->connection));
}

static void network_down(network *net) {
    hulynet_connection_destroy(net->connection);
    hulynet_reference_destroy(net->reference);
    fx_network_down(&net->base);
}

static void ignore_event(void *user, const char *json) {
    (void)user;
    (void)json;
}

static void ignore_result(void *user, int status, const char *json) {
    (void)user;
    (void)status;
    (void)json;
}

static void ignore_reference(void *user, int status, hulynet_reference *reference, const char *error) {
    (void)user;
    (void)status;
    (void)error;
    hulynet_reference_destroy(reference);
}

static int dummy_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                       void **container_user) {
    (void)kind_user;
    (void)container;
    (void)uuid;
    (void)options_json;
    (void)container_user;
    return HULYNET_OK;
}

static void dummy_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                          const char *client_id) {
    (void)container_user;
    (void)operation;
    (void)data_json;
    (void)client_id;
    hulynet_request_reply(request, "null");
}

/* ---- NULL ---------------------------------------------------------------------------------------- */

static void test_null_without_network(void) {
    hulynet_server *server = NULL;
    hulynet_client *client = NULL;
    hulynet_agent *agent = NULL;
    hulynet_server_stats stats;
    hulynet_container_kind kind;
    hulynet_timeouts timeouts = fx_timeouts();
    char *out = (char *)&timeouts;
    uint64_t subscription = 0;
    int delivered = 7;

    /* The void functions do nothing with NULL. */
    hulynet_free(NULL);
    hulynet_server_destroy(NULL);
    hulynet_client_destroy(NULL);
    hulynet_reference_destroy(NULL);
    hulynet_connection_destroy(NULL);
    hulynet_agent_destroy(NULL);

    CHECK_STATUS(hulynet_server_start(NULL, 0, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_start("127.0.0.1", 0, NULL, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_port(NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_stats_get(NULL, &stats), HULYNET_EINVAL);

    CHECK_STATUS(hulynet_client_connect(NULL, 1234, NULL, &client), HULYNET_EINVAL);
    CHECK(client == NULL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, NULL, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_wait(NULL, 100), HULYNET_EINVAL);
    CHECK(hulynet_client_id(NULL) == NULL);
    CHECK_STATUS(hulynet_client_agents(NULL, 100, &out), HULYNET_EINVAL);
    CHECK(out == NULL);
    CHECK_STATUS(hulynet_client_kinds(NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_list(NULL, NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get(NULL, "echo", NULL, 100, (hulynet_reference **)&server), HULYNET_EINVAL);
    CHECK(server == NULL);
    CHECK_STATUS(hulynet_client_get_async(NULL, "echo", NULL, 100, ignore_reference, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request(NULL, "u", "echo", NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request_async(NULL, "u", "echo", NULL, 100, ignore_result, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_add_listener(NULL, ignore_event, NULL, &subscription), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_remove_listener(NULL, 1), HULYNET_EINVAL);

    CHECK(hulynet_reference_uuid(NULL) == NULL);
    CHECK(hulynet_reference_endpoint(NULL) == NULL);
    CHECK_STATUS(hulynet_reference_request(NULL, "echo", NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_connect(NULL, 100, (hulynet_connection **)&server), HULYNET_EINVAL);
    CHECK(server == NULL);
    CHECK_STATUS(hulynet_reference_release(NULL, 100), HULYNET_EINVAL);

    CHECK_STATUS(hulynet_connection_set_event_handler(NULL, ignore_event, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request(NULL, "echo", NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request_async(NULL, "echo", NULL, 100, ignore_result, NULL), HULYNET_EINVAL);

    memset(&kind, 0, sizeof kind);
    kind.size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    kind.kind = "k";
    kind.start = dummy_start;
    kind.request = dummy_request;
    CHECK_STATUS(hulynet_agent_create(NULL, &kind, 1, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_create(NULL, NULL, 1, &agent), HULYNET_EINVAL);
    CHECK(agent == NULL);
    CHECK(hulynet_agent_uuid(NULL) == NULL);
    CHECK_STATUS(hulynet_agent_add_stateless(NULL, "u", "k", NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(NULL, NULL, "127.0.0.1", 0, 100), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_register_agent(NULL, NULL, 100), HULYNET_EINVAL);

    CHECK(hulynet_container_uuid(NULL) == NULL);
    CHECK_STATUS(hulynet_container_emit(NULL, NULL, "1", &delivered), HULYNET_EINVAL);
    CHECK_INT_EQ(delivered, 0);
    CHECK_STATUS(hulynet_request_reply(NULL, "1"), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_request_fail(NULL, "no"), HULYNET_EINVAL);
    CHECK(hulynet_last_error()[0] != '\0');
}

static void test_null_with_network(void) {
    network net;
    hulynet_agent *spare = NULL;
    hulynet_reference *reference = (hulynet_reference *)&net;
    hulynet_connection *connection = (hulynet_connection *)&net;
    hulynet_container *container;
    char *out = (char *)&net;
    if (!network_up(&net)) goto done;

    CHECK_STATUS(hulynet_server_stats_get(net.base.server, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_agents(net.base.user, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_kinds(net.base.user, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_list(net.base.user, NULL, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get(net.base.user, NULL, NULL, 1000, &reference), HULYNET_EINVAL);
    CHECK(reference == NULL);
    CHECK_STATUS(hulynet_client_get(net.base.user, "echo", NULL, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get_async(net.base.user, NULL, NULL, 1000, ignore_reference, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get_async(net.base.user, "echo", NULL, 1000, NULL, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request(net.base.user, NULL, "echo", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK(out == NULL);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", NULL, NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", NULL, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request_async(net.base.user, NULL, "echo", NULL, 1000, ignore_result, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request_async(net.base.user, "u", NULL, NULL, 1000, ignore_result, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request_async(net.base.user, "u", "echo", NULL, 1000, NULL, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_add_listener(net.base.user, NULL, NULL, (uint64_t *)&out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_add_listener(net.base.user, ignore_event, NULL, NULL), HULYNET_EINVAL);

    CHECK_STATUS(hulynet_reference_request(net.reference, NULL, NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_request(net.reference, "echo", NULL, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_connect(net.reference, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request(net.connection, NULL, NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request(net.connection, "echo", NULL, 1000, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request_async(net.connection, NULL, NULL, 1000, ignore_result, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request_async(net.connection, "echo", NULL, 1000, NULL, NULL), HULYNET_EINVAL);
    (void)connection;

    spare = fx_agent(NULL, "spare", &net.base.kind);
    CHECK_STATUS(hulynet_agent_add_stateless(spare, NULL, "spare", NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_add_stateless(spare, "u", NULL, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(net.base.user, NULL, "127.0.0.1", 0, 1000), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(NULL, spare, "127.0.0.1", 0, 1000), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_register_agent(net.base.user, NULL, 1000), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_register_agent(NULL, spare, 1000), HULYNET_EINVAL);
    /* The refusals above did not claim the agent: it can still be served. */
    CHECK_OK(hulynet_client_register_agent(net.base.user, spare, 3000));

    container = net.container;
    if (CHECK(container != NULL)) {
        CHECK_STATUS(hulynet_container_emit(container, NULL, NULL, NULL), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_container_emit(container, hulynet_client_id(net.base.user), NULL, NULL), HULYNET_EINVAL);
    }
    /* Everything still works. */
    CHECK_OK(hulynet_connection_request(net.connection, "echo", "1", 2000, &out));
    CHECK_STR_EQ(out, "1");
done:
    hulynet_free(out == (char *)&net ? NULL : out);
    hulynet_agent_destroy(spare);
    network_down(&net);
}

/* ---- invalid JSON and UTF-8 -------------------------------------------------------------------- */

static char *deep_json(int depth) {
    char *text = malloc((size_t)depth * 2 + 1);
    int i;
    for (i = 0; i < depth; i++) {
        text[i] = '[';
        text[depth + i] = ']';
    }
    text[depth * 2] = '\0';
    return text;
}

static void test_invalid_json(void) {
    network net;
    char *out = (char *)&net;
    char *deep = deep_json(100000);
    hulynet_reference *reference = (hulynet_reference *)&net;
    hulynet_container *container;
    int delivered = 7;
    fx_async async;
    fx_async_init(&async);
    if (!network_up(&net)) goto done;

    CHECK_STATUS(hulynet_client_request(net.base.user, hulynet_reference_uuid(net.reference), "echo", "{", 1000, &out), HULYNET_EJSON);
    CHECK(out == NULL);
    CHECK(hulynet_last_error()[0] != '\0');
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", "", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", "1 2", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", "{'a':1}", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", "[1,]", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", "NaN", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request(net.base.user, "u", "echo", deep, 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_request_async(net.base.user, "u", "echo", "}", 1000, ignore_result, NULL), HULYNET_EJSON);
    CHECK_STATUS(hulynet_reference_request(net.reference, "echo", "[1,", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_connection_request(net.connection, "echo", "nul", 1000, &out), HULYNET_EJSON);
    CHECK_STATUS(hulynet_connection_request_async(net.connection, "echo", "tru", 1000, ignore_result, NULL), HULYNET_EJSON);
    CHECK_STATUS(hulynet_client_get(net.base.user, "echo", "{\"uuid\":", 1000, &reference), HULYNET_EJSON);
    CHECK(reference == NULL);
    CHECK_STATUS(hulynet_client_get_async(net.base.user, "echo", "{", 1000, ignore_reference, NULL), HULYNET_EJSON);
    /* JSON that parses but is not get options. */
    CHECK_STATUS(hulynet_client_get(net.base.user, "echo", "[1]", 1000, &reference), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get(net.base.user, "echo", "{\"labels\":\"red\"}", 1000, &reference), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get(net.base.user, "echo", "{\"uuid\":5}", 1000, &reference), HULYNET_EINVAL);
    container = net.container;
    if (CHECK(container != NULL)) {
        CHECK_STATUS(hulynet_container_emit(container, NULL, "{\"a\"", &delivered), HULYNET_EJSON);
        CHECK_INT_EQ(delivered, 0);
    }
    /* A container's reply that is not JSON: covered in test_c_agent (badjson). Here: asynchronously. */
    CHECK_OK(hulynet_client_request_async(net.base.user, hulynet_reference_uuid(net.reference), "badjson", NULL, 2000, fx_result_fn,
                                          &async));
    CHECK_EVENTUALLY(fx_async_calls(&async) == 1, 3000);
    CHECK(async.status != HULYNET_OK);
    CHECK_INT_EQ(fx_int(&net.base.kind.lock, &net.base.kind.reply_badjson_status), HULYNET_EJSON);

    /* Deep but allowed nesting, and a large text, go through intact. */
    free(deep);
    deep = deep_json(200);
    CHECK_ANSWER(hulynet_connection_request(net.connection, "echo", deep, 2000, &out), out, deep);
    free(deep);
    deep = malloc(1 << 20);
    memset(deep, 'x', (1 << 20) - 1);
    deep[0] = '"';
    deep[(1 << 20) - 2] = '"';
    deep[(1 << 20) - 1] = '\0';
    CHECK_OK(hulynet_client_request(net.base.user, hulynet_reference_uuid(net.reference), "echo", deep, 5000, &out));
    CHECK_MSG(out != NULL && strcmp(out, deep) == 0, "a 1 MiB JSON string comes back intact");
done:
    hulynet_free(out == (char *)&net ? NULL : out);
    free(deep);
    network_down(&net);
    fx_async_destroy(&async);
}

static hulynet_request *take_parked(echo_kind *kind) {
    hulynet_request *request;
    pthread_mutex_lock(&kind->lock);
    request = kind->parked;
    kind->parked = NULL;
    pthread_mutex_unlock(&kind->lock);
    return request;
}

static void test_invalid_utf8(void) {
    network net;
    hulynet_server *server = NULL;
    hulynet_client *client = NULL;
    hulynet_agent *agent = NULL, *spare = NULL;
    hulynet_reference *reference = NULL;
    hulynet_container_kind kind;
    hulynet_container *container;
    hulynet_request *parked = NULL;
    char *out = NULL;
    int delivered, ok;
    fx_async failed, replied;
    const char *uuid;
    fx_async_init(&failed);
    fx_async_init(&replied);
    if (!network_up(&net)) goto done;
    uuid = hulynet_reference_uuid(net.reference);

    CHECK_STATUS(hulynet_server_start("\xff", 0, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("\xc3\x28", 1234, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_list(net.base.user, "\xff", 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get(net.base.user, "\xff", NULL, 1000, &reference), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_get_async(net.base.user, "e\x80", NULL, 1000, ignore_reference, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request(net.base.user, "\xff", "echo", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request(net.base.user, uuid, "\xfe", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_request_async(net.base.user, uuid, "\xed\xa0\x80", NULL, 1000, ignore_result, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_request(net.reference, "\xff", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request(net.connection, "\xc0\xaf", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_request_async(net.connection, "\xff", NULL, 1000, ignore_result, NULL), HULYNET_EINVAL);
    /* Inside JSON text: refused as one or the other. */
    CHECK_STATUS2(hulynet_client_request(net.base.user, uuid, "echo", "\"\xff\"", 1000, &out), HULYNET_EJSON, HULYNET_EINVAL);
    CHECK_STATUS2(hulynet_client_get(net.base.user, "echo", "{\"uuid\":\"\xff\"}", 1000, &reference), HULYNET_EJSON, HULYNET_EINVAL);

    memset(&kind, 0, sizeof kind);
    kind.size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    kind.kind = "k\xff";
    kind.start = dummy_start;
    kind.request = dummy_request;
    CHECK_STATUS(hulynet_agent_create(NULL, &kind, 1, &agent), HULYNET_EINVAL);
    kind.kind = "k";
    CHECK_STATUS(hulynet_agent_create("\xff", &kind, 1, &agent), HULYNET_EINVAL);
    CHECK(agent == NULL);
    CHECK_OK(hulynet_agent_create(NULL, &kind, 1, &spare));
    CHECK_STATUS(hulynet_agent_add_stateless(spare, "\xff", "k", NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_add_stateless(spare, "u", "\xff", NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(net.base.user, spare, "\xff", 0, 1000), HULYNET_EINVAL);
    /* ... which did not claim it. */
    CHECK_OK(hulynet_client_serve_agent(net.base.user, spare, "127.0.0.1", 0, 3000));

    container = net.container;
    if (CHECK(container != NULL)) {
        delivered = 7;
        CHECK_STATUS(hulynet_container_emit(container, "\xff", "1", &delivered), HULYNET_EINVAL);
        CHECK_INT_EQ(delivered, 0);
    }

    /* hulynet_request_fail with a message that is not UTF-8: refused, and the caller still gets an error. */
    CHECK_OK(hulynet_client_request_async(net.base.user, uuid, "park", NULL, 3000, fx_result_fn, &failed));
    WAIT_UNTIL(ok, (parked = take_parked(&net.base.kind)) != NULL, 2000);
    if (CHECK_MSG(ok, "the parked request reached the container")) {
        CHECK_STATUS(hulynet_request_fail(parked, "bad \xff message"), HULYNET_EINVAL);
        CHECK_EVENTUALLY(fx_async_calls(&failed) == 1, 3000);
        CHECK_INT_EQ(failed.status, HULYNET_EREMOTE);
        check_note("request_fail with invalid UTF-8 reached the client as: %d %s", failed.status, failed.text);
        /* Whatever it returned, the request is answered now. */
        CHECK_STATUS(hulynet_request_fail(parked, "again"), HULYNET_EINVAL);
    }
    /* hulynet_request_reply with JSON that is not UTF-8. */
    CHECK_OK(hulynet_client_request_async(net.base.user, uuid, "park", NULL, 3000, fx_result_fn, &replied));
    WAIT_UNTIL(ok, (parked = take_parked(&net.base.kind)) != NULL, 2000);
    if (CHECK_MSG(ok, "the parked request reached the container")) {
        CHECK_STATUS2(hulynet_request_reply(parked, "\"\xff\""), HULYNET_EJSON, HULYNET_EINVAL);
        CHECK_EVENTUALLY(fx_async_calls(&replied) == 1, 3000);
        CHECK(replied.status != HULYNET_OK);
    }
done:
    hulynet_free(out);
    hulynet_agent_destroy(spare);
    network_down(&net);
    fx_async_destroy(&failed);
    fx_async_destroy(&replied);
}

/* ---- destroyed handles, wrong types --------------------------------------------------------------- */

static void test_destroyed_handles(void) {
    network net;
    hulynet_server *server = NULL;
    hulynet_client *client = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    hulynet_container *container;
    hulynet_server_stats stats;
    echo_kind kind;
    char *out = NULL;
    uint64_t subscription;
    echo_kind_init(&kind, "destroyed");
    if (!network_up(&net)) goto done;

    CHECK_OK(hulynet_server_start("127.0.0.1", 0, NULL, &server));
    hulynet_server_destroy(server);
    CHECK_STATUS(hulynet_server_port(server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_stats_get(server, &stats), HULYNET_EINVAL);
    hulynet_server_destroy(server); /* twice: harmless */

    client = fx_client(hulynet_server_port(net.base.server));
    hulynet_client_destroy(client);
    CHECK_STATUS(hulynet_client_wait(client, 100), HULYNET_EINVAL);
    CHECK(hulynet_client_id(client) == NULL);
    CHECK_STATUS(hulynet_client_kinds(client, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_add_listener(client, ignore_event, NULL, &subscription), HULYNET_EINVAL);
    hulynet_client_destroy(client);

    agent = fx_agent(NULL, "gone", &kind);
    hulynet_agent_destroy(agent);
    CHECK(hulynet_agent_uuid(agent) == NULL);
    CHECK_STATUS(hulynet_agent_add_stateless(agent, "u", "gone", NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_serve_agent(net.base.user, agent, "127.0.0.1", 0, 1000), HULYNET_EINVAL);
    hulynet_agent_destroy(agent);

    CHECK_OK(hulynet_client_get(net.base.user, "echo", "{\"uuid\":\"c-destroyed-1\"}", 3000, &reference));
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    hulynet_connection_destroy(connection);
    CHECK_STATUS(hulynet_connection_request(connection, "echo", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_connection_set_event_handler(connection, ignore_event, NULL), HULYNET_EINVAL);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    CHECK(hulynet_reference_uuid(reference) == NULL);
    CHECK_STATUS(hulynet_reference_request(reference, "echo", NULL, 1000, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_connect(reference, 1000, &connection), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_release(reference, 1000), HULYNET_EINVAL);
    hulynet_reference_destroy(reference);

    /* A container's handle after terminate. */
    CHECK_EVENTUALLY(fx_int(&net.base.kind.lock, &net.base.kind.terminates) == 1, 3000);
    container = net.container;
    CHECK(container != NULL);
    hulynet_connection_destroy(net.connection);
    net.connection = NULL;
    hulynet_reference_destroy(net.reference);
    net.reference = NULL;
    CHECK_EVENTUALLY(fx_int(&net.base.kind.lock, &net.base.kind.terminates) == 2, 3000);
    CHECK(hulynet_container_uuid(container) == NULL);
    CHECK_STATUS(hulynet_container_emit(container, NULL, "1", NULL), HULYNET_EINVAL);

    /* Everything else still works. */
    CHECK_OK(hulynet_client_kinds(net.base.user, 2000, &out));
    CHECK_STR_EQ(out, "[\"echo\"]");
done:
    hulynet_free(out);
    network_down(&net);
    echo_kind_destroy(&kind);
}

static void test_wrong_types(void) {
    network net;
    char *out = NULL;
    int not_a_handle = 0;
    uint64_t subscription;
    if (!network_up(&net)) goto done;

    CHECK_STATUS(hulynet_client_wait((hulynet_client *)net.base.server, 100), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "type");
    CHECK(hulynet_client_id((hulynet_client *)net.base.server) == NULL);
    CHECK_STATUS(hulynet_client_kinds((hulynet_client *)net.base.agent, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_add_listener((hulynet_client *)net.reference, ignore_event, NULL, &subscription), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_port((hulynet_server *)net.base.user), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_reference_request((hulynet_reference *)net.connection, "echo", NULL, 100, &out), HULYNET_EINVAL);
    CHECK(hulynet_reference_uuid((hulynet_reference *)net.base.user) == NULL);
    CHECK_STATUS(hulynet_connection_request((hulynet_connection *)net.reference, "echo", NULL, 100, &out), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_add_stateless((hulynet_agent *)net.base.user, "u", "echo", NULL), HULYNET_EINVAL);
    CHECK(hulynet_agent_uuid((hulynet_agent *)net.base.server) == NULL);
    CHECK_STATUS(hulynet_client_serve_agent(net.base.user, (hulynet_agent *)net.base.host, "127.0.0.1", 0, 100), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_container_emit((hulynet_container *)net.base.agent, NULL, "1", NULL), HULYNET_EINVAL);
    CHECK(hulynet_container_uuid((hulynet_container *)net.reference) == NULL);
    CHECK_STATUS(hulynet_request_reply((hulynet_request *)net.base.user, "1"), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_request_fail((hulynet_request *)net.connection, "x"), HULYNET_EINVAL);
    /* Pointers that never were handles. */
    CHECK_STATUS(hulynet_client_wait((hulynet_client *)&not_a_handle, 100), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_port((hulynet_server *)&not_a_handle), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_request_reply((hulynet_request *)(void *)&out, "1"), HULYNET_EINVAL);

    /* Destroy functions given another type do nothing: every handle still works. */
    hulynet_server_destroy((hulynet_server *)net.base.user);
    hulynet_client_destroy((hulynet_client *)net.base.server);
    hulynet_agent_destroy((hulynet_agent *)net.base.host);
    hulynet_reference_destroy((hulynet_reference *)net.connection);
    hulynet_connection_destroy((hulynet_connection *)net.reference);
    hulynet_client_destroy((hulynet_client *)&not_a_handle);
    CHECK(hulynet_server_port(net.base.server) > 0);
    CHECK_OK(hulynet_client_kinds(net.base.user, 2000, &out));
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_reference_request(net.reference, "echo", "2", 2000, &out));
    hulynet_free(out);
    out = NULL;
    CHECK_OK(hulynet_connection_request(net.connection, "echo", "3", 2000, &out));
    CHECK_STR_EQ(out, "3");
    CHECK(hulynet_agent_uuid(net.base.agent) != NULL);
done:
    hulynet_free(out);
    network_down(&net);
}

/* The references and connections a client made, after it is destroyed. */
static void test_children_of_destroyed_client(void) {
    network net;
    hulynet_client *doomed = NULL;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL, *another = NULL;
    char *out = NULL;
    int terminates;
    if (!network_up(&net)) goto done;
    doomed = fx_client(hulynet_server_port(net.base.server));
    if (doomed == NULL) goto done;
    CHECK_OK(hulynet_client_get(doomed, "echo", "{\"uuid\":\"c-doomed-1\"}", 3000, &reference));
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    if (reference == NULL || connection == NULL) goto done;
    terminates = fx_int(&net.base.kind.lock, &net.base.kind.terminates);
    hulynet_client_destroy(doomed);

    /* The header: destroying a client closes its references and connections: calls on them
     * return HULYNET_ECLOSED; they are still destroyed as usual. */
    CHECK_STATUS(hulynet_reference_request(reference, "echo", "1", 1000, &out), HULYNET_ECLOSED);
    CHECK_STATUS(hulynet_reference_connect(reference, 1000, &another), HULYNET_ECLOSED);
    CHECK(another == NULL);
    CHECK_STATUS(hulynet_reference_release(reference, 1000), HULYNET_ECLOSED);
    CHECK_STATUS(hulynet_connection_request(connection, "echo", "1", 1000, &out), HULYNET_ECLOSED);
    CHECK_STATUS(hulynet_connection_set_event_handler(connection, ignore_event, NULL), HULYNET_ECLOSED);
    /* Destroying them afterwards is harmless. */
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    hulynet_reference_destroy(reference);
    /* The destroyed client released its reference: the container stops after the unused timeout. */
    CHECK_EVENTUALLY(fx_int(&net.base.kind.lock, &net.base.kind.terminates) == terminates + 1, 3000);
    CHECK_EVENTUALLY(fx_int(&net.base.kind.lock, &net.base.kind.disconnects) >= 1, 3000);
done:
    hulynet_free(out);
    network_down(&net);
}

/* ---- inside callbacks ------------------------------------------------------------------------------- */

typedef struct callback_probe {
    pthread_mutex_t lock;
    hulynet_client *client;
    hulynet_reference *reference;
    hulynet_connection *connection;
    int calls;
    int status_kinds, status_wait, status_request, status_release, status_async, status_connect;
    int destroy_client; /* destroy `client` from inside the callback */
    fx_async nested;
} callback_probe;

static void probe_init(callback_probe *probe) {
    memset(probe, 0, sizeof *probe);
    pthread_mutex_init(&probe->lock, NULL);
    fx_async_init(&probe->nested);
    probe->status_kinds = probe->status_wait = probe->status_request = probe->status_release = 1;
    probe->status_async = probe->status_connect = 1;
}

/* True for the probe's first callback only, unless it is told to destroy its client, which
 * this first call then does. */
static int probe_first_call(callback_probe *probe) {
    int first;
    pthread_mutex_lock(&probe->lock);
    first = probe->calls++ == 0;
    pthread_mutex_unlock(&probe->lock);
    if (first && probe->destroy_client) {
        hulynet_client_destroy(probe->client);
        return 0;
    }
    return first;
}

static void probe_listener(void *user, const char *json) {
    callback_probe *probe = user;
    char *out = NULL;
    (void)json;
    if (!probe_first_call(probe)) return;
    probe->status_kinds = hulynet_client_kinds(probe->client, 500, &out);
    hulynet_free(out);
    probe->status_wait = hulynet_client_wait(probe->client, 500);
    probe->status_async = hulynet_client_request_async(probe->client, "c-nobody", "echo", NULL, 1000, fx_result_fn, &probe->nested);
}

static void probe_event_handler(void *user, const char *json) {
    callback_probe *probe = user;
    char *out = NULL;
    hulynet_connection *connection = NULL;
    (void)json;
    if (!probe_first_call(probe)) return;
    probe->status_request = hulynet_connection_request(probe->connection, "echo", "1", 500, &out);
    hulynet_free(out);
    out = NULL;
    probe->status_release = hulynet_reference_release(probe->reference, 500);
    probe->status_connect = hulynet_reference_connect(probe->reference, 500, &connection);
    hulynet_connection_destroy(connection);
    probe->status_async = hulynet_connection_request_async(probe->connection, "echo", "\"nested\"", 1000, fx_result_fn, &probe->nested);
}

static void test_blocking_inside_callbacks(void) {
    network net;
    callback_probe listener, handler;
    hulynet_reference *trigger = NULL;
    uint64_t subscription = 0;
    probe_init(&listener);
    probe_init(&handler);
    if (!network_up(&net)) goto done;

    /* In a network listener. */
    listener.client = net.base.user;
    CHECK_OK(hulynet_client_add_listener(net.base.user, probe_listener, &listener, &subscription));
    CHECK_OK(hulynet_client_get(net.base.host, "echo", "{\"uuid\":\"c-trigger\"}", 3000, &trigger)); /* an added event */
    CHECK_EVENTUALLY(fx_int(&listener.lock, &listener.calls) >= 1 && fx_async_calls(&listener.nested) == 1, 3000);
    CHECK_INT_EQ(listener.status_kinds, HULYNET_EINVAL);
    CHECK_INT_EQ(listener.status_wait, HULYNET_EINVAL);
    CHECK_INT_EQ(listener.status_async, HULYNET_OK);
    CHECK_INT_EQ(listener.nested.status, HULYNET_ENOTFOUND);
    CHECK_OK(hulynet_client_remove_listener(net.base.user, subscription));

    /* In a connection's event handler. */
    handler.client = net.base.user;
    handler.reference = net.reference;
    handler.connection = net.connection;
    CHECK_OK(hulynet_connection_set_event_handler(net.connection, probe_event_handler, &handler));
    CHECK_OK(hulynet_container_emit(net.container, NULL, "\"go\"", NULL));
    CHECK_EVENTUALLY(fx_int(&handler.lock, &handler.calls) >= 1 && fx_async_calls(&handler.nested) == 1, 3000);
    CHECK_INT_EQ(handler.status_request, HULYNET_EINVAL);
    CHECK_INT_EQ(handler.status_release, HULYNET_EINVAL);
    CHECK_INT_EQ(handler.status_connect, HULYNET_EINVAL);
    CHECK_INT_EQ(handler.status_async, HULYNET_OK);
    CHECK_INT_EQ(handler.nested.status, HULYNET_OK);
    CHECK_STR_EQ(handler.nested.text, "\"nested\"");
    CHECK_OK(hulynet_connection_set_event_handler(net.connection, NULL, NULL));
done:
    hulynet_reference_destroy(trigger);
    network_down(&net);
}

static void test_destroy_client_inside_callbacks(void) {
    network net;
    static callback_probe handler, listener; /* static: callbacks may outlive this function */
    hulynet_client *doomed = NULL, *doomed2 = NULL;
    hulynet_reference *reference = NULL, *trigger = NULL;
    hulynet_connection *connection = NULL;
    uint64_t subscription;
    probe_init(&handler);
    probe_init(&listener);
    if (!network_up(&net)) goto done;

    /* From a connection's event handler. */
    doomed = fx_client(hulynet_server_port(net.base.server));
    if (doomed == NULL) goto done;
    CHECK_OK(hulynet_client_get(doomed, "echo", "{\"uuid\":\"c-doomed-2\"}", 3000, &reference));
    CHECK_OK(hulynet_reference_connect(reference, 3000, &connection));
    handler.client = doomed;
    handler.destroy_client = 1;
    CHECK_OK(hulynet_connection_set_event_handler(connection, probe_event_handler, &handler));
    CHECK_OK(hulynet_container_emit(fx_last_container(&net.base.kind), hulynet_client_id(doomed), "\"die\"", NULL));
    CHECK_EVENTUALLY(fx_int(&handler.lock, &handler.calls) >= 1, 3000);
    CHECK_EVENTUALLY(hulynet_client_wait(doomed, 10) == HULYNET_EINVAL, 2000);
    hulynet_client_destroy(doomed); /* again: harmless */
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);

    /* From a network listener. */
    doomed2 = fx_client(hulynet_server_port(net.base.server));
    if (doomed2 == NULL) goto done;
    listener.client = doomed2;
    listener.destroy_client = 1;
    CHECK_OK(hulynet_client_add_listener(doomed2, probe_listener, &listener, &subscription));
    CHECK_OK(hulynet_client_get(net.base.host, "echo", "{\"uuid\":\"c-trigger-2\"}", 3000, &trigger));
    CHECK_EVENTUALLY(fx_int(&listener.lock, &listener.calls) >= 1, 3000);
    CHECK_EVENTUALLY(hulynet_client_wait(doomed2, 10) == HULYNET_EINVAL, 2000);
    hulynet_client_destroy(doomed2);

    /* The coordinator saw both go; the rest of the network works. */
    {
        hulynet_server_stats stats;
        int ok;
        WAIT_UNTIL(ok, hulynet_server_stats_get(net.base.server, &stats) == HULYNET_OK && stats.clients == 2, 3000);
        CHECK_MSG(ok, "the server counts 2 clients once the 2 destroyed from callbacks are gone");
    }
    CHECK(fx_has_kind(net.base.user, "echo"));
done:
    hulynet_reference_destroy(trigger);
    network_down(&net);
}

/* A client destroyed while another thread uses it: calls fail cleanly, nothing crashes. */
typedef struct hammer {
    hulynet_client *client;
    const char *uuid;
    int stop;
    int calls, failures, other;
    pthread_mutex_t lock;
} hammer;

static void *hammer_thread(void *argument) {
    hammer *h = argument;
    for (;;) {
        char *out = NULL;
        int status;
        pthread_mutex_lock(&h->lock);
        if (h->stop) {
            pthread_mutex_unlock(&h->lock);
            break;
        }
        pthread_mutex_unlock(&h->lock);
        status = hulynet_client_request(h->client, h->uuid, "echo", "1", 1000, &out);
        hulynet_free(out);
        pthread_mutex_lock(&h->lock);
        h->calls++;
        if (status == HULYNET_EINVAL) h->stop = 1; /* the handle is gone */
        else if (status != HULYNET_OK && status != HULYNET_ECLOSED) h->other++;
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

static void test_destroy_while_in_use(void) {
    network net;
    hammer h;
    pthread_t threads[2];
    int i, stopped;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.lock, NULL);
    if (!network_up(&net)) goto done;
    h.client = fx_client(hulynet_server_port(net.base.server));
    h.uuid = hulynet_reference_uuid(net.reference);
    if (h.client == NULL) goto done;
    for (i = 0; i < 2; i++) CHECK(pthread_create(&threads[i], NULL, hammer_thread, &h) == 0);
    CHECK_EVENTUALLY(fx_int(&h.lock, &h.calls) >= 20, 3000);
    hulynet_client_destroy(h.client);
    WAIT_UNTIL(stopped, fx_int(&h.lock, &h.stop) == 1, 3000);
    CHECK_MSG(stopped, "calls on a destroyed client return HULYNET_EINVAL");
    pthread_mutex_lock(&h.lock);
    h.stop = 1;
    pthread_mutex_unlock(&h.lock);
    for (i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    CHECK_INT_EQ(h.other, 0);
done:
    network_down(&net);
    pthread_mutex_destroy(&h.lock);
}

/* ---- out of range --------------------------------------------------------------------------------- */

static void test_out_of_range(void) {
    network net;
    hulynet_server *server = NULL;
    hulynet_client *client = NULL;
    hulynet_agent *agent = NULL;
    hulynet_timeouts timeouts;
    echo_kind kind;
    hulynet_container_kind tables[2];
    echo_kind_init(&kind, "range");

    CHECK_STATUS(hulynet_server_start("127.0.0.1", -1, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_start("127.0.0.1", 65536, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_start("127.0.0.1", INT_MAX, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_start("127.0.0.1", INT_MIN, NULL, &server), HULYNET_EINVAL);
    CHECK(server == NULL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 0, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", -80, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 65536, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("", 1234, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("no such/host", 1234, NULL, &client), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "not a host name or address");
    CHECK(client == NULL);
    /* Empty or malformed hosts: refused before anything is bound, with a message that says why. */
    CHECK_STATUS(hulynet_server_start("", 0, NULL, &server), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "host is empty");
    CHECK_STATUS(hulynet_server_start("127.0.0.1 ", 0, NULL, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_start("tcp://127.0.0.1", 0, NULL, &server), HULYNET_EINVAL);
    CHECK(server == NULL);

    memset(&timeouts, 0, sizeof timeouts);
    timeouts.size = HULYNET_STRUCT_SIZE(hulynet_timeouts);
    timeouts.alive_ms = -1;
    CHECK_STATUS(hulynet_server_start("127.0.0.1", 0, &timeouts, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &timeouts, &client), HULYNET_EINVAL);
    timeouts.alive_ms = 0;
    timeouts.request_ms = INT64_MAX;
    CHECK_STATUS(hulynet_server_start("127.0.0.1", 0, &timeouts, &server), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &timeouts, &client), HULYNET_EINVAL);
    timeouts.request_ms = 0;
    timeouts.ping_interval_ms = INT64_MIN;
    CHECK_STATUS(hulynet_client_connect("127.0.0.1", 1234, &timeouts, &client), HULYNET_EINVAL);
    CHECK(server == NULL && client == NULL);

    /* agent_create: NULL callbacks, duplicate or missing kinds, absurd counts. */
    tables[0] = echo_table("a", &kind);
    tables[1] = echo_table("a", &kind);
    CHECK_STATUS(hulynet_agent_create(NULL, tables, 2, &agent), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "twice");
    tables[1].kind = "b";
    tables[1].start = NULL;
    CHECK_STATUS(hulynet_agent_create(NULL, tables, 2, &agent), HULYNET_EINVAL);
    tables[1].start = tables[0].start;
    tables[1].request = NULL;
    CHECK_STATUS(hulynet_agent_create(NULL, tables, 2, &agent), HULYNET_EINVAL);
    tables[1].request = tables[0].request;
    tables[1].kind = NULL;
    CHECK_STATUS(hulynet_agent_create(NULL, tables, 2, &agent), HULYNET_EINVAL);
    tables[1].kind = "";
    CHECK_STATUS(hulynet_agent_create(NULL, tables, 2, &agent), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_create("", tables, 1, &agent), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_agent_create(NULL, tables, (size_t)-1, &agent), HULYNET_EINVAL);
    CHECK(agent == NULL);
    /* Optional callbacks may be NULL. */
    tables[1].kind = "b";
    tables[1].connect = NULL;
    tables[1].disconnect = NULL;
    tables[1].terminate = NULL;
    CHECK_OK(hulynet_agent_create(NULL, tables, 2, &agent));

    if (network_up(&net)) {
        CHECK_STATUS(hulynet_client_serve_agent(net.base.user, agent, "127.0.0.1", -1, 1000), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_client_serve_agent(net.base.user, agent, "127.0.0.1", 70000, 1000), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_client_serve_agent(net.base.user, agent, "", 0, 1000), HULYNET_EINVAL);
        /* Timeouts: 0 is the default; negative or longer than a day is refused, not taken as the default. */
        CHECK_STATUS(hulynet_client_serve_agent(net.base.user, agent, "127.0.0.1", 0, -1), HULYNET_EINVAL);
        CHECK_CONTAINS(hulynet_last_error(), "timeout_ms -1 is out of range");
        CHECK_STATUS(hulynet_client_wait(net.base.user, -5), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_client_wait(net.base.user, INT64_MIN), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_client_wait(net.base.user, 86400001), HULYNET_EINVAL);
        CHECK_STATUS(hulynet_client_wait(net.base.user, INT64_MAX), HULYNET_EINVAL);
        CHECK_OK(hulynet_client_wait(net.base.user, 0));
        /* Not claimed by the refusals. */
        CHECK_OK(hulynet_client_serve_agent(net.base.user, agent, "127.0.0.1", 0, 3000));
        CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_CRITICAL)); /* the bind failure below logs */
        {
            hulynet_agent *other = fx_agent(NULL, "c", &kind);
            /* A port in use: the server's. */
            CHECK_STATUS(hulynet_client_serve_agent(net.base.host, other, "127.0.0.1", hulynet_server_port(net.base.server), 2000),
                         HULYNET_EBIND);
            /* A serve that failed leaves the agent free to be served again. */
            CHECK_OK(hulynet_client_serve_agent(net.base.host, other, "127.0.0.1", 0, 3000));
            hulynet_agent_destroy(other);
        }
        CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_WARNING));
        /* Removing a subscription that never was. */
        CHECK_STATUS(hulynet_client_remove_listener(net.base.user, 0), HULYNET_ENOTFOUND);
        CHECK_STATUS(hulynet_client_remove_listener(net.base.user, UINT64_MAX), HULYNET_ENOTFOUND);
    }
    hulynet_agent_destroy(agent);
    network_down(&net);
    echo_kind_destroy(&kind);
}

int main(void) {
    check_init("test_c_misuse", 55);
    RUN_TEST(test_null_without_network);
    RUN_TEST(test_null_with_network);
    RUN_TEST(test_invalid_json);
    RUN_TEST(test_invalid_utf8);
    RUN_TEST(test_destroyed_handles);
    RUN_TEST(test_wrong_types);
    RUN_TEST(test_children_of_destroyed_client);
    RUN_TEST(test_blocking_inside_callbacks);
    RUN_TEST(test_destroy_client_inside_callbacks);
    RUN_TEST(test_destroy_while_in_use);
    RUN_TEST(test_out_of_range);
    return check_summary();
}
