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
 * JSON arguments are JSON texts ("null", "42", "{\"a\":1}"), checked once where they enter
 * (HULYNET_EJSON) and then carried as the bytes written: a request's data reaches the container,
 * and a container's answer or event reaches the caller, byte for byte (key order, number spelling
 * such as 12345678901234567890 or 1.10, and spacing kept). A `char **out` result is a new
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
 * Threads. Every function may be called from any thread. Callbacks (container callbacks, result,
 * event and moved functions) run on the library's callback threads, a pool of threads that do
 * nothing else (named "hulynet-cb"; see hulynet_set_callback_threads): a callback that blocks
 * holds one of them, while the library's own work (sockets, timers, gets, requests) goes on and
 * other callbacks run on the others. The calls of one event, moved or listener function, and a
 * container's connect, disconnect and terminate, come one at a time and in order; requests and
 * results may run concurrently. Log functions run where the message is logged. Where a function
 * replaces or removes a callback ("once this returns, ... is not called again"), called outside a
 * callback it also waits for a call in progress to return; inside one it does not wait.
 * From inside a callback you may call any non-blocking function (hulynet_request_reply,
 * hulynet_container_emit, the *_async functions, destroy functions) but not a blocking one (those
 * taking a timeout_ms): it could wait for callback threads that are all busy. Blocking calls with
 * timeout_ms 0 use the library's default request timeout; a negative timeout_ms, or one longer
 * than a day (86400000), is refused with HULYNET_EINVAL.
 *
 * Arguments are checked before anything is done: a port outside 0-65535 (1-65535 to connect),
 * an empty or malformed host, a timeout out of range get HULYNET_EINVAL and a message in
 * hulynet_last_error(), never a silent wrap.
 *
 * Timeouts are in milliseconds.
 *
 * Growth (0.2). The ABI grows without breaking callers built against an older hulynet.h:
 * - Option structs (hulynet_timeouts, hulynet_container_kind, and the structs new in 0.2) start
 *   with `size`, which their HULYNET_*_INIT macro sets to HULYNET_STRUCT_SIZE(type): the
 *   struct's size and a tag. Always
 *   initialise them with the macro, then set fields by name. The library reads the fields that
 *   size covers (later fields keep their defaults); fields it does not know (a newer header's)
 *   must be zero, else HULYNET_EINVAL. A struct whose first field carries no tag is read in the
 *   0.1 layout, which had no size field: programs built against hulynet.h 0.1 keep working.
 *   Source written for 0.1 that fills these structs without the INIT macro must add it when it
 *   is rebuilt against 0.2.
 * - Every user pointer the library keeps has a destroy notification, called once when the
 *   library no longer uses it (the *_v2 functions and hulynet_container_kind.kind_user_destroy).
 *   One-shot completions (`done` of the *_async functions) are called exactly once instead.
 * - New functions and fields are added; none is removed or changed within a major version.
 * - The EXPERIMENTAL section at the end may change in any minor version; everything else is
 *   stable.
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
#define HULYNET_VERSION_MINOR 2
#define HULYNET_VERSION_PATCH 0
#define HULYNET_VERSION_NUMBER (HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH)
#define HULYNET_VERSION_STRING "0.2.0"

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
#define HULYNET_EAGAIN (-10)    /* refused for now, retry later: too many requests in flight, a rate
                                   limit, a coordinator restoring its state, a busy container */
#define HULYNET_ELIMIT (-11)    /* a configured limit refuses it for good: the most clients, the
                                   largest message, ... */

/* How an error answered by the network becomes a status. A hulynet peer sends a code with every
 * error (the "code" field of a responseError, docs/PROTOCOL.md); the status follows the code:
 *   container_not_found, no_agent, agent_gone -> HULYNET_ENOTFOUND
 *   retry_later -> HULYNET_EAGAIN           limit -> HULYNET_ELIMIT
 *   timeout -> HULYNET_ETIMEOUT             anything else (a container's own error) -> HULYNET_EREMOTE
 * A TypeScript peer sends text only. One rule reads it: the reference's exact messages
 * "No suitable agents found for container <kind>" (no_agent), "Container <uuid> not found"
 * (container_not_found) and "Agent <uuid> not found" (agent_gone), with <uuid> one word; any
 * other text is a container's own error (HULYNET_EREMOTE), whatever it says. */

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

/** A destroy notification: called once with a user pointer the library no longer uses. */
typedef void (*hulynet_destroy_fn)(void *user);

/** hulynet_set_log_handler with a destroy notification: `destroy(user)` (may be NULL) is called
 *  once `fn` is replaced and no call of it is in progress, or at hulynet_shutdown. */
HULYNET_API int hulynet_set_log_handler_v2(hulynet_log_fn fn, void *user, hulynet_destroy_fn destroy, int min_level);

/** One structured field of a log record (agent, client, container, kind, ...). */
typedef struct hulynet_log_field {
    const char *key;
    const char *value;
} hulynet_log_field;

/** Receives a log record with its fields apart: `logger` is the logger's label ("hulynet.server",
 *  ...), `message` the text without the fields, `fields[0 .. field_count)` in key order. Every
 *  pointer is valid until the function returns. Called as hulynet_log_fn is. */
typedef void (*hulynet_log_record_fn)(void *user, int level, const char *logger, const char *message,
                                      const hulynet_log_field *fields, size_t field_count);

/** Routes the library's logs to `fn` as structured records (for a host's structured logger),
 *  replacing any handler set with hulynet_set_log_handler(_v2) and replaced by them; NULL: back
 *  to the default. `destroy` as for hulynet_set_log_handler_v2. No secret key or `extra` value is
 *  ever logged. */
HULYNET_API int hulynet_set_log_record_handler(hulynet_log_record_fn fn, void *user, hulynet_destroy_fn destroy,
                                               int min_level);

/** Frees what the library holds for the whole process: the shared ZeroMQ context, its I/O
 *  thread, the log and span handlers (their destroy notifications are called). Every handle must
 *  have been destroyed first: otherwise nothing is done and HULYNET_EINVAL says how many are
 *  alive. Waits at most `timeout_ms` (0: 5000) for sockets still closing, then HULYNET_ETIMEOUT
 *  (the context is let go all the same). Afterwards the library is usable again: the next object
 *  made re-initialises what it needs. */
HULYNET_API int hulynet_shutdown(int64_t timeout_ms);

/** Sets the number of callback threads: `count` 1 to 1024, or 0 for the default, max(4, 2 x the
 *  cores online), unless the HULYNET_CALLBACK_THREADS environment variable (read on first use)
 *  gives another. More threads start at once; surplus ones end once idle. */
HULYNET_API int hulynet_set_callback_threads(int count);
/** The number of callback threads asked for now. */
HULYNET_API int hulynet_callback_threads(void);

/* ============================================================================================
 * Timeouts
 * ============================================================================================ */

/** The tag of HULYNET_STRUCT_SIZE: tells a sized struct from the 0.1 layout (see "Growth"). */
#define HULYNET_SIZE_TAG UINT64_C(0x484E000000000000)
/** The `size` of an option struct: its size and HULYNET_SIZE_TAG. */
#define HULYNET_STRUCT_SIZE(type) (HULYNET_SIZE_TAG | sizeof(type))

/** Zero in any field means the protocol's default. Initialise with HULYNET_TIMEOUTS_INIT. */
typedef struct hulynet_timeouts {
    uint64_t size;               /* HULYNET_STRUCT_SIZE(hulynet_timeouts) */
    int64_t alive_ms;            /* a client (and its agents) silent this long is dropped; 3000 */
    int64_t unused_container_ms; /* an unreferenced container stops after this long; 5000 */
    int64_t ping_interval_ms;    /* how often clients ping; 1000 */
    int64_t request_ms;          /* the longest any request waits for its answer; 30000 */
    /* 0.2 */
    int64_t tick_ms;             /* how often timers are checked and network events flushed; 100 */
} hulynet_timeouts;

#define HULYNET_TIMEOUTS_INIT {HULYNET_STRUCT_SIZE(hulynet_timeouts), 0, 0, 0, 0, 0}

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

/* Security (docs/SECURITY.md): CURVE encryption and authentication. A coordinator has a key
 * pair and an allow list of client keys; clients and agents know the coordinator's public key
 * and have key pairs of their own. Keys are Z85 text, 40 characters. */

/** Makes a fresh key pair: 41 bytes each (40 characters and the NUL). */
HULYNET_API int hulynet_curve_keypair(char *public_key, char *secret_key);

/** The security of a server or a client. Set `size` to HULYNET_STRUCT_SIZE(hulynet_security)
 *  (plain sizeof works too: this struct has no 0.1 layout): fields may be added at the end, and
 *  the library reads only those a caller's size covers. */
typedef struct hulynet_security {
    size_t size;
    const char *secret_key;      /* this side's secret key (its public key is derived from it); for a
                                  * client NULL means a key pair made for the connection */
    const char *server_key;      /* clients: the coordinator's public key; required for a client */
    const char *allow_list_path; /* servers: the allow list file ("KEY NAME" lines, # comments),
                                  * read again when it changes; NULL: any client knowing the key */
} hulynet_security;

/* Several coordinators that stand in for each other (docs/HA.md): each campaigns for leadership
 * through etcd, and only the leader binds its port and serves; a leader that cannot renew its
 * lease stops serving before the lease can expire. Clients list every coordinator
 * (hulynet_client_connect_with) and follow the one serving. */

/** Options of an elected coordinator. Set `size` to HULYNET_STRUCT_SIZE(hulynet_election_options)
 *  (plain sizeof works too: this struct has no 0.1 layout): fields may be added at the end in
 *  later versions, and the library reads only the ones a caller's size covers. */
typedef struct hulynet_election_options {
    size_t size;
    const char *etcd;      /* etcd client URLs, "http://host:port[,http://host:port...]"; required */
    const char *key;       /* the key the coordinators of one network campaign for; NULL: "hulynet/leader" */
    int64_t lease_ttl_ms;  /* whole seconds, 1000 to 300000; 0: 3000. A dead leader is replaced within about this */
    const char *advertise; /* this coordinator's address as others see it, "host:port"; NULL: host:port */
} hulynet_election_options;

#define HULYNET_ROLE_STANDBY 0 /* elected, not leading: binds nothing */
#define HULYNET_ROLE_LEADER 1  /* serving (a coordinator on its own always is) */
#define HULYNET_ROLE_STOPPED 2

/** hulynet_server_start with options, each NULL for the default. `election`: a coordinator
 *  that campaigns through etcd and serves on host:port (a fixed port: clients list it) while it
 *  leads; it returns at once, standing by (see hulynet_server_role), and
 *  hulynet_server_stats_get gives zeros while it stands by. `security`: serve with CURVE (its
 *  secret_key is required). Returns HULYNET_EINVAL for an option out of range. */
HULYNET_API int hulynet_server_start_with(const char *host, int port, const hulynet_timeouts *timeouts,
                                          const hulynet_election_options *election, const hulynet_security *security,
                                          hulynet_server **out);
/** HULYNET_ROLE_LEADER, HULYNET_ROLE_STANDBY or HULYNET_ROLE_STOPPED, or a negative status. */
HULYNET_API int hulynet_server_role(hulynet_server *server);
/** A JSON object for health checks: {"status":"serving"|"standby"|"stopped","role":...,
 *  "leader":...,"reason":...}. *json_out is freed with hulynet_free. */
HULYNET_API int hulynet_server_health(hulynet_server *server, char **json_out);
/* ---- Metrics and health (docs/OBSERVABILITY.md) ------------------------------------------- */

/** The server's metrics in the Prometheus text format (version 0.0.4), for a host program that
 *  serves them over its own HTTP server. On HULYNET_OK `*text_out` is a NUL-terminated string
 *  owned by the caller: free it with hulynet_free. */
HULYNET_API int hulynet_server_metrics(hulynet_server *server, char **text_out);
/** Serves `GET /metrics` (that text) and `GET /health` (200 {"status":"serving","role":"single"}
 *  while the server serves, 503 once it stops; an elected one: 200 while it leads, 503 with
 *  {"status":"standby",...,"reason":...} while it stands by) over HTTP on host:port until the server is
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
 *  runs on a callback thread (starting another async call from it is fine). */
typedef void (*hulynet_result_fn)(void *user, int status, const char *json);

/** Receives JSON events: network changes (a NetworkEvent object) or a container's events. */
typedef void (*hulynet_event_fn)(void *user, const char *json);

/** Connects to the coordinator at host:port in the background (see hulynet_client_wait).
 *  `timeouts` may be NULL. */
HULYNET_API int hulynet_client_connect(const char *host, int port, const hulynet_timeouts *timeouts,
                                       hulynet_client **out);
/** Connects to "host:port", or to whichever serves of several coordinators,
 *  "host:port[,host:port...]" (elected ones, see hulynet_server_start_with): the client tries
 *  each in turn, stays with the one that greets it, and moves on when it stops serving,
 *  restoring its state there. `timeouts` and `security` may be NULL; with `security` the
 *  connection (and the endpoints of agents it serves) use CURVE. */
HULYNET_API int hulynet_client_connect_with(const char *network, const hulynet_timeouts *timeouts,
                                            const hulynet_security *security, hulynet_client **out);
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
/** hulynet_client_add_listener with a destroy notification: `destroy(user)` (may be NULL) is
 *  called once `fn` will not be called again (after hulynet_client_remove_listener, or when the
 *  client is destroyed). On failure it is not called: `user` is still the caller's. */
HULYNET_API int hulynet_client_add_listener_v2(hulynet_client *client, hulynet_event_fn fn, void *user,
                                               hulynet_destroy_fn destroy, uint64_t *subscription);

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
/** The same with a destroy notification: `destroy(user)` (may be NULL) is called once `fn` is
 *  replaced, or the reference destroyed, and no call of it is in progress. */
HULYNET_API int hulynet_reference_set_moved_handler_v2(hulynet_reference *reference, hulynet_moved_fn fn, void *user,
                                                       hulynet_destroy_fn destroy);
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
/** The same with a destroy notification: `destroy(user)` (may be NULL) is called once `fn` is
 *  replaced, or the connection destroyed (or its client), and no call of it is in progress. */
HULYNET_API int hulynet_connection_set_event_handler_v2(hulynet_connection *connection, hulynet_event_fn fn,
                                                        void *user, hulynet_destroy_fn destroy);
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

/** A container kind. Initialise with HULYNET_CONTAINER_KIND_INIT, then set the fields. */
typedef struct hulynet_container_kind {
    /** HULYNET_STRUCT_SIZE(hulynet_container_kind). */
    uint64_t size;
    /** The kind's name. */
    const char *kind;
    /** Passed to `start`. */
    void *kind_user;
    /** Starts a container with this `uuid` (the one asked for, or a fresh one); `options_json` is
     *  the get options. Store your state in *container_user. Return HULYNET_OK, or an error that
     *  the client's get receives (HULYNET_EAGAIN and HULYNET_ELIMIT reach it as such), with a
     *  message set by hulynet_container_start_error. Required. */
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
    /* 0.2 */
    /** The destroy notification of kind_user: called once, when the agent is destroyed and none
     *  of the kind's callbacks runs any more. Optional (NULL). */
    hulynet_destroy_fn kind_user_destroy;
} hulynet_container_kind;

#define HULYNET_CONTAINER_KIND_INIT \
    {HULYNET_STRUCT_SIZE(hulynet_container_kind), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}

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
/** `direct` 1: `kind`'s containers started from now on are served each on an endpoint of its
 *  own (a free port on the agent's advertised host), which clients connect to directly instead
 *  of through the agent's endpoint; 0 (the default): routed through the agent. Requests
 *  through the coordinator work either way. A direct container needs an agent served with
 *  hulynet_client_serve_agent: with hulynet_client_register_agent its get fails.
 *  HULYNET_ENOTFOUND when the agent has no such kind. */
HULYNET_API int hulynet_agent_set_direct(hulynet_agent *agent, const char *kind, int direct);
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
/** Inside `start`, before returning an error status: the message the client's get receives
 *  (copied). HULYNET_EINVAL outside a start. */
HULYNET_API int hulynet_container_start_error(hulynet_container *container, const char *message);
/** Sends `json` as an event to connected client `client_id`, or to every connected client
 *  (client_id NULL). `*delivered` (may be NULL) receives how many clients it was sent to.
 *  Returns HULYNET_ENOTFOUND when the named client is not connected to this container. */
HULYNET_API int hulynet_container_emit(hulynet_container *container, const char *client_id, const char *json,
                                       int *delivered);

/** Answers a request with a JSON result. Frees the request. */
HULYNET_API int hulynet_request_reply(hulynet_request *request, const char *json);
/** Answers a request with an error message. Frees the request. */
HULYNET_API int hulynet_request_fail(hulynet_request *request, const char *message);
/** Answers a request with an error message and a status the caller receives: HULYNET_EREMOTE
 *  (as hulynet_request_fail), HULYNET_EAGAIN (busy: retry later) or HULYNET_ELIMIT (a limit of
 *  the container's). Another status is refused with HULYNET_EINVAL, and the request still fails
 *  (HULYNET_EREMOTE) so that nobody waits for it. Frees the request. */
HULYNET_API int hulynet_request_fail_status(hulynet_request *request, int status, const char *message);

/* ============================================================================================
 * EXPERIMENTAL: may change or go in any minor version. Performance knobs live here.
 * ============================================================================================ */

#define HULYNET_EXPERIMENTAL_REQUESTS_ON_CALLBACK_THREAD 0 /* the default */
#define HULYNET_EXPERIMENTAL_REQUESTS_INLINE 1
/* The 0.1 names, kept working. */
#define HULYNET_REQUESTS_ON_CALLBACK_THREAD HULYNET_EXPERIMENTAL_REQUESTS_ON_CALLBACK_THREAD
#define HULYNET_REQUESTS_INLINE HULYNET_EXPERIMENTAL_REQUESTS_INLINE
/** Where `kind`'s request callbacks run, from the next request on.
 *  HULYNET_EXPERIMENTAL_REQUESTS_ON_CALLBACK_THREAD (the default): on the callback threads, so
 *  that a slow callback delays only itself. HULYNET_EXPERIMENTAL_REQUESTS_INLINE: on the agent's
 *  client I/O thread, with no thread crossed per request, which is faster for callbacks that
 *  answer at once; such a callback must return quickly, since the client's other traffic waits
 *  while it runs. HULYNET_ENOTFOUND when the agent has no such kind. */
HULYNET_API int hulynet_agent_set_request_mode(hulynet_agent *agent, const char *kind, int mode);

/* ---- Spans (docs/OBSERVABILITY.md, "Traces") ---------------------------------------------
 * The spans of the coordinators, agents and clients of this process, handed to the host, which
 * exports them with its own tracing SDK (OpenTelemetry's, say). A request through a coordinator
 * is one trace: the coordinator's span ("hulynet.coordinator.request", "hulynet.coordinator.get")
 * and, in whichever process hosts the agent, the agent's span ("hulynet.agent.request",
 * "hulynet.agent.start") as its child. The context crosses the wire as a W3C traceparent (version
 * 00), as with a Swift process traced by OpenTelemetry: the two kinds of process mix in one trace.
 *
 * Experimental, because what may still change is more than what a sized struct can absorb: the
 * set of spans and their attributes (new in 0.2), the attribute element (not sized: an array's
 * stride cannot grow), and whether events, links and tracestate join the record. */

#define HULYNET_SPAN_KIND_INTERNAL 1 /* OpenTelemetry's SpanKind numbers */
#define HULYNET_SPAN_KIND_SERVER 2
#define HULYNET_SPAN_KIND_CLIENT 3
#define HULYNET_SPAN_KIND_PRODUCER 4
#define HULYNET_SPAN_KIND_CONSUMER 5

#define HULYNET_SPAN_STATUS_UNSET 0 /* OpenTelemetry's status codes */
#define HULYNET_SPAN_STATUS_OK 1
#define HULYNET_SPAN_STATUS_ERROR 2

#define HULYNET_SPAN_ATTR_STRING 1
#define HULYNET_SPAN_ATTR_INT 2
#define HULYNET_SPAN_ATTR_DOUBLE 3
#define HULYNET_SPAN_ATTR_BOOL 4

/** One attribute: `key` and the value of `type` (the other value fields are zero). */
typedef struct hulynet_span_attribute {
    const char *key;
    int type;                 /* HULYNET_SPAN_ATTR_* */
    int bool_value;           /* BOOL: 0 or 1 */
    int64_t int_value;        /* INT */
    double double_value;      /* DOUBLE */
    const char *string_value; /* STRING (an array value arrives as its JSON text) */
} hulynet_span_attribute;

/** A finished span. Filled by the library; every pointer in it is valid only during the call of
 *  the span function. `size` is HULYNET_STRUCT_SIZE(hulynet_span) of the library that filled it:
 *  fields are only ever added at the end, so a program built against a newer header reads a
 *  field that an older library may lack only if HULYNET_SPAN_HAS(span, field). */
typedef struct hulynet_span {
    uint64_t size;
    const char *name;           /* "hulynet.coordinator.request", ... */
    const char *trace_id;       /* 32 lowercase hex digits (W3C trace-id) */
    const char *span_id;        /* 16 lowercase hex digits */
    const char *parent_span_id; /* 16 lowercase hex digits, or "" for the root of a trace */
    int64_t start_ns;           /* wall clock, nanoseconds since the Unix epoch */
    int64_t end_ns;
    int kind;                   /* HULYNET_SPAN_KIND_* */
    int status;                 /* HULYNET_SPAN_STATUS_* */
    int parent_is_remote;       /* 1: the parent came from another process (through traceparent) */
    const char *status_message; /* with HULYNET_SPAN_STATUS_ERROR; otherwise "" */
    /* Sorted by key; at most 64, and string values and keys cut to 1024 bytes (at a UTF-8
     * character boundary): values can come from peers. NULL when attribute_count is 0. */
    const hulynet_span_attribute *attributes;
    size_t attribute_count;
} hulynet_span;

#define HULYNET_SPAN_HAS(span, field)                                                              \
    (((span)->size & ~UINT64_C(0xFFFF000000000000)) >=                                             \
     offsetof(hulynet_span, field) + sizeof((span)->field))

/** Receives a finished span; see hulynet_set_span_handler. */
typedef void (*hulynet_span_fn)(void *user, const hulynet_span *span);

/** Hands the spans that end from now on to `fn(user, span)`; `fn` NULL removes the handler
 *  (`user` and `destroy` are then ignored). `destroy(user)` (may be NULL) is called once `fn` is
 *  replaced or removed and no call of it is in progress, or at hulynet_shutdown; once this
 *  returns, the previous function is not called again.
 *
 *  When it is called: spans are queued as they end, on whatever thread ends them, and `fn` runs
 *  on a callback thread, one call at a time, in the order the spans ended; never on an I/O
 *  thread. The queue holds 4096 spans: while `fn` is slower than spans end, those that find it
 *  full are dropped and counted (hulynet_spans_dropped), so a slow handler never stalls the
 *  network. Removing the handler first delivers the spans queued before the call (as an SDK's
 *  shutdown flushes); called from inside a callback, it discards them instead of waiting.
 *
 *  Which objects trace: each server and client (for the agents it serves) reads the process's
 *  tracer once, when it is made. Set the first handler before making the servers and clients to
 *  trace (if handles are alive then, a warning is logged: theirs do not trace); from then on the
 *  tracer stays for the life of the process, and replacing or removing the handler takes effect
 *  at once for all of them (with none set, spans cost one check and are not recorded).
 *  The first handler installs hulynet's tracer as the process's (swift-distributed-tracing's
 *  InstrumentationSystem, which takes one per process); when a tracer is there already (a Swift
 *  program linking this library bootstrapped OpenTelemetry, say), the spans go to that tracer and
 *  this returns HULYNET_EINVAL without keeping `user` (destroy is not called). */
HULYNET_API int hulynet_set_span_handler(hulynet_span_fn fn, void *user, hulynet_destroy_fn destroy);

/** The spans dropped since the process started because the handler's queue was full. */
HULYNET_API uint64_t hulynet_spans_dropped(void);

#ifdef __cplusplus
}
#endif

#endif /* HULYNET_H */
