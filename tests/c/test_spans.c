/* Spans handed to the host (hulynet_set_span_handler): a coordinator and an agent in this
 * process, a get and requests through the coordinator, and the spans that come out: the agent's
 * are children of the coordinator's across the wire (traceparent), on callback threads, one call
 * at a time; a blocked handler costs dropped spans, counted exactly, never the network's answers. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fixture.h"

#define MAX_SPANS 64

typedef struct span_copy {
    char name[64];
    char trace_id[40];
    char span_id[20];
    char parent_span_id[20];
    int parent_is_remote;
    int kind;
    int status;
    char status_message[128];
    int64_t start_ns, end_ns;
    char container[128]; /* the hulynet.container attribute, if any */
    char operation[64];  /* hulynet.operation */
    char error_code[64]; /* hulynet.error.code */
    int attribute_count;
    int attributes_sorted;
    int size_ok;
} span_copy;

typedef struct collector {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int calls;
    int off_pool;     /* calls elsewhere than on a callback thread */
    int in_progress;  /* calls running now */
    int overlapping;  /* calls that began while another ran */
    int destroyed;
    int gate_closed;  /* 1: the handler waits until it opens */
    span_copy spans[MAX_SPANS];
} collector;

static void collector_init(collector *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
}

static void collector_destroy(collector *c) {
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
}

static const char *string_attribute(const hulynet_span *span, const char *key) {
    size_t i;
    for (i = 0; i < span->attribute_count; i++) {
        if (strcmp(span->attributes[i].key, key) == 0 && span->attributes[i].type == HULYNET_SPAN_ATTR_STRING)
            return span->attributes[i].string_value;
    }
    return "";
}

