/* Metrics and health: hulynet_server_metrics after a known workload, and the HTTP endpoint of
 * hulynet_server_serve_metrics answered over a plain socket. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

/* One HTTP exchange with 127.0.0.1:port; the whole answer (up to size - 1 bytes) in `out`. */
static int http_exchange(int port, const char *request, char *out, size_t size) {
    struct sockaddr_in address;
    size_t used = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        send(fd, request, strlen(request), 0) != (ssize_t)strlen(request)) {
        close(fd);
        return -1;
    }
    for (;;) {
        struct pollfd pfd;
        ssize_t count;
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 3000) <= 0) break; /* bounded: 3 s of silence ends it */
        count = recv(fd, out + used, size - 1 - used, 0);
        if (count <= 0) break;
        used += (size_t)count;
        if (used == size - 1) break;
    }
    out[used] = '\0';
    close(fd);
    return (int)used;
}

static void test_metrics_text_after_a_workload(void) {
    hulynet_server *server = fx_server();
    hulynet_client *owner = NULL, *client = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    echo_kind kind;
    char *text = NULL, *out = NULL;
    int i;
    if (server == NULL) return;
    echo_kind_init(&kind, "metrics");
    owner = fx_client(hulynet_server_port(server));
    client = fx_client(hulynet_server_port(server));
    agent = fx_agent(NULL, "echo", &kind);
    if (owner == NULL || client == NULL || agent == NULL) goto done;
    CHECK_OK(hulynet_client_serve_agent(owner, agent, "127.0.0.1", 0, 3000));

    /* One get-or-start, five requests through the coordinator, one for a container that is not there. */
    CHECK_OK(hulynet_client_get(client, "echo", NULL, 3000, &reference));
    if (reference == NULL) goto done;
    for (i = 0; i < 5; i++) {
        CHECK_OK(hulynet_client_request(client, hulynet_reference_uuid(reference), "echo", "1", 2000, &out));
        hulynet_free(out);
        out = NULL;
    }
    CHECK_STATUS(hulynet_client_request(client, "nobody", "echo", "1", 2000, &out), HULYNET_ENOTFOUND);

    CHECK_OK(hulynet_server_metrics(server, &text));
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "hulynet_requests_total{method=\"cs\"} 6\n") != NULL);
        CHECK(strstr(text, "hulynet_request_errors_total{method=\"cs\"} 1\n") != NULL);
        CHECK(strstr(text, "hulynet_request_duration_seconds_count{method=\"cs\"} 6\n") != NULL);
        CHECK(strstr(text, "hulynet_get_or_start_total{outcome=\"to_agent\"} 1\n") != NULL);
        CHECK(strstr(text, "hulynet_containers{kind=\"echo\"} 1.0\n") != NULL);
        CHECK(strstr(text, "# TYPE hulynet_request_duration_seconds histogram\n") != NULL);
    }
    hulynet_free(text);
    text = NULL;

    /* Misuse is refused, never a crash. */
    CHECK_STATUS(hulynet_server_metrics(NULL, &text), HULYNET_EINVAL);
    CHECK(text == NULL);
    CHECK_STATUS(hulynet_server_metrics(server, NULL), HULYNET_EINVAL);

done:
    hulynet_reference_destroy(reference);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(client);
    hulynet_client_destroy(owner);
    hulynet_server_destroy(server);
    echo_kind_destroy(&kind);
}

static void test_http_endpoint(void) {
    hulynet_server *server = fx_server();
    static char answer[65536];
    int port = 0, again = -1;
    if (server == NULL) return;
    CHECK_OK(hulynet_server_serve_metrics(server, NULL, 0, &port));
    CHECK(port > 0 && port < 65536);
    /* One endpoint per server. */
    CHECK_STATUS(hulynet_server_serve_metrics(server, "127.0.0.1", 0, &again), HULYNET_EINVAL);
    CHECK_INT_EQ(again, -1);
    CHECK_STATUS(hulynet_server_serve_metrics(NULL, NULL, 0, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_serve_metrics(server, "not an address", 0, NULL), HULYNET_EINVAL);
    CHECK_STATUS(hulynet_server_serve_metrics(server, NULL, 70000, NULL), HULYNET_EINVAL);

    CHECK(http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", answer, sizeof answer) > 0);
    CHECK(strncmp(answer, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(answer, "Content-Type: text/plain; version=0.0.4") != NULL);
    CHECK(strstr(answer, "hulynet_clients 0.0\n") != NULL);

    CHECK(http_exchange(port, "GET /health HTTP/1.1\r\n\r\n", answer, sizeof answer) > 0);
    CHECK(strncmp(answer, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(answer, "\"status\":\"serving\"") != NULL);

    CHECK(http_exchange(port, "DELETE /health HTTP/1.1\r\n\r\n", answer, sizeof answer) > 0);
    CHECK(strncmp(answer, "HTTP/1.1 405 ", 13) == 0);
    CHECK(http_exchange(port, "GET /nothing HTTP/1.1\r\n\r\n", answer, sizeof answer) > 0);
    CHECK(strncmp(answer, "HTTP/1.1 404 ", 13) == 0);

    hulynet_server_destroy(server);
    /* Destroyed, the server closed its metrics port too. */
    CHECK(http_exchange(port, "GET /health HTTP/1.1\r\n\r\n", answer, sizeof answer) <= 0);
}

int main(void) {
    check_init("test_c_metrics", 30);
    RUN_TEST(test_metrics_text_after_a_workload);
    RUN_TEST(test_http_endpoint);
    return check_summary();
}
