/*
 * fixture.h: what the C tests share: short timeouts, a server and clients on 127.0.0.1 with
 * port 0, an "echo" container kind written in C (with counters of every callback), and collectors
 * for events and asynchronous results. All of it is thread-safe: callbacks run on library threads.
 */
#ifndef HULYNET_FIXTURE_H
#define HULYNET_FIXTURE_H

#include <pthread.h>
#include <stddef.h>

#include "check.h"
#include "hulynet.h"

/* Checks that `call` succeeds and leaves the JSON text `expected` in `out`, then frees `out` and
 * sets it to NULL. A macro, so that a failure names the caller's line. */
#define CHECK_ANSWER(call, out, expected) \
    do {                                  \
        CHECK_OK(call);                   \
        CHECK_STR_EQ(out, expected);      \
        hulynet_free(out);                \
        (out) = NULL;                     \
    } while (0)

/* Short timeouts: alive 1000 ms, unused container 300 ms, ping 200 ms, request 3000 ms. */
hulynet_timeouts fx_timeouts(void);

/* A server on 127.0.0.1, port 0 (checked; NULL on failure). */
hulynet_server *fx_server(void);
/* A client connected to 127.0.0.1:port and waited for (checked; NULL on failure). */
hulynet_client *fx_client(int port);
/* A port nothing listens on (bound by a server that is then destroyed). */
int fx_free_port(void);

/* Is the calling thread one of the library's callback threads (named "hulynet-cb")? */
int fx_on_callback_thread(void);
/* Counts a callback that ran elsewhere than on a callback thread (the fixture's start, connect,
 * disconnect, terminate, event and result functions call it); fx_off_pool_calls() says how many. */
void fx_note_thread(void);
int fx_off_pool_calls(void);

/* Reads an int under a lock. */
int fx_int(pthread_mutex_t *lock, const int *field);

/* ---- the "echo" container kind ---------------------------------------------------------------
 * Operations (request callback):
 *   echo       answers the data as is
 *   whoami     answers {"tag":..,"uuid":..,"client":..|null}
 *   fail       hulynet_request_fail(request, "deliberate failure")
 *   busy       hulynet_request_fail_status(request, HULYNET_EAGAIN, "busy, retry later")
 *   too_big    hulynet_request_fail_status(request, HULYNET_ELIMIT, "over the container's limit")
 *   bad_status hulynet_request_fail_status with HULYNET_ETIMEOUT (refused; status kept in
 *              reply_badjson_status)
 *   says_not_found hulynet_request_fail(request, "Container abc not found")
 *   later      answers the data 20 ms later from a thread of its own
 *   later_fail fails with "late failure" 20 ms later from a thread of its own
 *   badjson    hulynet_request_reply(request, "{not json") (its status is kept in reply_badjson_status)
 *   blocking   calls hulynet_client_kinds(probe_client, 500, ...) from inside the callback (status kept
 *              in blocking_status) and answers {"status":N}
 *   emit       hulynet_container_emit(container, caller, data) and answers {"status":S,"delivered":N}
 *   emit_all   the same to every connected client (client_id NULL)
 *   park       keeps the request in `parked` without answering (the test answers it)
 *   thread_name answers the name of the thread it runs on ("hulynet-cb" on a callback thread)
 *   anything else fails with "unknown operation ..."
 */
#define FX_TEXT 1024

typedef struct echo_kind {
    pthread_mutex_t lock;
    char tag[32];
    int start_status; /* what start returns */
    int starts, start_failures, terminates, connects, disconnects, requests;
    int container_uuid_mismatches; /* start saw hulynet_container_uuid(container) != uuid */
    int reply_badjson_status;
    int blocking_status;
    int threads_running; /* answers still to come from helper threads */
    hulynet_client *probe_client;
    hulynet_container *last_container;
    hulynet_request *parked;
    char last_uuid[128];
    char last_options[FX_TEXT];
    char last_client[128]; /* client_id of the last request; "(null)" when NULL */
    char last_connected[128];
    char last_disconnected[128];
} echo_kind;

/* A container's state (container_user). `owned` ones were allocated by start, freed by terminate. */
typedef struct echo_container {
    echo_kind *kind;
    hulynet_container *handle;
    int owned;
    char uuid[128];
} echo_container;

void echo_kind_init(echo_kind *kind, const char *tag);
void echo_kind_destroy(echo_kind *kind);
/* The kind table entry for `name` served by `kind`. */
hulynet_container_kind echo_table(const char *name, echo_kind *kind);
/* An agent (uuid may be NULL) with the one kind `name` (checked; NULL on failure). */
hulynet_agent *fx_agent(const char *uuid, const char *name, echo_kind *kind);
/* Waits (bounded) until helper threads of `kind` have answered. */
int fx_wait_threads(echo_kind *kind, int ms);
/* ---- a small network ---------------------------------------------------------------------------
 * A server, a client `host` serving an agent with the one echo kind `kind_name`, a client `user`,
 * and (with_other) a second user client `other`. */
typedef struct fx_network {
    hulynet_server *server;
    hulynet_client *host;
    hulynet_client *user;
    hulynet_client *other; /* NULL unless asked for */
    hulynet_agent *agent;
    echo_kind kind;
} fx_network;

/* Sets it all up (checked; 0 on failure, after which fx_network_down still cleans up). */
int fx_network_up(fx_network *net, const char *tag, const char *kind_name, int with_other);
/* Destroys users first, then the host, the server, and waits for the kind's helper threads. */
void fx_network_down(fx_network *net);

/* The kind's last container (under its lock). */
hulynet_container *fx_last_container(echo_kind *kind);

/* Does hulynet_client_kinds list `kind` now? */
int fx_has_kind(hulynet_client *client, const char *kind);

/* ---- text helpers ----------------------------------------------------------------------------- */
/* Copies `text` ("(null)" for NULL) into out[size], cut to fit. */
void fx_copy_text(char *out, size_t size, const char *text);
/* Occurrences of `needle` in `text`. */
int fx_count(const char *text, const char *needle);
/* The string value of the first `"key":"value"` in JSON text, into `out` ("" if absent). */
void fx_json_string(const char *json, const char *key, char *out, size_t size);

/* ---- collectors ------------------------------------------------------------------------------- */
typedef struct fx_events {
    pthread_mutex_t lock;
    int count;
    char last[FX_TEXT];
    char all[8 * FX_TEXT]; /* the events, one a line (as much as fits) */
} fx_events;

void fx_events_init(fx_events *events);
void fx_events_destroy(fx_events *events);
/* A hulynet_event_fn that appends to the fx_events given as user. */
void fx_event_fn(void *user, const char *json);
int fx_events_count(fx_events *events);
/* Does any event received contain `needle`? */
int fx_events_seen(fx_events *events, const char *needle);

typedef struct fx_async {
    pthread_mutex_t lock;
    int calls;
    int status;
    char text[FX_TEXT];
    hulynet_reference *reference;
} fx_async;

void fx_async_init(fx_async *async);
void fx_async_destroy(fx_async *async);
/* A hulynet_result_fn and a hulynet_reference_fn that fill the fx_async given as user. */
void fx_result_fn(void *user, int status, const char *json);
void fx_reference_fn(void *user, int status, hulynet_reference *reference, const char *error);
int fx_async_calls(fx_async *async);

#endif /* HULYNET_FIXTURE_H */