static void span_fn(void *user, const hulynet_span *span) {
    collector *c = user;
    size_t i;
    int on_pool = fx_on_callback_thread();
    pthread_mutex_lock(&c->lock);
    if (c->in_progress > 0) c->overlapping++;
    c->in_progress++;
    if (!on_pool) c->off_pool++;
    while (c->gate_closed) pthread_cond_wait(&c->changed, &c->lock);
    if (c->calls < MAX_SPANS) {
        span_copy *copy = &c->spans[c->calls];
        fx_copy_text(copy->name, sizeof copy->name, span->name);
        fx_copy_text(copy->trace_id, sizeof copy->trace_id, span->trace_id);
        fx_copy_text(copy->span_id, sizeof copy->span_id, span->span_id);
        fx_copy_text(copy->parent_span_id, sizeof copy->parent_span_id, span->parent_span_id);
        copy->parent_is_remote = span->parent_is_remote;
        copy->kind = span->kind;
        copy->status = span->status;
        fx_copy_text(copy->status_message, sizeof copy->status_message, span->status_message);
        copy->start_ns = span->start_ns;
        copy->end_ns = span->end_ns;
        fx_copy_text(copy->container, sizeof copy->container, string_attribute(span, "hulynet.container"));
        fx_copy_text(copy->operation, sizeof copy->operation, string_attribute(span, "hulynet.operation"));
        fx_copy_text(copy->error_code, sizeof copy->error_code, string_attribute(span, "hulynet.error.code"));
        copy->attribute_count = (int)span->attribute_count;
        copy->attributes_sorted = 1;
        for (i = 1; i < span->attribute_count; i++) {
            if (strcmp(span->attributes[i - 1].key, span->attributes[i].key) >= 0) copy->attributes_sorted = 0;
        }
        copy->size_ok = HULYNET_SPAN_HAS(span, attribute_count) &&
                        (span->size & UINT64_C(0xFFFF000000000000)) == HULYNET_SIZE_TAG;
    }
    c->calls++;
    c->in_progress--;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void destroy_fn(void *user) {
    collector *c = user;
    pthread_mutex_lock(&c->lock);
    c->destroyed++;
    pthread_mutex_unlock(&c->lock);
}

/* Log lines that warn of objects made before the first span handler (logs run where logged). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int early_warnings = 0;

static void log_fn(void *user, int level, const char *message) {
    (void)user;
    pthread_mutex_lock(&log_lock);
    if (level == HULYNET_LOG_WARNING && strstr(message, "made before the first span handler") != NULL) early_warnings++;
    pthread_mutex_unlock(&log_lock);
}

static int calls(collector *c) { return fx_int(&c->lock, &c->calls); }

/* How many spans named `name` were collected. */
static int count_named(collector *c, const char *name) {
    int i, n = 0, total;
    pthread_mutex_lock(&c->lock);
    total = c->calls < MAX_SPANS ? c->calls : MAX_SPANS;
    for (i = 0; i < total; i++) n += strcmp(c->spans[i].name, name) == 0;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* The first span named `name` whose parent is `parent_id` (NULL: any), or NULL. */
static const span_copy *find_span(collector *c, const char *name, const char *parent_id, int status) {
    int i, total = calls(c) < MAX_SPANS ? calls(c) : MAX_SPANS;
    for (i = 0; i < total; i++) {
        const span_copy *s = &c->spans[i];
        if (strcmp(s->name, name) == 0 && (parent_id == NULL || strcmp(s->parent_span_id, parent_id) == 0) &&
            (status < 0 || s->status == status))
            return s;
    }
    return NULL;
}

static int is_lower_hex(const char *text, size_t length) {
    size_t i;
    int nonzero = 0;
    if (strlen(text) != length) return 0;
    for (i = 0; i < length; i++) {
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'))) return 0;
        nonzero |= text[i] != '0';
    }
    return nonzero;
}

static int64_t wall_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void test_coordinator_and_agent_spans_are_linked(void) {
    collector c;
    fx_network net;
    hulynet_reference *reference = NULL;
    char *out = NULL;
    const span_copy *get, *start, *request, *run, *failed, *failed_run;
    int64_t before = wall_ns(), after;
    int count;
    hulynet_server *early = fx_server();
    collector_init(&c);
    /* A server made before the first handler never traces: the log says so, once. */
    CHECK_OK(hulynet_set_log_handler(log_fn, NULL, HULYNET_LOG_WARNING));
    /* Before the network is made: each server and client reads the tracer once, when made. */
    CHECK_OK(hulynet_set_span_handler(span_fn, &c, destroy_fn));
    CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_WARNING));
    CHECK_INT_EQ(fx_int(&log_lock, &early_warnings), 1);
    hulynet_server_destroy(early);
    if (!fx_network_up(&net, "spans", "echo", 0)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"traced-1\"}", 3000, &reference));
    CHECK_ANSWER(hulynet_client_request(net.user, "traced-1", "echo", "\"hi\"", 3000, &out), out, "\"hi\"");
    CHECK_STATUS(hulynet_client_request(net.user, "traced-1", "fail", NULL, 3000, &out), HULYNET_EREMOTE);
    CHECK_EVENTUALLY(count_named(&c, "hulynet.coordinator.request") == 2 && count_named(&c, "hulynet.agent.request") == 2 &&
                         count_named(&c, "hulynet.coordinator.get") == 1 && count_named(&c, "hulynet.agent.start") == 1,
                     3000);
    after = wall_ns();

    get = find_span(&c, "hulynet.coordinator.get", NULL, -1);
    start = get ? find_span(&c, "hulynet.agent.start", get->span_id, -1) : NULL;
    CHECK_MSG(get != NULL && start != NULL, "the agent's start span is the child of the coordinator's get span");
    if (get && start) {
        CHECK_STR_EQ(start->trace_id, get->trace_id);
        CHECK_STR_EQ(get->container, "traced-1");
    }
    request = find_span(&c, "hulynet.coordinator.request", NULL, HULYNET_SPAN_STATUS_UNSET);
    run = request ? find_span(&c, "hulynet.agent.request", request->span_id, -1) : NULL;
    CHECK_MSG(request != NULL && run != NULL, "the agent's request span is the child of the coordinator's request span");
    if (request && run) {
        CHECK_STR_EQ(run->trace_id, request->trace_id);
        CHECK(is_lower_hex(request->trace_id, 32));
        CHECK(is_lower_hex(request->span_id, 16));
        CHECK(is_lower_hex(run->span_id, 16));
        CHECK(strcmp(run->span_id, request->span_id) != 0);
        CHECK_STR_EQ(request->parent_span_id, ""); /* the root of its trace */
        CHECK_INT_EQ(request->parent_is_remote, 0);
        CHECK_INT_EQ(run->parent_is_remote, 1);    /* its parent came through the wire */
        CHECK_INT_EQ(request->kind, HULYNET_SPAN_KIND_SERVER);
        CHECK_INT_EQ(run->kind, HULYNET_SPAN_KIND_SERVER);
        CHECK_STR_EQ(request->container, "traced-1");
        CHECK_STR_EQ(run->container, "traced-1");
        CHECK_STR_EQ(run->operation, "echo");
        CHECK_STR_EQ(request->status_message, "");
        CHECK(request->start_ns >= before && request->start_ns <= request->end_ns && request->end_ns <= after);
        /* The agent's work lies within the coordinator's span (one clock: one process). */
        CHECK(run->start_ns >= request->start_ns && run->end_ns <= request->end_ns);
        CHECK(request->attributes_sorted && request->attribute_count >= 2);
        CHECK(request->size_ok);
        if (get) CHECK(strcmp(request->trace_id, get->trace_id) != 0); /* each request is a trace of its own */
    }
    failed = find_span(&c, "hulynet.coordinator.request", NULL, HULYNET_SPAN_STATUS_ERROR);
    failed_run = failed ? find_span(&c, "hulynet.agent.request", failed->span_id, HULYNET_SPAN_STATUS_ERROR) : NULL;
    CHECK_MSG(failed != NULL && failed_run != NULL, "the failed request's spans end with an error status");
    if (failed && failed_run) {
        CHECK_CONTAINS(failed->status_message, "deliberate failure");
        CHECK_CONTAINS(failed_run->status_message, "deliberate failure");
        CHECK_STR_EQ(failed_run->error_code, "app");
        CHECK_STR_EQ(failed_run->operation, "fail");
    }
    pthread_mutex_lock(&c.lock);
    CHECK_INT_EQ(c.off_pool, 0);    /* on callback threads only */
    CHECK_INT_EQ(c.overlapping, 0); /* one call at a time */
    pthread_mutex_unlock(&c.lock);
    CHECK_INT_EQ(hulynet_spans_dropped(), 0);

    /* Removed: its destroy notification once, and no call after. */
    CHECK_OK(hulynet_set_span_handler(NULL, NULL, NULL));
    CHECK_INT_EQ(fx_int(&c.lock, &c.destroyed), 1);
    count = calls(&c);
    CHECK_ANSWER(hulynet_client_request(net.user, "traced-1", "echo", "2", 3000, &out), out, "2");
    CHECK_ANSWER(hulynet_client_request(net.user, "traced-1", "echo", "3", 3000, &out), out, "3");
    CHECK_INT_EQ(calls(&c), count);
    CHECK_OK(hulynet_set_span_handler(NULL, NULL, NULL)); /* none to remove: fine */
    CHECK_INT_EQ(fx_int(&c.lock, &c.destroyed), 1);
