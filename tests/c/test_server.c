/* The network server (coordinator): start, port, stats, destroy, bind errors, restart. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

static void test_start_port_destroy(void) {
    hulynet_server *server = NULL, *any = NULL, *star = NULL;
    hulynet_timeouts timeouts = fx_timeouts();
    int port;
    CHECK_OK(hulynet_server_start("127.0.0.1", 0, &timeouts, &server));
    port = hulynet_server_port(server);
    CHECK(port > 0 && port < 65536);
    CHECK_INT_EQ(hulynet_server_port(server), port); /* stable */
    /* NULL timeouts mean the defaults; "*" and "0.0.0.0" mean every address. */
    CHECK_OK(hulynet_server_start("0.0.0.0", 0, NULL, &any));
    CHECK(hulynet_server_port(any) > 0 && hulynet_server_port(any) != port);
    CHECK_OK(hulynet_server_start("*", 0, NULL, &star));
    CHECK(hulynet_server_port(star) > 0);
    hulynet_server_destroy(star);
    hulynet_server_destroy(any);
    hulynet_server_destroy(server);
}

static void test_bind_errors(void) {
    hulynet_server *first = NULL, *second = NULL;
    int port;
    CHECK_OK(hulynet_server_start("127.0.0.1", 0, NULL, &first));
    port = hulynet_server_port(first);
    second = (hulynet_server *)&port; /* must be reset to NULL */
    CHECK_STATUS(hulynet_server_start("127.0.0.1", port, NULL, &second), HULYNET_EBIND);
    CHECK(second == NULL);
    CHECK(hulynet_last_error()[0] != '\0');
    /* Every address includes 127.0.0.1, which is taken. */
    CHECK_STATUS(hulynet_server_start("0.0.0.0", port, NULL, &second), HULYNET_EBIND);
    CHECK(second == NULL);
    /* An address that is not this machine's, and text that is not an address. */
    CHECK_STATUS(hulynet_server_start("192.0.2.1", 0, NULL, &second), HULYNET_EBIND);
    CHECK(second == NULL);
    CHECK_STATUS(hulynet_server_start("not an address", 0, NULL, &second), HULYNET_EINVAL);
    CHECK(second == NULL);
    hulynet_server_destroy(first);

    /* Once destroyed, the port is free again at once. */
    CHECK_OK(hulynet_server_start("127.0.0.1", port, NULL, &second));
    CHECK_INT_EQ(hulynet_server_port(second), port);
    hulynet_server_destroy(second);
}

static int64_t stat_of(hulynet_server *server, int which) {
    hulynet_server_stats stats;
    memset(&stats, 0, sizeof stats);
    if (hulynet_server_stats_get(server, &stats) != HULYNET_OK) return -1;
    switch (which) {
    case 0: return stats.clients;
    case 1: return stats.agents;
    case 2: return stats.containers;
    case 3: return stats.requests;
    default: return stats.malformed;
    }
}

static void test_stats(void) {
    hulynet_server *server = fx_server();
    hulynet_server_stats stats;
    hulynet_client *one = NULL, *two = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    echo_kind kind;
    int64_t requests_before;
    char *out = NULL;
    if (server == NULL) return;
    echo_kind_init(&kind, "stats");

    memset(&stats, 0xff, sizeof stats);
    CHECK_OK(hulynet_server_stats_get(server, &stats));
    CHECK_INT_EQ(stats.clients, 0);
    CHECK_INT_EQ(stats.agents, 0);
    CHECK_INT_EQ(stats.containers, 0);
    CHECK_INT_EQ(stats.requests, 0);
    CHECK_INT_EQ(stats.malformed, 0);

    one = fx_client(hulynet_server_port(server));
    two = fx_client(hulynet_server_port(server));
    if (one == NULL || two == NULL) goto done;
    CHECK_EVENTUALLY(stat_of(server, 0) == 2, 2000);

    agent = fx_agent(NULL, "echo", &kind);
    CHECK_OK(hulynet_client_serve_agent(one, agent, "127.0.0.1", 0, 3000));
    CHECK_EVENTUALLY(stat_of(server, 1) == 1, 2000);
    CHECK_INT_EQ(stat_of(server, 2), 0);

    requests_before = stat_of(server, 3);
    CHECK_OK(hulynet_client_get(two, "echo", NULL, 3000, &reference));
    CHECK_EVENTUALLY(stat_of(server, 2) == 1, 2000);
    CHECK_OK(hulynet_client_request(two, hulynet_reference_uuid(reference), "echo", "1", 2000, &out));
    hulynet_free(out);
    CHECK(stat_of(server, 3) >= requests_before + 2);
    CHECK_INT_EQ(stat_of(server, 4), 0);

    /* Released: the container stops after the unused timeout (300 ms). */
    CHECK_OK(hulynet_reference_release(reference, 2000));
    CHECK_EVENTUALLY(stat_of(server, 2) == 0, 3000);
    CHECK_EVENTUALLY(fx_int(&kind.lock, &kind.terminates) == 1, 2000);

    /* A destroyed client is forgotten at once (it says close), and so are its agents. */
    hulynet_client_destroy(two);
    two = NULL;
    CHECK_EVENTUALLY(stat_of(server, 0) == 1, 2000);
    hulynet_client_destroy(one);
    one = NULL;
    CHECK_EVENTUALLY(stat_of(server, 0) == 0 && stat_of(server, 1) == 0, 2000);

done:
    hulynet_reference_destroy(reference);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(two);
    hulynet_client_destroy(one);
    hulynet_server_destroy(server);
    echo_kind_destroy(&kind);
}

