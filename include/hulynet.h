/*
 * hulynet.h: the Huly virtual network (a network coordinator, agents hosting containers, and
 * clients) over ZeroMQ, as a C library. Wire-compatible with huly.net.
 *
 * ============================================================================================
 * Rules that hold for every function (stated once, here)
 * ============================================================================================
 *
 * Results. Every function that can fail returns an int status: HULYNET_OK (0) or a negative
 * HULYNET_E... code. hulynet_strerror() names a code; hulynet_last_error() gives the detailed
 * message of the last failed call made on the calling thread (for HULYNET_EREMOTE: the message the
 * other side answered with). Nothing in the library aborts the process on bad input: NULL
 * pointers, unknown or destroyed handles, text that is not UTF-8 or JSON that does not parse are
 * all answered with HULYNET_EINVAL or HULYNET_EJSON.
 *
 * Strings. Every `const char *` argument is NUL-terminated UTF-8, read during the call only.
 * JSON arguments are JSON texts ("null", "42", "{\"a\":1}"). A `char **out` result is a new
 * NUL-terminated string owned by the caller, to be freed with hulynet_free(); on failure *out is
 * set to NULL. `const char *` results of accessor functions (hulynet_reference_uuid, ...) are owned
 * by the handle and valid until it is destroyed. Strings passed to callbacks are valid until the
 * callback returns.
 *
 * Handles. Each handle type is opaque and made by a create/start/connect function and freed by
 * its destroy function. destroy(NULL) does nothing. Destroying a handle twice, or using one after
 * destroying it, is detected and answered with HULYNET_EINVAL: handles are never reused. Destroying a client closes the references and connections it made: calls on
 * them then return HULYNET_ECLOSED; destroy them as usual to free them.
 *
 * Threads. Every function may be called from any thread. Callbacks run on threads owned by the
 * library. From inside a callback you may call any non-blocking function (hulynet_request_reply,
 * hulynet_container_emit, the *_async functions, destroy functions) but not a blocking one (those
 * taking a timeout_ms): it would wait for the thread it runs on. Blocking calls with
 * timeout_ms 0 use the library's default request timeout; a negative timeout_ms, or one longer
 * than a day (86400000), is refused with HULYNET_EINVAL.
 *
 * Arguments are checked before anything is done: a port outside 0-65535 (1-65535 to connect),
 * an empty or malformed host, a timeout out of range get HULYNET_EINVAL and a message in
 * hulynet_last_error(), never a silent wrap.
 *
 * Timeouts are in milliseconds.
 */
#ifndef HULYNET_H
#define HULYNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define HULYNET_API __attribute__((visibility("default")))
#else
#define HULYNET_API
#endif

/* ============================================================================================
 * Version
 * ============================================================================================ */

#define HULYNET_VERSION_MAJOR 0
#define HULYNET_VERSION_MINOR 1
#define HULYNET_VERSION_PATCH 0
#define HULYNET_VERSION_NUMBER (HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH)
#define HULYNET_VERSION_STRING "0.1.0"

/** The library's version at run time, as HULYNET_VERSION_NUMBER. */
HULYNET_API unsigned hulynet_version_number(void);
/** The library's version at run time, as HULYNET_VERSION_STRING. Static storage. */
HULYNET_API const char *hulynet_version_string(void);

/* ============================================================================================
 * Results, errors, memory, logging
 * ============================================================================================ */

#define HULYNET_OK 0
#define HULYNET_EINVAL (-1)     /* an invalid argument: NULL, an unknown handle, bad UTF-8, misuse */
#define HULYNET_EJSON (-2)      /* a JSON argument that does not parse */
#define HULYNET_ENOTFOUND (-3)  /* no such container (the network says so), kind, client or subscription */
#define HULYNET_ETIMEOUT (-4)   /* no answer within the time allowed */
#define HULYNET_ECLOSED (-5)    /* the handle (or the client it belongs to) is closed */
#define HULYNET_EREMOTE (-6)    /* the other side answered with an error (see hulynet_last_error) */
#define HULYNET_EBIND (-7)      /* an address could not be bound (a port in use, say) */
#define HULYNET_ECONNECT (-8)   /* a connection could not be set up */
#define HULYNET_EINTERNAL (-9)  /* a defect of the library; please report it */