done:
    hulynet_reference_destroy(reference);
    fx_network_down(&net);
    collector_destroy(&c);
}

static void test_a_replaced_handler_is_told_and_the_new_one_gets_the_spans(void) {
    collector a, b;
    fx_network net;
    char *out = NULL;
    hulynet_reference *reference = NULL;
    hulynet_server *early = fx_server();
    collector_init(&a);
    collector_init(&b);
    CHECK_OK(hulynet_set_log_handler(log_fn, NULL, HULYNET_LOG_WARNING));
    CHECK_OK(hulynet_set_span_handler(span_fn, &a, destroy_fn));
    CHECK_OK(hulynet_set_span_handler(span_fn, &b, destroy_fn));
    CHECK_OK(hulynet_set_log_handler(NULL, NULL, HULYNET_LOG_WARNING));
    CHECK_INT_EQ(fx_int(&log_lock, &early_warnings), 1); /* said once, at the first handler only */
    hulynet_server_destroy(early);
    CHECK_INT_EQ(fx_int(&a.lock, &a.destroyed), 1);
    if (!fx_network_up(&net, "spans2", "echo", 0)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"traced-2\"}", 3000, &reference));
    CHECK_ANSWER(hulynet_client_request(net.user, "traced-2", "echo", "1", 3000, &out), out, "1");
    CHECK_EVENTUALLY(count_named(&b, "hulynet.agent.request") == 1 && count_named(&b, "hulynet.coordinator.request") == 1, 3000);
    CHECK_INT_EQ(calls(&a), 0);
done:
    CHECK_OK(hulynet_set_span_handler(NULL, NULL, NULL));
    CHECK_INT_EQ(fx_int(&b.lock, &b.destroyed), 1);
    hulynet_reference_destroy(reference);
    fx_network_down(&net);
    collector_destroy(&a);
    collector_destroy(&b);
}

/* Removing the handler delivers what is queued first: with the handler held in its first call
 * and 101 spans waiting behind it, opening the gate and removing the handler at once still gets
 * every span to it before the removal returns. */
