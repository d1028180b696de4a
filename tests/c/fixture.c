/* fixture.c: see fixture.h. */
/* pthread_getname_np: the callback threads are told by their name. */
#define _GNU_SOURCE

#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hulynet_timeouts fx_timeouts(void) {
    hulynet_timeouts timeouts;
    memset(&timeouts, 0, sizeof timeouts);
    timeouts.size = HULYNET_STRUCT_SIZE(hulynet_timeouts);
    timeouts.alive_ms = 1000;
    timeouts.unused_container_ms = 300;
    timeouts.ping_interval_ms = 200;
    timeouts.request_ms = 3000;
    return timeouts;
}

int fx_on_callback_thread(void) {
    char name[32] = "";
    if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return 0;
    return strcmp(name, "hulynet-cb") == 0;
}

static pthread_mutex_t off_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int off_pool;

void fx_note_thread(void) {
    if (fx_on_callback_thread()) return;
    pthread_mutex_lock(&off_pool_lock);
    off_pool++;
    pthread_mutex_unlock(&off_pool_lock);
}

int fx_off_pool_calls(void) { return fx_int(&off_pool_lock, &off_pool); }

hulynet_server *fx_server(void) {
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_server *server = NULL;
    if (!CHECK_OK(hulynet_server_start("127.0.0.1", 0, &timeouts, &server))) return NULL;
    CHECK(server != NULL);
    CHECK(hulynet_server_port(server) > 0);
    return server;
}

/* Set once a client got no hello from a live server within 5 s: the process's networking is
 * stalled (seen when libzmq's I/O thread blocks on a monitor socket), so later tests fail at once
 * instead of waiting 5 s per client. */
static int network_stalled = 0;

hulynet_client *fx_client(int port) {
    hulynet_timeouts timeouts = fx_timeouts();
    hulynet_client *client = NULL;
    if (!CHECK_MSG(!network_stalled, "networking works (an earlier client got no hello from a live server)")) return NULL;
    if (!CHECK_OK(hulynet_client_connect("127.0.0.1", port, &timeouts, &client))) return NULL;
    if (!CHECK_OK(hulynet_client_wait(client, 5000))) {
        check_note("a client got no hello within 5 s from the server on port %d, which is up: networking in this "
                   "process is stalled; the tests that follow fail at once",
                   port);
        network_stalled = 1;
        hulynet_client_destroy(client);
        return NULL;
    }
    return client;
}

int fx_free_port(void) {
    hulynet_server *server = NULL;
    int port = 0;
    if (hulynet_server_start("127.0.0.1", 0, NULL, &server) != HULYNET_OK) return 1;
    port = hulynet_server_port(server);
    hulynet_server_destroy(server);
    return port;
}

int fx_int(pthread_mutex_t *lock, const int *field) {
    int value;
    pthread_mutex_lock(lock);
    value = *field;
    pthread_mutex_unlock(lock);
    return value;
}

/* ---- echo kind ---------------------------------------------------------------------------------- */

/* (Not snprintf: GCC 12 with -fsanitize=address -O2 warns wrongly about it here: -Warray-bounds.) */
void fx_copy_text(char *out, size_t size, const char *text) {
    size_t length;
    if (size == 0) return;
    if (text == NULL) text = "(null)";
    length = strlen(text);
    if (length >= size) length = size - 1;
    memmove(out, text, length);
    out[length] = '\0';
}

void echo_kind_init(echo_kind *kind, const char *tag) {
    memset(kind, 0, sizeof *kind);
    pthread_mutex_init(&kind->lock, NULL);
    fx_copy_text(kind->tag, sizeof kind->tag, tag);
    kind->start_status = HULYNET_OK;
    kind->reply_badjson_status = 1;
    kind->blocking_status = 1;
}

void echo_kind_destroy(echo_kind *kind) { pthread_mutex_destroy(&kind->lock); }