/* A client whose coordinator is replaced by a new one on the same port registers its agents again. */
static void test_restart(void) {
    hulynet_server *server = fx_server();
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_client *client = NULL;
    hulynet_agent *agent = NULL;
    echo_kind kind;
    char *out = NULL;
    int port;
    if (server == NULL) return;
    echo_kind_init(&kind, "restart");
    port = hulynet_server_port(server);
    client = fx_client(port);
    agent = fx_agent(NULL, "restartable", &kind);
    if (client == NULL || agent == NULL) goto done;
    CHECK_OK(hulynet_client_serve_agent(client, agent, "127.0.0.1", 0, 3000));
    CHECK(fx_has_kind(client, "restartable"));

    hulynet_server_destroy(server);
    server = NULL;
    /* With the coordinator gone, a request waits for its answer only as long as allowed. */
    CHECK_STATUS(hulynet_client_request(client, "nobody", "echo", NULL, 300, &out), HULYNET_ETIMEOUT);
    CHECK(out == NULL);

    CHECK_OK(hulynet_server_start("127.0.0.1", port, &timeouts, &server));
    CHECK_EVENTUALLY(stat_of(server, 1) == 1, 5000);
    CHECK(fx_has_kind(client, "restartable"));

done:
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(client);
    hulynet_server_destroy(server);
    echo_kind_destroy(&kind);
}

/* Whether the server's health JSON contains `needle`. */
static int health_has(hulynet_server *server, const char *needle) {
    char *health = NULL;
    int found;
    if (hulynet_server_health(server, &health) != HULYNET_OK) return 0;
    found = strstr(health, needle) != NULL;
    hulynet_free(health);
    return found;
}

/* Several coordinators elected through etcd: the arguments, a standby with etcd out of reach
 * (binds nothing, says why), and a client given a list that follows the one serving. The
 * elections themselves run against a real etcd in the Swift tests and sample-server-elected. */