/** A short static description of a status code ("unknown status" for others). */
HULYNET_API const char *hulynet_strerror(int status);

/** The detailed message of the last failed call on this thread ("" if none). Owned by the
 *  library; valid until the next hulynet call on the same thread. */
HULYNET_API const char *hulynet_last_error(void);

/** Frees a string the library returned through a `char **out`. hulynet_free(NULL) does nothing. */
HULYNET_API void hulynet_free(void *pointer);

#define HULYNET_LOG_TRACE 0
#define HULYNET_LOG_DEBUG 1
#define HULYNET_LOG_INFO 2
#define HULYNET_LOG_NOTICE 3
#define HULYNET_LOG_WARNING 4
#define HULYNET_LOG_ERROR 5
#define HULYNET_LOG_CRITICAL 6

/** Receives the library's log messages of `min_level` and above. Called on library threads,
 *  possibly several at once. */
typedef void (*hulynet_log_fn)(void *user, int level, const char *message);

/** Routes the library's logs to `fn` (NULL: back to the default, warnings and above to stderr),
 *  at once, for every server, client and agent. */
HULYNET_API int hulynet_set_log_handler(hulynet_log_fn fn, void *user, int min_level);

/* ============================================================================================
 * Timeouts
 * ============================================================================================ */

/** Zero in any field means the protocol's default. */
typedef struct hulynet_timeouts {
    int64_t alive_ms;            /* a client (and its agents) silent this long is dropped; 3000 */
    int64_t unused_container_ms; /* an unreferenced container stops after this long; 5000 */
    int64_t ping_interval_ms;    /* how often clients ping; 1000 */
    int64_t request_ms;          /* the longest any request waits for its answer; 30000 */
} hulynet_timeouts;

/* ============================================================================================
 * Network server (the coordinator)
 * ============================================================================================ */

typedef struct hulynet_server hulynet_server;

typedef struct hulynet_server_stats {
    int64_t clients;
    int64_t agents;
    int64_t containers;
    int64_t requests;  /* requests received since start */
    int64_t malformed; /* malformed messages received (answered with errors or dropped) */
} hulynet_server_stats;

/** Starts a coordinator on host:port ("0.0.0.0" or "*" for every address; port 0 picks a free
 *  one). `timeouts` may be NULL. Returns HULYNET_EBIND when the address cannot be bound. */
HULYNET_API int hulynet_server_start(const char *host, int port, const hulynet_timeouts *timeouts,
                                     hulynet_server **out);
/** The port the server is bound to, or a negative status. */
HULYNET_API int hulynet_server_port(const hulynet_server *server);
HULYNET_API int hulynet_server_stats_get(hulynet_server *server, hulynet_server_stats *out);
/** Stops the server, closes its socket and frees it. */
HULYNET_API void hulynet_server_destroy(hulynet_server *server);

/* ---- Metrics and health (docs/OBSERVABILITY.md) ------------------------------------------- */

/** The server's metrics in the Prometheus text format (version 0.0.4), for a host program that
 *  serves them over its own HTTP server. On HULYNET_OK `*text_out` is a NUL-terminated string
 *  owned by the caller: free it with hulynet_free. */
HULYNET_API int hulynet_server_metrics(hulynet_server *server, char **text_out);
/** Serves `GET /metrics` (that text) and `GET /health` (200 {"status":"serving","role":"single"}
 *  while the server serves, 503 once it stops) over HTTP on host:port until the server is
 *  destroyed. `host` NULL means "127.0.0.1"; port 0 picks a free one, written to `*port_out`
 *  (which may be NULL). HULYNET_EBIND when the address cannot be bound; HULYNET_EINVAL when the
 *  server already serves them. */
HULYNET_API int hulynet_server_serve_metrics(hulynet_server *server, const char *host, int port, int *port_out);

