/*
 * Teardown orders: handles may be destroyed in any order. Each loop builds a network (server, a
 * client serving an agent, a client holding a container through a reference and a connection),
 * destroys it in one order, and checks that the next network still works: a new client gets its
 * hello within 3 s. A library that leaves libzmq's shared I/O thread blocked (seen: a monitored
 * DEALER whose peer goes while it is being closed) stalls every later socket of the process.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "check.h"
#include "fixture.h"

enum order {
    AGENT_FIRST,      /* agent, user client, host client, server */
    CONNECTION_FIRST, /* connection, reference, agent, user client, host client, server */
    SERVER_FIRST      /* server, agent, host client, user client */
};

static int build_and_destroy(enum order order, int iteration) {
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_server *server = NULL;
    hulynet_client *host = NULL, *user = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    echo_kind kind;
    char *out = NULL;
    int ok = 0;
    echo_kind_init(&kind, "teardown");
    if (hulynet_server_start("127.0.0.1", 0, &timeouts, &server) != HULYNET_OK) goto done;
    hulynet_client_connect("127.0.0.1", hulynet_server_port(server), &timeouts, &host);
    hulynet_client_connect("127.0.0.1", hulynet_server_port(server), &timeouts, &user);
    if (hulynet_client_wait(host, 3000) != HULYNET_OK || hulynet_client_wait(user, 3000) != HULYNET_OK) {
        check_note("order %d, iteration %d: no hello from a live server within 3 s (networking stalled)", (int)order, iteration);
        goto done;
    }
    agent = fx_agent(NULL, "echo", &kind);
    if (hulynet_client_serve_agent(host, agent, "127.0.0.1", 0, 3000) != HULYNET_OK ||
        hulynet_client_get(user, "echo", NULL, 3000, &reference) != HULYNET_OK ||
        hulynet_reference_connect(reference, 3000, &connection) != HULYNET_OK ||
        hulynet_connection_request(connection, "echo", "1", 3000, &out) != HULYNET_OK) {
        check_note("order %d, iteration %d: a call failed: %s", (int)order, iteration, hulynet_last_error());
        goto done;
    }
    ok = 1;
done:
    hulynet_free(out);
    switch (order) {
    case AGENT_FIRST:
        hulynet_agent_destroy(agent);
        hulynet_client_destroy(user);
        hulynet_client_destroy(host);
        hulynet_server_destroy(server);
        break;
    case CONNECTION_FIRST:
        hulynet_connection_destroy(connection);
        hulynet_reference_destroy(reference);
        hulynet_agent_destroy(agent);
        hulynet_client_destroy(user);
        hulynet_client_destroy(host);
        hulynet_server_destroy(server);
        break;
    case SERVER_FIRST:
        hulynet_server_destroy(server);
        hulynet_agent_destroy(agent);
        /* The header: destroying an agent stops its containers, calling terminate, whether or not
         * the coordinator is still there to unregister from. */
        if (ok && iteration == 0)
            CHECK_MSG(fx_int(&kind.lock, &kind.terminates) == 1,
                      "hulynet_agent_destroy with the coordinator gone has called terminate when it returns");
        hulynet_client_destroy(host);
        hulynet_client_destroy(user);
        break;
    }
    fx_wait_threads(&kind, 2000);
    echo_kind_destroy(&kind);
    return ok;
}

static void run_order(enum order order, int iterations) {
    int i;
    for (i = 0; i < iterations; i++) {
        if (!build_and_destroy(order, i)) break;
    }
    if (!CHECK_MSG(i == iterations, "every network built after an earlier one was torn down works")) return;
    /* And once more after the last teardown. */
    CHECK(build_and_destroy(order, iterations));
}

static void test_agent_first(void) { run_order(AGENT_FIRST, 25); }
static void test_connection_first(void) { run_order(CONNECTION_FIRST, 25); }
/* Fewer: with the coordinator gone, destroying the agent waits for its unregister to time out. */
static void test_server_first(void) { run_order(SERVER_FIRST, 4); }

int main(void) {
    check_init("test_c_teardown", 55);
    /* Once a teardown has stalled the process, every later test fails too: the order that
     * stalls it most reliably (today) runs last. */
    RUN_TEST(test_server_first);
    RUN_TEST(test_agent_first);
    RUN_TEST(test_connection_first);
    return check_summary();
}
