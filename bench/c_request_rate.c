/*
 * Requests per second through the coordinator (`cs`) from C, the same topology as
 * `hulynet bench`: a server, an agent serving an echo kind written in C, and a client, in one
 * process on 127.0.0.1. Each figure comes with its ratio to a raw ZeroMQ relay measured first in
 * the same run (the same relay as `hulynet bench`'s, RawBaseline.relay in Sources/hulynet).
 * Prints one line per case: "<case>\t<requests/s>[\t<ratio to its baseline>]". Each `cs` shape
 * runs with the kind's callbacks on a thread of their own (the default) and again inline on the
 * agent's I/O thread (", inline kind"; hulynet_agent_set_request_mode).
 *
 *   c_request_rate [seconds-per-case] [bytes] [depth]
 *   c_request_rate --broker [port]
 *
 * With --broker it is only the raw relay's broker, in a process of its own, until SIGTERM or
 * SIGINT: the plain-libzmq baseline of scripts/profile-coordinator.sh. Its first line is
 * "raw broker listening on tcp://127.0.0.1:PORT".
 *
 * HULYNET_BENCH_NO_BASELINE=1 skips the raw relay (and the ratios).
 */
#define _POSIX_C_SOURCE 200809L
#include "hulynet.h"

#include <signal.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

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

/* ---- The raw ZeroMQ baseline ----------------------------------------------------------------
 * client DEALER -> broker ROUTER -> worker DEALER and back: the hops of a request through the
 * coordinator without any protocol logic. The broker passes the client's [op, id, json] to the
 * worker with the client's identity in front; the worker echoes the frames. Each role has its own
 * thread, as in the Swift bench. */

enum { RELAY_MAX_PARTS = 8, RELAY_HWM = 100000, RELAY_POLL_MS = 100, RELAY_LOST_MS = 1000 };

/* One whole message; a message of more than RELAY_MAX_PARTS parts is dropped. */
typedef struct {
    zmq_msg_t part[RELAY_MAX_PARTS + 1];   /* the last one receives the parts dropped */
    int count;
} multipart;

static void multipart_close(multipart *m) {
    for (int i = 0; i < m->count; i++) zmq_msg_close(&m->part[i]);
    m->count = 0;
}

/* The number of parts; 0 on a receive timeout or a dropped message; -1 on an error (errno). */
static int multipart_recv(void *socket, multipart *m) {
    int more, too_many = 0;
    m->count = 0;
    do {
        zmq_msg_t *part = &m->part[m->count < RELAY_MAX_PARTS ? m->count : RELAY_MAX_PARTS];
        zmq_msg_init(part);
        if (zmq_msg_recv(part, socket, 0) < 0) {
            int error = errno;
            zmq_msg_close(part);
            multipart_close(m);
            errno = error;
            return error == EAGAIN ? 0 : -1;
        }
        more = zmq_msg_more(part);
        if (m->count < RELAY_MAX_PARTS) m->count++;
        else { zmq_msg_close(part); too_many = 1; }
    } while (more);
    if (too_many) multipart_close(m);
    return m->count;
}