/* ---- end of metrics and health ------------------------------------------------------------ */

/* ============================================================================================
 * Client (a connection to a network)
 * ============================================================================================ */

typedef struct hulynet_client hulynet_client;
typedef struct hulynet_reference hulynet_reference;
typedef struct hulynet_connection hulynet_connection;
typedef struct hulynet_agent hulynet_agent;

/** Completion of an asynchronous call: `status` as the blocking call would return; `json` the
 *  result (HULYNET_OK) or the error message (otherwise), valid until the callback returns. It
 *  may run on the client's I/O thread: keep it short (starting another async call is fine). */
typedef void (*hulynet_result_fn)(void *user, int status, const char *json);

/** Receives JSON events: network changes (a NetworkEvent object) or a container's events. */
typedef void (*hulynet_event_fn)(void *user, const char *json);

/** Connects to the coordinator at host:port in the background (see hulynet_client_wait).
 *  `timeouts` may be NULL. */
HULYNET_API int hulynet_client_connect(const char *host, int port, const hulynet_timeouts *timeouts,
                                       hulynet_client **out);
/** Waits until the coordinator has answered hello. */
HULYNET_API int hulynet_client_wait(hulynet_client *client, int64_t timeout_ms);
/** The client's id on the network. Owned by the client. */
HULYNET_API const char *hulynet_client_id(const hulynet_client *client);

/** `al`: a JSON array of {agentId, endpoint, kinds, containers}. */
HULYNET_API int hulynet_client_agents(hulynet_client *client, int64_t timeout_ms, char **json_out);
/** `ak`: a JSON array of kinds. */
HULYNET_API int hulynet_client_kinds(hulynet_client *client, int64_t timeout_ms, char **json_out);
/** `cl`: a JSON array of container records, of `kind` or all (NULL). */
HULYNET_API int hulynet_client_list(hulynet_client *client, const char *kind, int64_t timeout_ms, char **json_out);

/** `gg`: get-or-start a container of `kind`; `options_json` is NULL or a JSON object
 *  {uuid?, labels?: [...], extra?: {...}}. Retried while no agent offers the kind, up to
 *  timeout_ms. The reference holds the container until released or destroyed. */
HULYNET_API int hulynet_client_get(hulynet_client *client, const char *kind, const char *options_json,
                                   int64_t timeout_ms, hulynet_reference **out);
/** Completion of hulynet_client_get_async: on HULYNET_OK `reference` is a new handle owned by the
 *  callee (destroy it when done); otherwise it is NULL and `error` says why. */
typedef void (*hulynet_reference_fn)(void *user, int status, hulynet_reference *reference, const char *error);
/** hulynet_client_get without blocking: `done` is called once, on a library thread. */
HULYNET_API int hulynet_client_get_async(hulynet_client *client, const char *kind, const char *options_json,
                                         int64_t timeout_ms, hulynet_reference_fn done, void *user);

/** `cs`: a request to container `uuid` through the coordinator; `data_json` may be NULL (null). */
HULYNET_API int hulynet_client_request(hulynet_client *client, const char *uuid, const char *operation,
                                       const char *data_json, int64_t timeout_ms, char **json_out);
/** The same without blocking: `done` is called once, on a library thread. */
HULYNET_API int hulynet_client_request_async(hulynet_client *client, const char *uuid, const char *operation,
                                             const char *data_json, int64_t timeout_ms, hulynet_result_fn done,
                                             void *user);

/** Calls `fn` with every network change (a NetworkEvent JSON object). `*subscription` receives an
 *  id for hulynet_client_remove_listener; once that returns, `fn` is not called again. */
HULYNET_API int hulynet_client_add_listener(hulynet_client *client, hulynet_event_fn fn, void *user,
                                            uint64_t *subscription);
HULYNET_API int hulynet_client_remove_listener(hulynet_client *client, uint64_t subscription);

/** Releases the client's references, closes its connections, unregisters its agents,
 *  disconnects and frees it. */