static void test_removing_the_handler_delivers_the_queued_spans(void) {
    collector c;
    fx_network net;
    hulynet_reference *reference = NULL;
    char *out = NULL;
    int i;
    collector_init(&c);
    c.gate_closed = 1;
    CHECK_OK(hulynet_set_span_handler(span_fn, &c, destroy_fn));
    if (!fx_network_up(&net, "flush", "echo", 0)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"traced-4\"}", 3000, &reference));
    for (i = 0; i < 50; i++) CHECK_ANSWER(hulynet_client_request(net.user, "traced-4", "echo", "1", 3000, &out), out, "1");
    CHECK_EVENTUALLY(fx_int(&c.lock, &c.in_progress) == 1, 3000); /* the first span is in the handler */
    /* The last coordinator span ends as its answer goes: it may still be on its way to the queue. */
done:
    pthread_mutex_lock(&c.lock);
    c.gate_closed = 0;
    pthread_cond_broadcast(&c.changed);
    pthread_mutex_unlock(&c.lock);
    CHECK_OK(hulynet_set_span_handler(NULL, NULL, NULL));
    CHECK(calls(&c) >= 101 && calls(&c) <= 102); /* all but possibly that last one, before the removal returned */
    CHECK_INT_EQ(fx_int(&c.lock, &c.destroyed), 1);
    hulynet_reference_destroy(reference);
    fx_network_down(&net);
    collector_destroy(&c);
}

/* The queue holds 4096 spans: with the handler blocked in its first call, 2200 requests (4400
 * spans and the get's 2) all get their answers, 4096 spans wait, the rest are dropped and
 * counted; once the handler goes on, every span is either delivered or counted as dropped. */
#define FLOOD_REQUESTS 2200

static void test_a_blocked_handler_drops_spans_and_the_network_goes_on(void) {
    collector c;
    fx_network net;
    hulynet_reference *reference = NULL;
    char *out = NULL;
    uint64_t dropped_before = hulynet_spans_dropped();
    int i, answered = 0, ok;
    int64_t spent;
    long long expected = 2 + 2LL * FLOOD_REQUESTS;
    collector_init(&c);
    c.gate_closed = 1;
    CHECK_OK(hulynet_set_span_handler(span_fn, &c, destroy_fn));
    if (!fx_network_up(&net, "flood", "echo", 0)) goto done;
    CHECK_OK(hulynet_client_get(net.user, "echo", "{\"uuid\":\"traced-3\"}", 3000, &reference));
    spent = check_now_ms();
    for (i = 0; i < FLOOD_REQUESTS; i++) {
        if (hulynet_client_request(net.user, "traced-3", "echo", "1", 3000, &out) == HULYNET_OK) answered++;
        hulynet_free(out);
        out = NULL;
    }
    spent = check_now_ms() - spent;
    check_note("%d requests with the span handler blocked: %lld ms", FLOOD_REQUESTS, (long long)spent);
    CHECK_INT_EQ(answered, FLOOD_REQUESTS);
    /* The coordinator's span of the last request ends as it answers: wait for the count. */
    WAIT_UNTIL(ok, hulynet_spans_dropped() - dropped_before >= (uint64_t)(expected - 4097), 3000);
    (void)ok; /* the exact count is checked next */
    CHECK_INT_EQ(hulynet_spans_dropped() - dropped_before, expected - 4097); /* one in the handler, 4096 queued */
    pthread_mutex_lock(&c.lock);
    c.gate_closed = 0;
    pthread_cond_broadcast(&c.changed);
    pthread_mutex_unlock(&c.lock);
    CHECK_EVENTUALLY(calls(&c) == 4097, 5000);
    CHECK_INT_EQ((long long)(hulynet_spans_dropped() - dropped_before) + calls(&c), expected);
done:
    pthread_mutex_lock(&c.lock);
    c.gate_closed = 0; /* never leave a callback thread waiting */
    pthread_cond_broadcast(&c.changed);
    pthread_mutex_unlock(&c.lock);
    CHECK_OK(hulynet_set_span_handler(NULL, NULL, NULL));
    hulynet_reference_destroy(reference);
    fx_network_down(&net);
    collector_destroy(&c);
}

int main(void) {
    check_init("test_c_spans", 60);
    RUN_TEST(test_coordinator_and_agent_spans_are_linked);
    RUN_TEST(test_a_replaced_handler_is_told_and_the_new_one_gets_the_spans);
    RUN_TEST(test_removing_the_handler_delivers_the_queued_spans);
    RUN_TEST(test_a_blocked_handler_drops_spans_and_the_network_goes_on);
    return check_summary();
}