/* Sends [prefix (if any), parts first...]; 0, or -1 (errno). */
static int multipart_send(void *socket, const void *prefix, size_t prefix_size, multipart *m, int first) {
    if (prefix && zmq_send(socket, prefix, prefix_size, first < m->count ? ZMQ_SNDMORE : 0) < 0) return -1;
    for (int i = first; i < m->count; i++) {
        zmq_msg_t *part = &m->part[i];
        if (zmq_send(socket, zmq_msg_data(part), zmq_msg_size(part), i + 1 < m->count ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    }
    return 0;
}

static int part_equals(multipart *m, int index, const void *bytes, size_t size) {
    return zmq_msg_size(&m->part[index]) == size && memcmp(zmq_msg_data(&m->part[index]), bytes, size) == 0;
}

/* Bounded everything, so that no call can block for good and closing never waits. */
static int tune_socket(void *socket, int receive_timeout_ms) {
    const int linger = 0, hwm = RELAY_HWM, send_timeout_ms = RELAY_LOST_MS;
    return zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) == 0
        && zmq_setsockopt(socket, ZMQ_SNDHWM, &hwm, sizeof hwm) == 0
        && zmq_setsockopt(socket, ZMQ_RCVHWM, &hwm, sizeof hwm) == 0
        && zmq_setsockopt(socket, ZMQ_SNDTIMEO, &send_timeout_ms, sizeof send_timeout_ms) == 0
        && zmq_setsockopt(socket, ZMQ_RCVTIMEO, &receive_timeout_ms, sizeof receive_timeout_ms) == 0 ? 0 : -1;
}

typedef struct {
    void *context;
    void *broker;            /* bound by main, then used and closed by the broker thread only */
    char endpoint[256];      /* where the broker listens */
    pthread_mutex_t lock;
    int stop;
    char error[256];         /* the first error of a relay thread, "" if none */
} raw_relay;

static int relay_stopping(raw_relay *r) {
    pthread_mutex_lock(&r->lock);
    int stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

static void relay_stop(raw_relay *r) {
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_mutex_unlock(&r->lock);
}

/* Records "<what>: <errno's message>" if it is the first error (read by main after the join). */
static void relay_thread_failed(raw_relay *r, const char *what) {
    const char *reason = zmq_strerror(errno);
    pthread_mutex_lock(&r->lock);
    if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s: %s", what, reason);
    pthread_mutex_unlock(&r->lock);
}

/* Says hello so that the broker learns its identity, then echoes what it gets. */
static void *relay_worker(void *arg) {
    raw_relay *r = arg;
    multipart m;
    void *worker = zmq_socket(r->context, ZMQ_DEALER);
    if (!worker) { relay_thread_failed(r, "worker socket"); return NULL; }
    if (tune_socket(worker, RELAY_POLL_MS) != 0) relay_thread_failed(r, "worker options");
    else if (zmq_connect(worker, r->endpoint) != 0) relay_thread_failed(r, "worker connect");
    else if (zmq_send(worker, "worker", 6, 0) < 0) relay_thread_failed(r, "worker hello");
    else {
        while (!relay_stopping(r)) {
            int parts = multipart_recv(worker, &m);
            if (parts < 0) { relay_thread_failed(r, "worker receive"); break; }
            if (parts == 0) continue;
            int sent = multipart_send(worker, NULL, 0, &m, 0);
            multipart_close(&m);
            if (sent != 0) { relay_thread_failed(r, "worker send"); break; }
        }
    }
    zmq_close(worker);
    return NULL;
}

/* From the client, [client, op, id, json] goes to the worker as [worker, client, op, id, json];
 * from the worker, back with the worker's identity removed. Requests before the hello are dropped. */
static void *relay_broker(void *arg) {
    raw_relay *r = arg;
    unsigned char worker_id[256];   /* ZeroMQ identities are at most 255 bytes */
    size_t worker_id_size = 0;
    multipart m;
    while (!relay_stopping(r)) {
        int parts = multipart_recv(r->broker, &m);
        if (parts < 0) { relay_thread_failed(r, "broker receive"); break; }
        int sent = 0;
        if (parts >= 2 && part_equals(&m, 1, "worker", 6)) {
            worker_id_size = zmq_msg_size(&m.part[0]);
            memcpy(worker_id, zmq_msg_data(&m.part[0]), worker_id_size);
        } else if (parts >= 2 && worker_id_size > 0) {
            sent = part_equals(&m, 0, worker_id, worker_id_size)
                ? multipart_send(r->broker, NULL, 0, &m, 1)
                : multipart_send(r->broker, worker_id, worker_id_size, &m, 0);
        }
        multipart_close(&m);
        if (sent != 0) { relay_thread_failed(r, "broker send"); break; }
    }
    zmq_close(r->broker);
    return NULL;
}

/* One request [op, id, json]; the op frame is RPCOp.request's: decimal text "1". 0, or -1 (errno). */
static int send_request(void *client, long *counter, const char *body, size_t body_size) {
    char id[32];
    int id_size = snprintf(id, sizeof id, "client-%ld", ++*counter);
    return zmq_send(client, "1", 1, ZMQ_SNDMORE) < 0 || zmq_send(client, id, (size_t)id_size, ZMQ_SNDMORE) < 0
        || zmq_send(client, body, body_size, 0) < 0 ? -1 : 0;
}

/* Keeps `depth` requests in flight for `seconds`; 0 and the rate, or -1 with the reason in `why`. */
static int relay_client(void *client, double seconds, const char *body, int depth, double *rate, char *why,
                        size_t why_size) {
    const size_t body_size = strlen(body);
    const int warmup_timeout_ms = 50, warmup_tries = 200, lost_ms = RELAY_LOST_MS;
    long counter = 0, completed = 0;
    multipart answer;
    int parts, in_flight;
    double begin, deadline;

    /* Until the worker has said hello the broker drops requests: wait for a first answer. */
    if (zmq_setsockopt(client, ZMQ_RCVTIMEO, &warmup_timeout_ms, sizeof warmup_timeout_ms) != 0) goto zmq_failed;
    parts = 0;
    for (int i = 0; i < warmup_tries && parts == 0; i++) {
        if (send_request(client, &counter, body, body_size) != 0 || (parts = multipart_recv(client, &answer)) < 0)
            goto zmq_failed;
    }
    if (parts == 0) {
        snprintf(why, why_size, "no answer through the relay within %d ms", warmup_tries * warmup_timeout_ms);
        return -1;
    }
    multipart_close(&answer);
    /* Drain the answers still coming for the warm-up, which would otherwise add to the depth. */
    while ((parts = multipart_recv(client, &answer)) > 0) multipart_close(&answer);
    if (parts < 0 || zmq_setsockopt(client, ZMQ_RCVTIMEO, &lost_ms, sizeof lost_ms) != 0) goto zmq_failed;

    begin = now_s();
    deadline = begin + seconds;
    for (in_flight = 0; in_flight < depth; in_flight++)
        if (send_request(client, &counter, body, body_size) != 0) goto zmq_failed;
    while (in_flight > 0) {
        if ((parts = multipart_recv(client, &answer)) < 0) goto zmq_failed;
        if (parts == 0) {
            snprintf(why, why_size, "an answer was lost (none for %d ms, %d in flight)", lost_ms, in_flight);
            return -1;
        }
        multipart_close(&answer);
        completed++;
        in_flight--;
        if (now_s() < deadline) {
            if (send_request(client, &counter, body, body_size) != 0) goto zmq_failed;
            in_flight++;
        }
    }
    *rate = (double)completed / (now_s() - begin);
    return 0;
zmq_failed:
    snprintf(why, why_size, "client: %s", zmq_strerror(errno));
    return -1;
}

/* The raw relay's requests/s with `depth` in flight; exits with a message on any failure. Every
 * thread has stopped and the context has terminated when it returns. */
static double raw_relay_rate(double seconds, const char *body, int depth) {
    raw_relay r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.lock, NULL);
    char why[512] = "";
    double rate = 0;
    int failed = 1, started = 0;
    pthread_t worker, broker;
    size_t endpoint_size = sizeof r.endpoint;

    /* The broker has a context (an I/O thread) of its own, as the coordinator has: in production
     * it is a process of its own. */
    r.context = zmq_ctx_new();
    void *broker_context = zmq_ctx_new();
    if (!r.context || !broker_context) { fprintf(stderr, "raw relay: zmq_ctx_new: %s\n", zmq_strerror(errno)); exit(1); }
    r.broker = zmq_socket(broker_context, ZMQ_ROUTER);
    if (!r.broker) snprintf(why, sizeof why, "broker socket: %s", zmq_strerror(errno));
    else if (tune_socket(r.broker, RELAY_POLL_MS) != 0 || zmq_bind(r.broker, "tcp://127.0.0.1:0") != 0
             || zmq_getsockopt(r.broker, ZMQ_LAST_ENDPOINT, r.endpoint, &endpoint_size) != 0)
        snprintf(why, sizeof why, "broker bind on tcp://127.0.0.1:0: %s", zmq_strerror(errno));
    else if ((errno = pthread_create(&broker, NULL, relay_broker, &r)) != 0)
        snprintf(why, sizeof why, "broker thread: %s", strerror(errno));
    else {
        started = 1;   /* the broker thread owns the broker socket from here on */
        if ((errno = pthread_create(&worker, NULL, relay_worker, &r)) != 0)
            snprintf(why, sizeof why, "worker thread: %s", strerror(errno));
        else {
            started = 2;
            void *client = zmq_socket(r.context, ZMQ_DEALER);
            if (!client) snprintf(why, sizeof why, "client socket: %s", zmq_strerror(errno));
            else if (tune_socket(client, RELAY_POLL_MS) != 0 || zmq_connect(client, r.endpoint) != 0)
                snprintf(why, sizeof why, "client connect to %s: %s", r.endpoint, zmq_strerror(errno));
            else failed = relay_client(client, seconds, body, depth, &rate, why, sizeof why) != 0;
            if (client) zmq_close(client);
        }
    }
    relay_stop(&r);
    if (started >= 2) pthread_join(worker, NULL);
    if (started >= 1) pthread_join(broker, NULL);
    else if (r.broker) zmq_close(r.broker);
    while (zmq_ctx_term(r.context) != 0 && errno == EINTR) {}
    while (zmq_ctx_term(broker_context) != 0 && errno == EINTR) {}
    pthread_mutex_destroy(&r.lock);
    if (failed || r.error[0]) {
        if (why[0]) fprintf(stderr, "raw relay, %d in flight: %s\n", depth, why);
        if (r.error[0]) fprintf(stderr, "raw relay, %d in flight: %s\n", depth, r.error);
        exit(1);
    }
    return rate;
}

/* The broker alone, in the foreground, until SIGTERM or SIGINT. */
static int run_broker(int port) {
    raw_relay r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.lock, NULL);
    size_t endpoint_size = sizeof r.endpoint;
    char address[64];
    snprintf(address, sizeof address, "tcp://127.0.0.1:%d", port);
    /* Blocked here, so that every thread inherits the mask and sigwait below receives them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    r.context = zmq_ctx_new();
    r.broker = r.context ? zmq_socket(r.context, ZMQ_ROUTER) : NULL;
    if (!r.broker || tune_socket(r.broker, RELAY_POLL_MS) != 0 || zmq_bind(r.broker, address) != 0
        || zmq_getsockopt(r.broker, ZMQ_LAST_ENDPOINT, r.endpoint, &endpoint_size) != 0) {
        fprintf(stderr, "raw broker on %s: %s\n", address, zmq_strerror(errno));
        return 1;
    }
    pthread_t broker;
    if ((errno = pthread_create(&broker, NULL, relay_broker, &r)) != 0) {
        fprintf(stderr, "broker thread: %s\n", strerror(errno));
        return 1;
    }
    printf("raw broker listening on %s\n", r.endpoint);
    fflush(stdout);
    int received;
    sigwait(&stop_signals, &received);
    relay_stop(&r);
    pthread_join(broker, NULL);
    while (zmq_ctx_term(r.context) != 0 && errno == EINTR) {}
    if (r.error[0]) { fprintf(stderr, "raw broker: %s\n", r.error); return 1; }
    return 0;
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
    if (argc > 1 && strcmp(argv[1], "--broker") == 0) return run_broker(argc > 2 ? atoi(argv[2]) : 0);
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    int bytes = argc > 2 ? atoi(argv[2]) : 100;
    int depth = argc > 3 ? atoi(argv[3]) : 25;
    if (seconds <= 0 || bytes < 2 || depth < 1) { fprintf(stderr, "usage: %s [seconds] [bytes] [depth]\n", argv[0]); return 2; }
    const char *no_baseline = getenv("HULYNET_BENCH_NO_BASELINE");
    const int baseline = !(no_baseline && *no_baseline && strcmp(no_baseline, "0") != 0);

    /* The baseline's body: a `cs` call's payload of the same size as `hulynet bench`'s. */
    double raw_sync = 0, raw_pipelined = 0;
    if (baseline) {
        static const char prefix[] = "[\"cs\",[\"uuid\",\"op\",\"", suffix[] = "\"]]";
        char *body = malloc(sizeof prefix - 1 + (size_t)bytes - 2 + sizeof suffix);
        if (!body) { fprintf(stderr, "out of memory\n"); return 1; }
        memcpy(body, prefix, sizeof prefix - 1);
        memset(body + sizeof prefix - 1, 'x', (size_t)bytes - 2);
        memcpy(body + sizeof prefix - 1 + (size_t)bytes - 2, suffix, sizeof suffix);
        raw_sync = raw_relay_rate(seconds, body, 1);
        printf("raw relay sync\t%.0f\n", raw_sync);
        raw_pipelined = raw_relay_rate(seconds, body, depth);
        printf("raw relay %d in flight\t%.0f\n", depth, raw_pipelined);
        fflush(stdout);
        free(body);
    }

    hulynet_timeouts timeouts = HULYNET_TIMEOUTS_INIT;
    hulynet_server *server;
    hulynet_client *agent_side, *client;
    hulynet_agent *agent;
    hulynet_reference *ref;
    hulynet_container_kind kind = HULYNET_CONTAINER_KIND_INIT;
    kind.kind = "echo";
    kind.start = start;
    kind.request = request;
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
    if (!data) { fprintf(stderr, "out of memory\n"); return 1; }
    data[0] = '"';
    memset(data + 1, 'x', (size_t)bytes - 2);
    data[bytes - 1] = '"';
    data[bytes] = 0;

    /* Each shape twice: the kind's callbacks on a thread of their own (the default), then inline
     * on the agent's I/O thread (hulynet_agent_set_request_mode). */
    for (int mode = 0; mode < 2; mode++) {
        const char *suffix = mode ? ", inline kind" : "";
        CHECK(hulynet_agent_set_request_mode(agent, "echo", mode ? HULYNET_REQUESTS_INLINE : HULYNET_REQUESTS_ON_CALLBACK_THREAD));

        /* Synchronous: one request at a time. */
        long count = 0;
        double begin = now_s(), end = begin + seconds;
        while (now_s() < end) {
            char *out;
            CHECK(hulynet_client_request(client, uuid, "echo", data, 0, &out));
            hulynet_free(out);
            count++;
        }
        double rate = (double)count / (now_s() - begin);
        if (baseline) printf("cs sync%s\t%.0f\t%.0f %% of raw relay sync\n", suffix, rate, 100 * rate / raw_sync);
        else printf("cs sync%s\t%.0f\n", suffix, rate);

        pipeline p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, client, uuid, data, 0, 0, depth, 0};
        begin = now_s();
        p.deadline = begin + seconds;
        for (int i = 0; i < depth; i++) issue(&p);
        pthread_mutex_lock(&p.lock);
        while (p.in_flight > 0) pthread_cond_wait(&p.done_cond, &p.lock);
        pthread_mutex_unlock(&p.lock);
        if (p.failed) { fprintf(stderr, "a pipelined request failed: %s\n", hulynet_last_error()); return 1; }
        rate = (double)p.completed / (now_s() - begin);
        if (baseline)
            printf("cs %d in flight%s\t%.0f\t%.0f %% of raw relay %d in flight\n", depth, suffix, rate,
                   100 * rate / raw_pipelined, depth);
        else printf("cs %d in flight%s\t%.0f\n", depth, suffix, rate);
        fflush(stdout);
    }

    free(data);
    hulynet_reference_destroy(ref);
    hulynet_client_destroy(client);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(agent_side);
    hulynet_server_destroy(server);
    return 0;
}