HULYNET_API void hulynet_client_destroy(hulynet_client *client);

/* ============================================================================================
 * Container references and connections
 * ============================================================================================ */

/** The container's uuid / endpoint reference (JSON text), as they are now. A reference follows
 *  its container: when the container's agent dies or leaves, or after a coordinator restart, the
 *  library gets it again on a live agent (the same uuid for a uuid get; the same kind, labels
 *  and extra otherwise), so both may change. Requests made meanwhile wait and go again, each
 *  within its own timeout; connections reopen where the container went, keeping their event
 *  handlers. Owned by the reference: every string returned stays valid until the reference is
 *  destroyed. */
HULYNET_API const char *hulynet_reference_uuid(hulynet_reference *reference);
HULYNET_API const char *hulynet_reference_endpoint(hulynet_reference *reference);
/** Tells `fn(user, uuid, endpoint)` when the container moved (NULL: stop), on a library
 *  thread; the strings are valid until it returns. Once this returns, the previous function is
 *  not called again. */
typedef void (*hulynet_moved_fn)(void *user, const char *uuid, const char *endpoint);
HULYNET_API int hulynet_reference_set_moved_handler(hulynet_reference *reference, hulynet_moved_fn fn, void *user);
/** A request through the coordinator. */
HULYNET_API int hulynet_reference_request(hulynet_reference *reference, const char *operation,
                                          const char *data_json, int64_t timeout_ms, char **json_out);
/** The same without blocking: `done` is called once, on a library thread. */
HULYNET_API int hulynet_reference_request_async(hulynet_reference *reference, const char *operation,
                                                const char *data_json, int64_t timeout_ms, hulynet_result_fn done,
                                                void *user);
/** Opens a connection (routed through the agent, or direct, as the endpoint says). */
HULYNET_API int hulynet_reference_connect(hulynet_reference *reference, int64_t timeout_ms,
                                          hulynet_connection **out);
/** Gives the container back (it stops after the unused timeout once nobody holds it). */
HULYNET_API int hulynet_reference_release(hulynet_reference *reference, int64_t timeout_ms);
/** Releases it if still held (without waiting) and frees the handle. */
HULYNET_API void hulynet_reference_destroy(hulynet_reference *reference);

/** Events the container sends to this connection go to `fn` (NULL: stop). Events that came
 *  before a handler was set are delivered to the first one set. Once this returns, the previous
 *  handler is not called again. */
HULYNET_API int hulynet_connection_set_event_handler(hulynet_connection *connection, hulynet_event_fn fn,
                                                     void *user);
HULYNET_API int hulynet_connection_request(hulynet_connection *connection, const char *operation,
                                           const char *data_json, int64_t timeout_ms, char **json_out);
HULYNET_API int hulynet_connection_request_async(hulynet_connection *connection, const char *operation,
                                                 const char *data_json, int64_t timeout_ms,
                                                 hulynet_result_fn done, void *user);
/** Disconnects from the container and frees the handle. */
HULYNET_API void hulynet_connection_destroy(hulynet_connection *connection);

/* ============================================================================================
 * Agents and container kinds implemented in C
 * ============================================================================================ */

/** A container the library hosts for a C container kind; valid from `start` until `terminate`
 *  returns. */
typedef struct hulynet_container hulynet_container;

/** A request a container must answer, once, with hulynet_request_reply or hulynet_request_fail,
 *  now or later, from any thread. Answering frees it. */
typedef struct hulynet_request hulynet_request;