static void test_elected_and_network_list(void) {
    hulynet_server *server = NULL, *elected = NULL;
    hulynet_client *client = NULL;
    hulynet_election_options options;
    hulynet_security bad_security;
    char *health = NULL;
    char etcd[64], network[128];
    int port, dead = fx_free_port(), etcd_port = fx_free_port(), elected_port = fx_free_port();

    /* A coordinator on its own always leads. */
    CHECK_OK(hulynet_server_start("127.0.0.1", 0, NULL, &server));
    port = hulynet_server_port(server);
    CHECK_INT_EQ(hulynet_server_role(server), HULYNET_ROLE_LEADER);
    CHECK_OK(hulynet_server_health(server, &health));
    CHECK_CONTAINS(health, "\"serving\"");
    hulynet_free(health);
    health = NULL;

    /* A list whose first address serves nothing: the client moves on to the one that serves. */
    snprintf(network, sizeof network, "127.0.0.1:%d,127.0.0.1:%d", dead, port);
    CHECK_OK(hulynet_client_connect_with(network, NULL, NULL, &client));
    CHECK_OK(hulynet_client_wait(client, 10000));
    hulynet_client_destroy(client);
    client = (hulynet_client *)&port;
    CHECK_STATUS(hulynet_client_connect_with("127.0.0.1:1,127.0.0.1:1", NULL, NULL, &client), HULYNET_EINVAL);
    CHECK(client == NULL);
    CHECK_CONTAINS(hulynet_last_error(), "twice");
    CHECK_STATUS(hulynet_client_connect_with("127.0.0.1:0", NULL, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect_with("", NULL, NULL, &client), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_client_connect_with(NULL, NULL, NULL, &client), HULYNET_EINVAL);

    /* Arguments of an elected coordinator (and a secured one without its key). */
    memset(&bad_security, 0, sizeof bad_security);
    bad_security.size = sizeof bad_security;
    snprintf(etcd, sizeof etcd, "http://127.0.0.1:%d", etcd_port);
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.etcd = etcd;
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", 0, NULL, NULL, &bad_security, &elected), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "secret_key");
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", 0, NULL, &options, NULL, &elected), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "port 0");
    options.size = 3;
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", elected_port, NULL, &options, NULL, &elected), HULYNET_EINVAL);
    options.size = sizeof options;
    options.lease_ttl_ms = 1500;
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", elected_port, NULL, &options, NULL, &elected), HULYNET_EINVAL);
    options.lease_ttl_ms = 0;
    options.etcd = "https://127.0.0.1:2379";
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", elected_port, NULL, &options, NULL, &elected), HULYNET_EINVAL);
    options.etcd = NULL;
    CHECK_STATUS(hulynet_server_start_with("127.0.0.1", elected_port, NULL, &options, NULL, &elected), HULYNET_EINVAL);
    CHECK(elected == NULL);

    /* etcd out of reach: it stands by, binds nothing and says why. */
    options.etcd = etcd;
    CHECK_OK(hulynet_server_start_with("127.0.0.1", elected_port, NULL, &options, NULL, &elected));
    CHECK_INT_EQ(hulynet_server_port(elected), elected_port);
    CHECK_INT_EQ(hulynet_server_role(elected), HULYNET_ROLE_STANDBY);
    CHECK_EVENTUALLY(health_has(elected, "etcd_error"), 5000);
    CHECK(health_has(elected, "\"standby\""));
    {
        /* It binds nothing: the port is free for another. */
        hulynet_server *other = NULL;
        CHECK_OK(hulynet_server_start("127.0.0.1", elected_port, NULL, &other));
        hulynet_server_destroy(other);
    }
    hulynet_server_destroy(elected);
    CHECK_INT_EQ(hulynet_server_role(elected), HULYNET_EINVAL);
    hulynet_server_destroy(server);
}

/* CURVE: a key pair, a secured coordinator with an allow list, an admitted client and refused ones. */
static void test_security(void) {
    char server_public[41], server_secret[41], alice_public[41], alice_secret[41], mallory_public[41], mallory_secret[41];
    char path[] = "/tmp/hulynet-allow-XXXXXX", network[64];
    hulynet_server *server = NULL;
    hulynet_client *alice = NULL, *mallory = NULL, *plain = NULL;
    hulynet_security security;
    FILE *file;
    int fd;

    CHECK_OK(hulynet_curve_keypair(server_public, server_secret));
    CHECK_INT_EQ(strlen(server_public), 40);
    CHECK_OK(hulynet_curve_keypair(alice_public, alice_secret));
    CHECK_OK(hulynet_curve_keypair(mallory_public, mallory_secret));
    CHECK(strcmp(alice_public, mallory_public) != 0);
    CHECK_STATUS(hulynet_curve_keypair(NULL, alice_secret), HULYNET_EINVAL);

    fd = mkstemp(path);
    CHECK(fd >= 0);
    file = fdopen(fd, "w");
    fprintf(file, "# test\n%s alice\n", alice_public);
    fclose(file);

    memset(&security, 0, sizeof security);
    security.size = sizeof security;
    security.secret_key = server_secret;
    security.allow_list_path = path;
    CHECK_OK(hulynet_server_start_with("127.0.0.1", 0, NULL, NULL, &security, &server));
    snprintf(network, sizeof network, "127.0.0.1:%d", hulynet_server_port(server));

    memset(&security, 0, sizeof security);
    security.size = sizeof security;
    security.server_key = server_public;
    security.secret_key = alice_secret;
    CHECK_OK(hulynet_client_connect_with(network, NULL, &security, &alice));
    CHECK_OK(hulynet_client_wait(alice, 5000));

    security.secret_key = mallory_secret;
    CHECK_OK(hulynet_client_connect_with(network, NULL, &security, &mallory));
    CHECK_STATUS(hulynet_client_wait(mallory, 1000), HULYNET_ETIMEOUT);
    CHECK_CONTAINS(hulynet_last_error(), "refused");
    CHECK_OK(hulynet_client_connect_with(network, NULL, NULL, &plain));
    CHECK_STATUS(hulynet_client_wait(plain, 1000), HULYNET_ETIMEOUT);

    /* Bad keys are refused at the call. */
    security.secret_key = "not a key";
    CHECK_STATUS(hulynet_client_connect_with(network, NULL, &security, &plain), HULYNET_EINVAL);
    security.secret_key = NULL;
    security.server_key = NULL;
    CHECK_STATUS(hulynet_client_connect_with(network, NULL, &security, &plain), HULYNET_EINVAL);
    CHECK_CONTAINS(hulynet_last_error(), "server_key");
    CHECK(plain == NULL);

    hulynet_client_destroy(plain);
    hulynet_client_destroy(mallory);
    hulynet_client_destroy(alice);
    hulynet_server_destroy(server);
    unlink(path);
}

int main(void) {
    check_init("test_c_server", 50);
    RUN_TEST(test_start_port_destroy);
    RUN_TEST(test_bind_errors);
    RUN_TEST(test_stats);
    RUN_TEST(test_restart);
    RUN_TEST(test_elected_and_network_list);
    RUN_TEST(test_security);
    return check_summary();
}