static int echo_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                      void **container_user) {
    echo_kind *kind = kind_user;
    echo_container *state;
    const char *own_uuid = hulynet_container_uuid(container);
    fx_note_thread();
    pthread_mutex_lock(&kind->lock);
    if (own_uuid == NULL || uuid == NULL || strcmp(own_uuid, uuid) != 0) kind->container_uuid_mismatches++;
    fx_copy_text(kind->last_options, sizeof kind->last_options, options_json);
    if (kind->start_status != HULYNET_OK) {
        kind->start_failures++;
        pthread_mutex_unlock(&kind->lock);
        return kind->start_status;
    }
    kind->starts++;
    kind->last_container = container;
    fx_copy_text(kind->last_uuid, sizeof kind->last_uuid, uuid);
    pthread_mutex_unlock(&kind->lock);
    state = calloc(1, sizeof *state);
    if (state == NULL) return HULYNET_EINTERNAL;
    state->kind = kind;
    state->handle = container;
    state->owned = 1;
    fx_copy_text(state->uuid, sizeof state->uuid, uuid);
    *container_user = state;
    return HULYNET_OK;
}

typedef struct later_answer {
    echo_kind *kind;
    hulynet_request *request;
    char *data;
    int fail;
} later_answer;

static void *later_thread(void *argument) {
    later_answer *later = argument;
    echo_kind *kind = later->kind;
    check_sleep_ms(20);
    if (later->fail) hulynet_request_fail(later->request, "late failure");
    else hulynet_request_reply(later->request, later->data);
    free(later->data);
    free(later);
    pthread_mutex_lock(&kind->lock);
    kind->threads_running--;
    pthread_mutex_unlock(&kind->lock);
    return NULL;
}

static void answer_later(echo_kind *kind, hulynet_request *request, const char *data, int fail) {
    pthread_t thread;
    later_answer *later = calloc(1, sizeof *later);
    size_t length = strlen(data);
    later->kind = kind;
    later->request = request;
    later->fail = fail;
    later->data = malloc(length + 1);
    memcpy(later->data, data, length + 1);
    pthread_mutex_lock(&kind->lock);
    kind->threads_running++;
    pthread_mutex_unlock(&kind->lock);
    if (pthread_create(&thread, NULL, later_thread, later) == 0) {
        pthread_detach(thread);
    } else {
        hulynet_request_fail(request, "cannot start a thread");
        free(later->data);
        free(later);
        pthread_mutex_lock(&kind->lock);
        kind->threads_running--;
        pthread_mutex_unlock(&kind->lock);
    }
}

static void echo_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                         const char *client_id) {
    echo_container *state = container_user;
    echo_kind *kind = state->kind;
    char answer[FX_TEXT + 256];
    pthread_mutex_lock(&kind->lock);
    kind->requests++;
    fx_copy_text(kind->last_client, sizeof kind->last_client, client_id);
    pthread_mutex_unlock(&kind->lock);

    if (strcmp(operation, "echo") == 0) {
        hulynet_request_reply(request, data_json);
    } else if (strcmp(operation, "whoami") == 0) {
        if (client_id != NULL)
            snprintf(answer, sizeof answer, "{\"tag\":\"%s\",\"uuid\":\"%s\",\"client\":\"%s\"}", kind->tag, state->uuid, client_id);
        else
            snprintf(answer, sizeof answer, "{\"tag\":\"%s\",\"uuid\":\"%s\",\"client\":null}", kind->tag, state->uuid);
        hulynet_request_reply(request, answer);
    } else if (strcmp(operation, "fail") == 0) {
        hulynet_request_fail(request, "deliberate failure");
    } else if (strcmp(operation, "busy") == 0) {
        hulynet_request_fail_status(request, HULYNET_EAGAIN, "busy, retry later");
    } else if (strcmp(operation, "too_big") == 0) {
        hulynet_request_fail_status(request, HULYNET_ELIMIT, "over the container's limit");
    } else if (strcmp(operation, "bad_status") == 0) {
        int status = hulynet_request_fail_status(request, HULYNET_ETIMEOUT, "not a status a container gives");
        pthread_mutex_lock(&kind->lock);
        kind->reply_badjson_status = status;
        pthread_mutex_unlock(&kind->lock);
    } else if (strcmp(operation, "says_not_found") == 0) {
        /* The reference's text for the network's own failure, from a container: still its own error. */
        hulynet_request_fail(request, "Container abc not found");
    } else if (strcmp(operation, "later") == 0) {
        answer_later(kind, request, data_json, 0);
    } else if (strcmp(operation, "later_fail") == 0) {
        answer_later(kind, request, data_json, 1);
    } else if (strcmp(operation, "badjson") == 0) {
        int status = hulynet_request_reply(request, "{not json");
        pthread_mutex_lock(&kind->lock);
        kind->reply_badjson_status = status;
        pthread_mutex_unlock(&kind->lock);
    } else if (strcmp(operation, "blocking") == 0) {
        char *out = NULL;
        hulynet_client *probe;
        int status;
        pthread_mutex_lock(&kind->lock);
        probe = kind->probe_client;
        pthread_mutex_unlock(&kind->lock);
        status = hulynet_client_kinds(probe, 500, &out);
        hulynet_free(out);
        pthread_mutex_lock(&kind->lock);
        kind->blocking_status = status;
        pthread_mutex_unlock(&kind->lock);
        snprintf(answer, sizeof answer, "{\"status\":%d}", status);
        hulynet_request_reply(request, answer);
    } else if (strcmp(operation, "emit") == 0 || strcmp(operation, "emit_all") == 0) {
        int delivered = -1;
        int status = hulynet_container_emit(state->handle, strcmp(operation, "emit") == 0 ? client_id : NULL, data_json,
                                            &delivered);
        snprintf(answer, sizeof answer, "{\"status\":%d,\"delivered\":%d}", status, delivered);
        hulynet_request_reply(request, answer);
    } else if (strcmp(operation, "thread_name") == 0) {
        char name[32] = "";
        pthread_getname_np(pthread_self(), name, sizeof name);
        snprintf(answer, sizeof answer, "\"%s\"", name);
        hulynet_request_reply(request, answer);
    } else if (strcmp(operation, "park") == 0) {
        pthread_mutex_lock(&kind->lock);
        if (kind->parked == NULL) {
            kind->parked = request;
            request = NULL;
        }
        pthread_mutex_unlock(&kind->lock);
        if (request != NULL) hulynet_request_fail(request, "a request is parked already");
    } else {
        snprintf(answer, sizeof answer, "unknown operation %s", operation);
        hulynet_request_fail(request, answer);
    }
}