typedef struct hulynet_container_kind {
    /** The kind's name. */
    const char *kind;
    /** Passed to `start`. */
    void *kind_user;
    /** Starts a container with this `uuid` (the one asked for, or a fresh one); `options_json` is
     *  the get options. Store your state in *container_user. Return HULYNET_OK, or an error that
     *  the client's get receives. Required. */
    int (*start)(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                 void **container_user);
    /** A request: answer it with hulynet_request_reply / hulynet_request_fail, inside the
     *  callback or later from any thread. Requests may arrive on several library threads at once.
     *  Required. */
    void (*request)(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                    const char *client_id);
    /** A client connected: hulynet_container_emit(container, client_id, ...) reaches it until
     *  `disconnect`. Optional (NULL). */
    void (*connect)(void *container_user, const char *client_id);
    /** Optional (NULL). */
    void (*disconnect)(void *container_user, const char *client_id);
    /** The container stops: no new request, connect or disconnect callback starts after this
     *  one. A request it is still answering (a hulynet_request not yet replied) must still be
     *  answered or failed; free container_user once that is done. Optional (NULL). */
    void (*terminate)(void *container_user);
} hulynet_container_kind;

/** An agent hosting `count` container kinds (the table is copied; the strings too).
 *  `uuid` NULL makes a random one. */
HULYNET_API int hulynet_agent_create(const char *uuid, const hulynet_container_kind *kinds, size_t count,
                                     hulynet_agent **out);
/** The agent's uuid. Owned by the agent. */
HULYNET_API const char *hulynet_agent_uuid(const hulynet_agent *agent);
/** A pre-existing ("stateless", highly available) container of `kind` under a fixed uuid;
 *  `container_user` is handed to the kind's callbacks. Call before serving the agent. */
HULYNET_API int hulynet_agent_add_stateless(hulynet_agent *agent, const char *uuid, const char *kind,
                                            void *container_user);
/** The container handle of a stateless container added with hulynet_agent_add_stateless, for
 *  hulynet_container_emit; NULL when the agent has no such container. Owned by the agent. */
HULYNET_API hulynet_container *hulynet_agent_stateless_container(hulynet_agent *agent, const char *uuid);
#define HULYNET_REQUESTS_ON_CALLBACK_THREAD 0 /* the default: see hulynet_agent_set_request_mode */
#define HULYNET_REQUESTS_INLINE 1
/** Where `kind`'s request callbacks run, from the next request on.
 *  HULYNET_REQUESTS_ON_CALLBACK_THREAD (the default): on a library thread of their own, so that a
 *  slow callback delays only itself. HULYNET_REQUESTS_INLINE: on the agent's client I/O thread,
 *  with no thread crossed per request, which is faster for callbacks that answer at once; such a
 *  callback must return quickly, since the client's other traffic waits while it runs.
 *  HULYNET_ENOTFOUND when the agent has no such kind. */
HULYNET_API int hulynet_agent_set_request_mode(hulynet_agent *agent, const char *kind, int mode);
/** Opens the agent's endpoint on 0.0.0.0:`port` (0 picks one), advertised as
 *  `advertised_host`, and registers the agent with the client's network (again after every
 *  coordinator restart). An agent is served by at most one client. */
HULYNET_API int hulynet_client_serve_agent(hulynet_client *client, hulynet_agent *agent, const char *advertised_host,
                                           int port, int64_t timeout_ms);
/** Registers the agent without an endpoint: its containers are reached through the coordinator. */
HULYNET_API int hulynet_client_register_agent(hulynet_client *client, hulynet_agent *agent, int64_t timeout_ms);
/** Stops the agent's containers (calling `terminate`), unregisters it and frees it. */
HULYNET_API void hulynet_agent_destroy(hulynet_agent *agent);

/** The container's uuid. Owned by the container. */
HULYNET_API const char *hulynet_container_uuid(const hulynet_container *container);
/** Sends `json` as an event to connected client `client_id`, or to every connected client
 *  (client_id NULL). `*delivered` (may be NULL) receives how many clients it was sent to.
 *  Returns HULYNET_ENOTFOUND when the named client is not connected to this container. */
HULYNET_API int hulynet_container_emit(hulynet_container *container, const char *client_id, const char *json,
                                       int *delivered);

/** Answers a request with a JSON result. Frees the request. */
HULYNET_API int hulynet_request_reply(hulynet_request *request, const char *json);
/** Answers a request with an error message. Frees the request. */
HULYNET_API int hulynet_request_fail(hulynet_request *request, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* HULYNET_H */
