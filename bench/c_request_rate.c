/*
 * Requests per second through the coordinator (`cs`) from C, the same topology as
 * `hulynet bench`: a server, an agent serving an echo kind written in C, and a client, in one
 * process on 127.0.0.1. Prints one line per case: "<case>\t<requests/s>".
 *
 *   c_request_rate [seconds-per-case] [bytes] [depth]
 */
#define _POSIX_C_SOURCE 200809L
#include "hulynet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                 void **container_user) {
    (void)kind_user; (void)container; (void)uuid; (void)options_json;
    *container_user = NULL;
    return HULYNET_OK;
}

static void request(void *container_user, hulynet_request *req, const char *operation, const char *data_json,
                    const char *client_id) {
    (void)container_user; (void)operation; (void)client_id;
    hulynet_request_reply(req, data_json);
}

#define CHECK(call) do { int rc_ = (call); if (rc_ != HULYNET_OK) { \
    fprintf(stderr, "%s: %s (%s)\n", #call, hulynet_strerror(rc_), hulynet_last_error()); exit(1); } } while (0)

/* The pipelined case: `depth` requests kept in flight with the async call. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    hulynet_client *client;
    const char *uuid;
    const char *data;
    double deadline;
    long completed;
    int in_flight;
    int failed;
} pipeline;

static void on_done(void *user, int status, const char *json);

static void issue(pipeline *p) {
    if (hulynet_client_request_async(p->client, p->uuid, "echo", p->data, 0, on_done, p) != HULYNET_OK) {
        pthread_mutex_lock(&p->lock);
        p->failed = 1;
        p->in_flight--;
        pthread_cond_signal(&p->done_cond);
        pthread_mutex_unlock(&p->lock);
    }
}

static void on_done(void *user, int status, const char *json) {
    pipeline *p = user;
    (void)json;
    int again;
    pthread_mutex_lock(&p->lock);
    if (status != HULYNET_OK) p->failed = 1;
    p->completed++;
    again = !p->failed && now_s() < p->deadline;
    if (!again) {
        p->in_flight--;
        pthread_cond_signal(&p->done_cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (again) issue(p);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    int bytes = argc > 2 ? atoi(argv[2]) : 100;
    int depth = argc > 3 ? atoi(argv[3]) : 25;
    if (seconds <= 0 || bytes < 2 || depth < 1) { fprintf(stderr, "usage: %s [seconds] [bytes] [depth]\n", argv[0]); return 2; }

    hulynet_timeouts timeouts = {0, 0, 0, 0};
    hulynet_server *server;
    hulynet_client *agent_side, *client;
    hulynet_agent *agent;
    hulynet_reference *ref;
    hulynet_container_kind kind = {"echo", NULL, start, request, NULL, NULL, NULL};
    CHECK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_ERROR));
    CHECK(hulynet_server_start("127.0.0.1", 0, &timeouts, &server));
    int port = hulynet_server_port(server);
    CHECK(hulynet_client_connect("127.0.0.1", port, &timeouts, &agent_side));
    CHECK(hulynet_agent_create(NULL, &kind, 1, &agent));
    CHECK(hulynet_client_serve_agent(agent_side, agent, "127.0.0.1", 0, 5000));
    CHECK(hulynet_client_connect("127.0.0.1", port, &timeouts, &client));
    CHECK(hulynet_client_wait(client, 5000));
    CHECK(hulynet_client_get(client, "echo", NULL, 5000, &ref));
    const char *uuid = hulynet_reference_uuid(ref);

    char *data = malloc((size_t)bytes + 1);
    data[0] = '"';
    memset(data + 1, 'x', (size_t)bytes - 2);
    data[bytes - 1] = '"';
    data[bytes] = 0;

    /* Synchronous: one request at a time. */
    long count = 0;
    double begin = now_s(), end = begin + seconds;
    while (now_s() < end) {
        char *out;
        CHECK(hulynet_client_request(client, uuid, "echo", data, 0, &out));
        hulynet_free(out);
        count++;
    }
    printf("cs sync\t%.0f\n", (double)count / (now_s() - begin));

    pipeline p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, client, uuid, data, 0, 0, depth, 0};
    begin = now_s();
    p.deadline = begin + seconds;
    for (int i = 0; i < depth; i++) issue(&p);
    pthread_mutex_lock(&p.lock);
    while (p.in_flight > 0) pthread_cond_wait(&p.done_cond, &p.lock);
    pthread_mutex_unlock(&p.lock);
    if (p.failed) { fprintf(stderr, "a pipelined request failed: %s\n", hulynet_last_error()); return 1; }
    printf("cs %d in flight\t%.0f\n", depth, (double)p.completed / (now_s() - begin));

    free(data);
    hulynet_reference_destroy(ref);
    hulynet_client_destroy(client);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(agent_side);
    hulynet_server_destroy(server);
    return 0;
}