static void echo_connect(void *container_user, const char *client_id) {
    echo_container *state = container_user;
    fx_note_thread();
    pthread_mutex_lock(&state->kind->lock);
    state->kind->connects++;
    fx_copy_text(state->kind->last_connected, sizeof state->kind->last_connected, client_id);
    pthread_mutex_unlock(&state->kind->lock);
}

static void echo_disconnect(void *container_user, const char *client_id) {
    echo_container *state = container_user;
    fx_note_thread();
    pthread_mutex_lock(&state->kind->lock);
    state->kind->disconnects++;
    fx_copy_text(state->kind->last_disconnected, sizeof state->kind->last_disconnected, client_id);
    pthread_mutex_unlock(&state->kind->lock);
}

static void echo_terminate(void *container_user) {
    echo_container *state = container_user;
    echo_kind *kind = state->kind;
    fx_note_thread();
    pthread_mutex_lock(&kind->lock);
    kind->terminates++;
    if (kind->last_container == state->handle) kind->last_container = NULL;
    pthread_mutex_unlock(&kind->lock);
    if (state->owned) free(state);
}

hulynet_container_kind echo_table(const char *name, echo_kind *kind) {
    hulynet_container_kind entry;
    memset(&entry, 0, sizeof entry);
    entry.size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    entry.kind = name;
    entry.kind_user = kind;
    entry.start = echo_start;
    entry.request = echo_request;
    entry.connect = echo_connect;
    entry.disconnect = echo_disconnect;
    entry.terminate = echo_terminate;
    return entry;
}

hulynet_agent *fx_agent(const char *uuid, const char *name, echo_kind *kind) {
    hulynet_container_kind table = echo_table(name, kind);
    hulynet_agent *agent = NULL;
    if (!CHECK_OK(hulynet_agent_create(uuid, &table, 1, &agent))) return NULL;
    return agent;
}

int fx_wait_threads(echo_kind *kind, int ms) {
    int ok;
    WAIT_UNTIL(ok, fx_int(&kind->lock, &kind->threads_running) == 0, ms);
    return ok;
}

hulynet_container *fx_last_container(echo_kind *kind) {
    hulynet_container *container;
    pthread_mutex_lock(&kind->lock);
    container = kind->last_container;
    pthread_mutex_unlock(&kind->lock);
    return container;
}

int fx_has_kind(hulynet_client *client, const char *kind) {
    char *kinds = NULL;
    char quoted[256];
    int found;
    if (hulynet_client_kinds(client, 2000, &kinds) != HULYNET_OK) return 0;
    snprintf(quoted, sizeof quoted, "\"%s\"", kind);
    found = kinds != NULL && strstr(kinds, quoted) != NULL;
    hulynet_free(kinds);
    return found;
}

/* ---- text helpers ------------------------------------------------------------------------------- */

int fx_count(const char *text, const char *needle) {
    int count = 0;
    size_t length = strlen(needle);
    if (text == NULL || length == 0) return 0;
    while ((text = strstr(text, needle)) != NULL) {
        count++;
        text += length;
    }
    return count;
}

void fx_json_string(const char *json, const char *key, char *out, size_t size) {
    char pattern[256];
    const char *start, *end;
    size_t length;
    out[0] = '\0';
    if (json == NULL) return;
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    start = strstr(json, pattern);
    if (start == NULL) return;
    start += strlen(pattern);
    end = strchr(start, '"');
    if (end == NULL) return;
    length = (size_t)(end - start);
    if (length >= size) length = size - 1;
    memcpy(out, start, length);
    out[length] = '\0';
}

/* ---- collectors --------------------------------------------------------------------------------- */

void fx_events_init(fx_events *events) {
    memset(events, 0, sizeof *events);
    pthread_mutex_init(&events->lock, NULL);
}

void fx_events_destroy(fx_events *events) { pthread_mutex_destroy(&events->lock); }

void fx_event_fn(void *user, const char *json) {
    fx_events *events = user;
    size_t used, length;
    fx_note_thread();
    pthread_mutex_lock(&events->lock);
    events->count++;
    fx_copy_text(events->last, sizeof events->last, json);
    used = strlen(events->all);
    length = json ? strlen(json) : 0;
    if (json != NULL && used + length + 2 < sizeof events->all) {
        memcpy(events->all + used, json, length);
        events->all[used + length] = '\n';
        events->all[used + length + 1] = '\0';
    }
    pthread_mutex_unlock(&events->lock);
}

int fx_events_count(fx_events *events) { return fx_int(&events->lock, &events->count); }

int fx_events_seen(fx_events *events, const char *needle) {
    int seen;
    pthread_mutex_lock(&events->lock);
    seen = strstr(events->all, needle) != NULL;
    pthread_mutex_unlock(&events->lock);
    return seen;
}

void fx_async_init(fx_async *async) {
    memset(async, 0, sizeof *async);
    pthread_mutex_init(&async->lock, NULL);
    async->status = 1;
}

void fx_async_destroy(fx_async *async) { pthread_mutex_destroy(&async->lock); }

void fx_result_fn(void *user, int status, const char *json) {
    fx_async *async = user;
    fx_note_thread();
    pthread_mutex_lock(&async->lock);
    async->calls++;
    async->status = status;
    fx_copy_text(async->text, sizeof async->text, json);
    pthread_mutex_unlock(&async->lock);
}

void fx_reference_fn(void *user, int status, hulynet_reference *reference, const char *error) {
    fx_async *async = user;
    fx_note_thread();
    pthread_mutex_lock(&async->lock);
    async->calls++;
    async->status = status;
    async->reference = reference;
    fx_copy_text(async->text, sizeof async->text, error);
    pthread_mutex_unlock(&async->lock);
}

int fx_async_calls(fx_async *async) { return fx_int(&async->lock, &async->calls); }

int fx_network_up(fx_network *net, const char *tag, const char *kind_name, int with_other) {
    memset(net, 0, sizeof *net);
    echo_kind_init(&net->kind, tag);
    net->server = fx_server();
    if (net->server == NULL) return 0;
    net->host = fx_client(hulynet_server_port(net->server));
    net->user = fx_client(hulynet_server_port(net->server));
    if (with_other) net->other = fx_client(hulynet_server_port(net->server));
    net->agent = fx_agent(NULL, kind_name, &net->kind);
    if (net->host == NULL || net->user == NULL || (with_other && net->other == NULL) || net->agent == NULL) return 0;
    return CHECK_OK(hulynet_client_serve_agent(net->host, net->agent, "127.0.0.1", 0, 3000));
}

void fx_network_down(fx_network *net) {
    hulynet_agent_destroy(net->agent);
    hulynet_client_destroy(net->other);
    hulynet_client_destroy(net->user);
    hulynet_client_destroy(net->host);
    hulynet_server_destroy(net->server);
    fx_wait_threads(&net->kind, 2000);
    /* Every callback of the fixture so far ran on a callback thread. */
    CHECK(fx_off_pool_calls() == 0);
    echo_kind_destroy(&net->kind);
}
