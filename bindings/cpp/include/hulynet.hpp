/*
 * hulynet.hpp: the C++17 binding of hulynet (header-only), a thin layer over hulynet.h.
 *
 *   #include <hulynet.hpp>      // link with -lhulynet -lpthread (CMake: hulynet::cpp)
 *
 * What it adds to the C API, and nothing else (every rule of hulynet.h still holds):
 *
 *  - RAII. Server, Client, Agent, Reference, Connection and Subscription are move-only owners of
 *    one C handle each. The destructor (and close(), which is idempotent) calls the C destroy
 *    function and never throws. A moved-from or closed object is empty: destroying it does
 *    nothing, calling it throws hulynet::error with code HULYNET_ECLOSED. Once a Client is
 *    closed, the references and connections it made answer HULYNET_ECLOSED (the library's rule)
 *    and are freed by their own destructors; its subscriptions are simply dropped.
 *
 *  - Errors. Every C status is checked; a failure throws hulynet::error (a std::runtime_error)
 *    whose code() is the C status (HULYNET_E...) and whose what() is hulynet_last_error() as read
 *    on the calling thread right after the failing call (for HULYNET_EREMOTE: the message the
 *    other side answered with). A std::string_view argument holding a NUL character throws
 *    HULYNET_EINVAL (a C string would silently cut it).
 *
 *  - Strings. Arguments are std::string_view, results std::string. JSON values are JSON text in
 *    std::string / std::string_view ("null", "42", "{\"a\":1}"): the binding has no JSON library
 *    dependency and never parses JSON itself; use the JSON library of your choice on top. An empty
 *    data_json / options_json argument means "none" (the C NULL: JSON null, default options).
 *    JSON text travels byte for byte: the library checks a caller's text once (HULYNET_EJSON when
 *    it does not parse) and the container receives exactly those bytes; what a container answers
 *    or emits reaches the caller's std::string or event handler as written (key order, number
 *    spelling such as 1.10 or 12345678901234567890, whitespace).
 *
 *  - Timeouts are std::chrono::milliseconds (anything implicitly convertible: 500ms, 2s).
 *    hulynet::default_timeout (0) means the library's default: the Client's request timeout.
 *
 *  - Callbacks are std::function objects owned by the C++ object that registered them
 *    (Subscription, Connection, Reference, the log handler slot, the Agent's kind factories) and
 *    released when it is destroyed. They run on library threads; exceptions they throw are caught at the C
 *    boundary and never cross into C. Late calls the C library still makes after a handler was
 *    removed are dropped safely (the binding looks handlers up by id, not by pointer).
 *    From inside any callback you may call non-blocking functions only (the *_async ones,
 *    Container::emit, close/destroy); a blocking call there throws HULYNET_EINVAL, and waiting
 *    on a std::future there may deadlock.
 *
 *  - Asynchronous calls return std::future<std::string> (Client::request_async,
 *    Reference::request_async, Connection::request_async) and std::future<Reference> (Client::get_async); a failure is
 *    stored in the future as hulynet::error.
 *
 *  - Container kinds are C++ classes derived from hulynet::Container, registered on an Agent with
 *    a factory: Agent::builder().kind<MyContainer>("my-kind").build(), or
 *    Agent::create({{"my-kind", [](std::string_view uuid, std::string_view options_json) {
 *        return std::make_unique<MyContainer>(uuid); }}}).
 *    The agent owns each container object (the C container_user) and deletes it when the library
 *    terminates the container (or, if a callback of it is still running then, right after that
 *    callback returns).
 */
#ifndef HULYNET_HPP
#define HULYNET_HPP

#include <hulynet.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace hulynet {

// ============================================================================================
// Version, errors, timeouts
// ============================================================================================

/** The library's version at run time ("0.1.0"). */
inline std::string_view version() noexcept {
    const char *text = hulynet_version_string();
    return text != nullptr ? std::string_view(text) : std::string_view();
}
/** The library's version at run time, as HULYNET_VERSION_NUMBER. */
inline unsigned version_number() noexcept { return hulynet_version_number(); }

/** A failed hulynet call: code() is the C status (HULYNET_E...), what() the detailed message. */
class error : public std::runtime_error {
public:
    error(int code, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(describe(code)) : message), code_(code) {}
    /** The C status, a negative HULYNET_E... code. */
    int code() const noexcept { return code_; }
    /** HULYNET_EAGAIN: refused for now, the call may be made again later. */
    bool retry_later() const noexcept { return code_ == HULYNET_EAGAIN; }
    /** HULYNET_ELIMIT: a limit refuses it for good. */
    bool limit_reached() const noexcept { return code_ == HULYNET_ELIMIT; }
    /** hulynet_strerror(code()): a short static description of the code ("not found"). */
    const char *name() const noexcept { return describe(code_); }

private:
    static const char *describe(int code) noexcept {
        const char *text = hulynet_strerror(code);
        return text != nullptr ? text : "unknown status";
    }
    int code_;
};

/** The library's default (the Client's request timeout, 30 s unless Timeouts::request says). */
inline constexpr std::chrono::milliseconds default_timeout{0};

/** hulynet_timeouts as durations; zero in any field means the protocol's default. */
struct Timeouts {
    std::chrono::milliseconds alive{0};            // a silent client (and its agents) is dropped; 3 s
    std::chrono::milliseconds unused_container{0}; // an unreferenced container stops; 5 s
    std::chrono::milliseconds ping_interval{0};    // how often clients ping; 1 s
    std::chrono::milliseconds request{0};          // the longest any request waits; 30 s
    std::chrono::milliseconds tick{0};             // how often timers are checked; 100 ms

    hulynet_timeouts to_c() const noexcept {
        hulynet_timeouts out = HULYNET_TIMEOUTS_INIT;
        out.tick_ms = tick.count();
        out.alive_ms = alive.count();
        out.unused_container_ms = unused_container.count();
        out.ping_interval_ms = ping_interval.count();
        out.request_ms = request.count();
        return out;
    }
};

using ServerStats = hulynet_server_stats;

/** The signature of the handlers of JSON events (network changes, a container's events). */
using EventHandler = std::function<void(std::string_view json)>;
/** The signature of a Reference's moved handler: the container's uuid and endpoint now. */
using MovedHandler = std::function<void(std::string_view uuid, std::string_view endpoint)>;
/** The signature of a log handler: level is a HULYNET_LOG_* value. */
using LogHandler = std::function<void(int level, std::string_view message)>;

class Server;
class Client;
class Agent;
class AgentBuilder;
class Reference;
class Connection;
class Subscription;
class Container;

/** Makes a container of a kind: `uuid` is the one asked for (or a fresh one), `options_json` the
 *  get options as JSON text. Return the container, or throw to refuse (the get then fails). */
using ContainerFactory =
    std::function<std::unique_ptr<Container>(std::string_view uuid, std::string_view options_json)>;

// ============================================================================================
// Internals
// ============================================================================================

namespace detail {

/** The error of the call that just failed on this thread. */
inline error last_error(int status) {
    const char *message = hulynet_last_error();
    return error(status, message != nullptr ? std::string(message) : std::string());
}

inline int check(int status) {
    if (status < 0) throw last_error(status);
    return status;
}

[[noreturn]] inline void throw_closed(const char *type) {
    throw error(HULYNET_ECLOSED, std::string("hulynet::") + type + " is closed (or moved from)");
}

/** A string the library returned through a `char **out`, freed with hulynet_free. */
class c_string {
public:
    c_string() noexcept = default;
    c_string(const c_string &) = delete;
    c_string &operator=(const c_string &) = delete;
    ~c_string() { hulynet_free(pointer_); }
    char **out() noexcept { return &pointer_; }
    std::string str() const { return pointer_ != nullptr ? std::string(pointer_) : std::string(); }

private:
    char *pointer_ = nullptr;
};

/** A NUL-terminated copy of a string_view argument; a NUL inside it is refused. */
class text {
public:
    text(std::string_view value, const char *name) : value_(value) {
        if (value_.find('\0') != std::string::npos)
            throw error(HULYNET_EINVAL, std::string(name) + " contains a NUL character");
    }
    const char *c_str() const noexcept { return value_.c_str(); }

private:
    std::string value_;
};

/** The same, with an empty value passed as NULL. */
class optional_text {
public:
    optional_text(std::string_view value, const char *name) : value_(value, name), null_(value.empty()) {}
    const char *c_str() const noexcept { return null_ ? nullptr : value_.c_str(); }

private:
    text value_;
    bool null_;
};

inline std::string_view view(const char *text) noexcept {
    return text != nullptr ? std::string_view(text) : std::string_view();
}

inline std::int64_t ms(std::chrono::milliseconds timeout) noexcept {
    return static_cast<std::int64_t>(timeout.count());
}

/** Container-kind factories by id (event, moved and listener handlers are owned by the library
 *  instead: install_handler). The C side gets the id as its `kind_user`, so a start arriving
 *  after the Agent dropped its factories finds nothing instead of freed memory; a call under way
 *  keeps its factory alive (shared_ptr) until it returns. Never destroyed (library threads may
 *  call in during exit). */
template <class T>
class registry {
public:
    static registry &instance() {
        static registry *const the = new registry();
        return *the;
    }

    std::uint64_t add(std::shared_ptr<T> value) {
        std::lock_guard<std::mutex> guard(lock_);
        const std::uint64_t id = ++next_;
        entries_.emplace(id, std::move(value));
        return id;
    }

    std::shared_ptr<T> find(std::uint64_t id) {
        std::lock_guard<std::mutex> guard(lock_);
        auto found = entries_.find(id);
        return found != entries_.end() ? found->second : nullptr;
    }

    /** Drops the entry; the object itself is destroyed outside the lock (it may run user code). */
    void remove(std::uint64_t id) noexcept {
        if (id == 0) return;
        std::shared_ptr<T> dead;
        {
            std::lock_guard<std::mutex> guard(lock_);
            auto found = entries_.find(id);
            if (found == entries_.end()) return;
            dead = std::move(found->second);
            entries_.erase(found);
        }
    }

private:
    registry() = default;
    std::mutex lock_;
    std::uint64_t next_ = 0;
    std::unordered_map<std::uint64_t, std::shared_ptr<T>> entries_;
};

inline void *id_user(std::uint64_t id) noexcept {
    return reinterpret_cast<void *>(static_cast<std::uintptr_t>(id));
}
inline std::uint64_t user_id(void *user) noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(user));
}

/** Handlers handed to the library: the C side gets a heap copy as its `void *user` and deletes
 *  it through the destroy notification (hulynet.h 0.2), once no call of it is in progress and
 *  none will come: no registry, no late call into freed memory. */
template <class Handler>
void destroy_handler(void *user) noexcept {
    delete static_cast<Handler *>(user);
}

/** Calls the Handler at `user` with the C strings as string_views. */
template <class Handler, class... Texts>
void call_handler(void *user, Texts... texts) noexcept {
    try {
        auto *handler = static_cast<Handler *>(user);
        if (handler != nullptr && *handler) (*handler)(view(texts)...);
    } catch (...) {
        // A handler's exception stops here: it must not unwind into the library.
    }
}

/** hulynet_event_fn for EventHandlers. */
inline void event_trampoline(void *user, const char *json) noexcept { call_handler<EventHandler>(user, json); }

/** hulynet_moved_fn for MovedHandlers. */
inline void moved_trampoline(void *user, const char *uuid, const char *endpoint) noexcept {
    call_handler<MovedHandler>(user, uuid, endpoint);
}

/** Hands `handler` to the library through `install(fn_user, destroy)` (an empty handler: NULL
 *  for both, which stops it). The library owns the copy from then on, and deletes it (the
 *  previous one too) through its destroy notification; on failure it is deleted here. */
template <class Handler, class Install>
void install_handler(Handler handler, Install install) {
    if (!handler) {
        check(install(nullptr, nullptr));
        return;
    }
    auto *owned = new Handler(std::move(handler));
    const int status = install(static_cast<void *>(owned), &destroy_handler<Handler>);
    if (status != HULYNET_OK) {
        error failure = last_error(status);
        delete owned; // not taken: the library calls no destroy on failure
        throw failure;
    }
}

/** What a Subscription shares with its Client: whether it is still open. Client::close marks it
 *  closed under the lock before destroying the C client, and a Subscription removes its listener
 *  under the same lock only while the client is open (a destroyed client has dropped its
 *  listeners already), so a destroyed client's handle is never passed to the library again. */
struct client_state {
    std::mutex lock;
    std::atomic<hulynet_client *> handle{nullptr};

    explicit client_state(hulynet_client *client) noexcept : handle(client) {}
    hulynet_client *live() const noexcept { return handle.load(std::memory_order_acquire); }
};
using client_ptr = std::shared_ptr<client_state>;


/** hulynet_result_fn completing a heap-allocated std::promise<std::string>, which it frees. */
inline void result_trampoline(void *user, int status, const char *json) noexcept {
    std::unique_ptr<std::promise<std::string>> promise(static_cast<std::promise<std::string> *>(user));
    if (!promise) return;
    try {
        if (status == HULYNET_OK) {
            promise->set_value(std::string(view(json)));
        } else {
            promise->set_exception(std::make_exception_ptr(error(status, std::string(view(json)))));
        }
    } catch (...) {
        // set_value can only fail on allocation: the future then reports a broken promise.
    }
}

/** Starts an asynchronous call: `start(fn, user)` makes the C call with the completion function
 *  and its user pointer. Returns the future the completion fulfils; throws the call's error. */
template <typename Start>
std::future<std::string> start_async(Start &&start) {
    auto promise = std::make_unique<std::promise<std::string>>();
    std::future<std::string> future = promise->get_future();
    const int status = start(&result_trampoline, static_cast<void *>(promise.get()));
    if (status != HULYNET_OK) throw last_error(status);
    promise.release(); // now owned by the completion
    return future;
}

struct log_slot {
    std::mutex lock;
    std::shared_ptr<LogHandler> handler;

    static log_slot &instance() {
        static log_slot *const the = new log_slot();
        return *the;
    }
};

inline void log_trampoline(void *, int level, const char *message) noexcept {
    try {
        std::shared_ptr<LogHandler> handler;
        {
            log_slot &slot = log_slot::instance();
            std::lock_guard<std::mutex> guard(slot.lock);
            handler = slot.handler;
        }
        if (handler && *handler) (*handler)(level, view(message));
    } catch (...) {
    }
}

struct container_access; // the Agent's C callbacks (below, after Container)

} // namespace detail

/** One structured field of a log record, valid during the handler's call. */
struct LogField {
    std::string_view key;
    std::string_view value;
};

/** Receives a log record: level, logger label, message and its fields (in key order). */
using LogRecordHandler =
    std::function<void(int level, std::string_view logger, std::string_view message, const std::vector<LogField> &fields)>;

namespace detail {

inline void log_record_trampoline(void *user, int level, const char *logger, const char *message,
                                  const hulynet_log_field *fields, size_t count) noexcept {
    try {
        std::vector<LogField> list;
        list.reserve(count);
        for (size_t i = 0; i < count; ++i) list.push_back(LogField{view(fields[i].key), view(fields[i].value)});
        (*static_cast<LogRecordHandler *>(user))(level, view(logger), view(message), list);
    } catch (...) {
    }
}

inline void delete_log_record_handler(void *user) noexcept { delete static_cast<LogRecordHandler *>(user); }

} // namespace detail

// ============================================================================================
// Logging
// ============================================================================================

/** Routes the library's log records of `min_level` and above to `handler` with their fields apart
 *  (hulynet_set_log_record_handler), replacing any handler; an empty one restores the default.
 *  The library owns the handler until it is replaced (then it is destroyed). */
inline void set_log_record_handler(LogRecordHandler handler, int min_level = HULYNET_LOG_WARNING) {
    if (!handler) {
        detail::check(hulynet_set_log_record_handler(nullptr, nullptr, nullptr, min_level));
        return;
    }
    auto *owned = new LogRecordHandler(std::move(handler));
    const int status = hulynet_set_log_record_handler(&detail::log_record_trampoline, owned,
                                                      &detail::delete_log_record_handler, min_level);
    if (status != HULYNET_OK) {
        delete owned;
        throw detail::last_error(status);
    }
}

/** Routes the library's log messages of `min_level` (HULYNET_LOG_*) and above to `handler`;
 *  an empty handler restores the default (warnings and above to stderr). The handler may be
 *  called from several library threads at once. It is kept until replaced. */
inline void set_log_handler(LogHandler handler, int min_level = HULYNET_LOG_WARNING) {
    detail::log_slot &slot = detail::log_slot::instance();
    if (!handler) {
        detail::check(hulynet_set_log_handler(nullptr, nullptr, min_level));
        std::shared_ptr<LogHandler> old;
        std::lock_guard<std::mutex> guard(slot.lock);
        old.swap(slot.handler);
        return;
    }
    auto fresh = std::make_shared<LogHandler>(std::move(handler));
    {
        std::lock_guard<std::mutex> guard(slot.lock);
        fresh.swap(slot.handler);
    }
    // `fresh` now holds the previous handler.
    const int status = hulynet_set_log_handler(&detail::log_trampoline, nullptr, min_level);
    if (status != HULYNET_OK) {
        error failure = detail::last_error(status);
        std::lock_guard<std::mutex> guard(slot.lock);
        fresh.swap(slot.handler);
        throw failure;
    }
}

// ============================================================================================
// Spans (experimental, as in hulynet.h)
// ============================================================================================

/** A finished span of this process's coordinators, agents and clients: a copy, the handler may
 *  keep it. Kinds and status codes are OpenTelemetry's numbers (HULYNET_SPAN_KIND_*,
 *  HULYNET_SPAN_STATUS_*). */
struct Span {
    using Value = std::variant<std::string, std::int64_t, double, bool>;
    struct Attribute {
        std::string key;
        Value value;
    };

    std::string name;
    std::string trace_id;       // 32 lowercase hex digits
    std::string span_id;        // 16
    std::string parent_span_id; // 16, or empty for the root of a trace
    bool parent_is_remote = false;
    int kind = HULYNET_SPAN_KIND_INTERNAL;
    std::int64_t start_ns = 0;  // wall clock, ns since the Unix epoch
    std::int64_t end_ns = 0;
    int status = HULYNET_SPAN_STATUS_UNSET;
    std::string status_message;
    std::vector<Attribute> attributes; // sorted by key

    /** The attribute named `key`, or nullptr. */
    const Value *attribute(std::string_view key) const noexcept {
        for (const Attribute &item : attributes)
            if (item.key == key) return &item.value;
        return nullptr;
    }
};

/** The signature of a span handler. */
using SpanHandler = std::function<void(const Span &span)>;

namespace detail {

inline Span to_span(const hulynet_span &c) {
    Span span;
    span.name = std::string(view(c.name));
    span.trace_id = std::string(view(c.trace_id));
    span.span_id = std::string(view(c.span_id));
    span.parent_span_id = std::string(view(c.parent_span_id));
    span.parent_is_remote = c.parent_is_remote != 0;
    span.kind = c.kind;
    span.start_ns = c.start_ns;
    span.end_ns = c.end_ns;
    span.status = c.status;
    span.status_message = std::string(view(c.status_message));
    span.attributes.reserve(c.attribute_count);
    for (std::size_t i = 0; i < c.attribute_count; ++i) {
        const hulynet_span_attribute &item = c.attributes[i];
        Span::Value value;
        switch (item.type) {
        case HULYNET_SPAN_ATTR_INT: value = static_cast<std::int64_t>(item.int_value); break;
        case HULYNET_SPAN_ATTR_DOUBLE: value = item.double_value; break;
        case HULYNET_SPAN_ATTR_BOOL: value = item.bool_value != 0; break;
        case HULYNET_SPAN_ATTR_STRING: value = std::string(view(item.string_value)); break;
        default: continue; // a type of a newer library
        }
        span.attributes.push_back(Span::Attribute{std::string(view(item.key)), std::move(value)});
    }
    return span;
}

/** hulynet_span_fn for SpanHandlers. */
inline void span_trampoline(void *user, const hulynet_span *span) noexcept {
    try {
        auto *handler = static_cast<SpanHandler *>(user);
        if (handler != nullptr && *handler && span != nullptr) (*handler)(to_span(*span));
    } catch (...) {
        // A handler's exception stops here: it must not unwind into the library.
    }
}

} // namespace detail

/** Hands the spans that end from now on to `handler`, on a callback thread, one call at a time,
 *  in the order they ended; an empty handler removes it. Set it before making the Servers and
 *  Clients to trace (each reads the process's tracer once, when made). A handler slower than
 *  spans end loses spans (hulynet::spans_dropped()), never stalls the network. Throws error
 *  (HULYNET_EINVAL) when the process bootstrapped a Swift tracer of its own. */
inline void set_span_handler(SpanHandler handler) {
    detail::install_handler(std::move(handler), [](void *user, hulynet_destroy_fn destroy) {
        return hulynet_set_span_handler(user != nullptr ? &detail::span_trampoline : nullptr, user, destroy);
    });
}

/** Spans dropped since the process started because the handler's queue was full. */
inline std::uint64_t spans_dropped() noexcept { return hulynet_spans_dropped(); }

/** Sets the number of the library's callback threads, which run every handler of this binding
 *  (0: the default, max(4, 2 x cores), or $HULYNET_CALLBACK_THREADS). Throws error on a count
 *  out of range (1 to 1024). */
inline void set_callback_threads(int count) { detail::check(hulynet_set_callback_threads(count)); }
/** The number of the library's callback threads. */
inline int callback_threads() noexcept { return hulynet_callback_threads(); }

// ============================================================================================
// Server
// ============================================================================================

/** Options of a coordinator elected through etcd (Server::start_elected; docs/HA.md). */
struct ElectionOptions {
    std::string etcd;                           // etcd client URLs, "http://host:port[,...]"
    std::string key;                            // empty: "hulynet/leader"
    std::chrono::milliseconds lease_ttl{0};     // whole seconds; 0: 3 s
    std::string advertise;                      // empty: host:port
};

/** CURVE security (docs/SECURITY.md); keys are Z85 text, 40 characters. */
struct Security {
    std::string secret_key;      // this side's secret key; a client may leave it empty (a key pair per connection)
    std::string server_key;      // clients: the coordinator's public key
    std::string allow_list_path; // servers: the allow list file; empty: any client knowing the key
};

/** A fresh key pair: {public, secret}. */
inline std::pair<std::string, std::string> curve_keypair() {
    char public_key[41] = {0}, secret_key[41] = {0};
    detail::check(hulynet_curve_keypair(public_key, secret_key));
    return {public_key, secret_key};
}

namespace detail {
/** A hulynet_security over a Security's strings (which must outlive it). */
inline hulynet_security to_c(const Security &security) {
    hulynet_security out{};
    out.size = sizeof out;
    out.secret_key = security.secret_key.empty() ? nullptr : security.secret_key.c_str();
    out.server_key = security.server_key.empty() ? nullptr : security.server_key.c_str();
    out.allow_list_path = security.allow_list_path.empty() ? nullptr : security.allow_list_path.c_str();
    return out;
}
} // namespace detail

/** What an elected coordinator does now (a coordinator on its own always leads). */
enum class Role { standby = HULYNET_ROLE_STANDBY, leader = HULYNET_ROLE_LEADER, stopped = HULYNET_ROLE_STOPPED };

/** A network coordinator. */
class Server {
public:
    /** An empty server (see start). */
    Server() noexcept = default;

    /** Starts a coordinator on host:port ("0.0.0.0" or "*": every address; port 0 picks a free
     *  one). Throws HULYNET_EBIND when the address cannot be bound. */
    static Server start(std::string_view host = "127.0.0.1", int port = 0, const Timeouts &timeouts = {}) {
        const hulynet_timeouts c_timeouts = timeouts.to_c();
        hulynet_server *handle = nullptr;
        detail::check(hulynet_server_start(detail::text(host, "host").c_str(), port, &c_timeouts, &handle));
        return Server(handle);
    }

    /** One of several coordinators that stand in for each other: campaigns through etcd and
     *  serves on host:port (fixed) only while it leads. Returns at once, standing by. */
    static Server start_elected(std::string_view host, int port, const ElectionOptions &options,
                                const Timeouts &timeouts = {}, const Security *security = nullptr) {
        const hulynet_timeouts c_timeouts = timeouts.to_c();
        const detail::text etcd(options.etcd, "etcd"), key(options.key, "key"), advertise(options.advertise, "advertise");
        hulynet_election_options c_options{};
        c_options.size = sizeof c_options;
        c_options.etcd = etcd.c_str();
        c_options.key = options.key.empty() ? nullptr : key.c_str();
        c_options.lease_ttl_ms = static_cast<std::int64_t>(options.lease_ttl.count());
        c_options.advertise = options.advertise.empty() ? nullptr : advertise.c_str();
        hulynet_server *handle = nullptr;
        const hulynet_security c_security = security != nullptr ? detail::to_c(*security) : hulynet_security{};
        detail::check(hulynet_server_start_with(detail::text(host, "host").c_str(), port, &c_timeouts, &c_options,
                                                security != nullptr ? &c_security : nullptr, &handle));
        return Server(handle);
    }

    /** A coordinator serving with CURVE (security.secret_key required). */
    static Server start_secure(std::string_view host, int port, const Security &security, const Timeouts &timeouts = {}) {
        const hulynet_timeouts c_timeouts = timeouts.to_c();
        const hulynet_security c_security = detail::to_c(security);
        hulynet_server *handle = nullptr;
        detail::check(hulynet_server_start_with(detail::text(host, "host").c_str(), port, &c_timeouts, nullptr, &c_security, &handle));
        return Server(handle);
    }

    /** Takes ownership of a C handle. */
    explicit Server(hulynet_server *handle) noexcept : handle_(handle) {}
    Server(Server &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Server &operator=(Server &&other) noexcept {
        if (this != &other) {
            close();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;
    ~Server() { close(); }

    /** The port the server is bound to. */
    int port() const { return detail::check(hulynet_server_port(live())); }

    ServerStats stats() const {
        ServerStats out{};
        detail::check(hulynet_server_stats_get(live(), &out));
        return out;
    }

    Role role() const { return static_cast<Role>(detail::check(hulynet_server_role(live()))); }

    /** A JSON object for health checks: {"status":"serving"|"standby"|"stopped",...}. */
    std::string health() const {
        detail::c_string out;
        detail::check(hulynet_server_health(live(), out.out()));
        return out.str();
    }

    /** The server's metrics in the Prometheus text format (docs/OBSERVABILITY.md), for a program
     *  that serves them over its own HTTP server. */
    std::string metrics() const {
        detail::c_string text;
        detail::check(hulynet_server_metrics(live(), text.out()));
        return text.str();
    }

    /** Serves GET /metrics and GET /health over HTTP on host:port (0 picks a free port) until the
     *  server closes; returns the port. Throws HULYNET_EBIND when it cannot be bound. */
    int serve_metrics(std::string_view host = "127.0.0.1", int port = 0) {
        int bound = 0;
        detail::check(hulynet_server_serve_metrics(live(), detail::text(host, "host").c_str(), port, &bound));
        return bound;
    }

    /** Stops the server and frees it; idempotent. */
    void close() noexcept { hulynet_server_destroy(std::exchange(handle_, nullptr)); }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    hulynet_server *handle() const noexcept { return handle_; }
    /** Gives up ownership of the C handle. */
    hulynet_server *release() noexcept { return std::exchange(handle_, nullptr); }

private:
    hulynet_server *live() const {
        if (handle_ == nullptr) detail::throw_closed("Server");
        return handle_;
    }
    hulynet_server *handle_ = nullptr;
};

// ============================================================================================
// Subscription, Connection, Reference
// ============================================================================================

/** A network-change listener of a Client (Client::on_update); destroying it removes the
 *  listener and releases its function. */
class Subscription {
public:
    Subscription() noexcept = default;
    Subscription(Subscription &&other) noexcept
        : client_(std::move(other.client_)), id_(std::exchange(other.id_, 0)) {}
    Subscription &operator=(Subscription &&other) noexcept {
        if (this != &other) {
            reset();
            client_ = std::move(other.client_);
            id_ = std::exchange(other.id_, 0);
        }
        return *this;
    }
    Subscription(const Subscription &) = delete;
    Subscription &operator=(const Subscription &) = delete;
    ~Subscription() { reset(); }

    /** Removes the listener (if its client is still open: a destroyed client removed it) and so
     *  releases the function (the library's destroy notification deletes it); idempotent. */
    void reset() noexcept {
        if (!client_) return;
        {
            std::lock_guard<std::mutex> guard(client_->lock);
            if (hulynet_client *client = client_->live()) hulynet_client_remove_listener(client, id_);
        }
        client_.reset();
        id_ = 0;
    }

    explicit operator bool() const noexcept { return static_cast<bool>(client_); }
    /** The C subscription id (hulynet_client_remove_listener). */
    std::uint64_t id() const noexcept { return id_; }

private:
    friend class Client;
    Subscription(detail::client_ptr client, std::uint64_t id) noexcept : client_(std::move(client)), id_(id) {}

    detail::client_ptr client_;
    std::uint64_t id_ = 0;
};

/** A connection to a container (Reference::connect): requests, and the events it sends. */
class Connection {
public:
    Connection() noexcept = default;
    /** Takes ownership of a C handle. */
    explicit Connection(hulynet_connection *handle) noexcept : handle_(handle) {}
    Connection(Connection &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Connection &operator=(Connection &&other) noexcept {
        if (this != &other) {
            close();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;
    ~Connection() { close(); }

    /** The container's events go to `handler` (on a library thread; keep it short), replacing
     *  the previous one; an empty function stops them. Events that came before the first handler
     *  was set are delivered to it. */
    void on_event(EventHandler handler) {
        hulynet_connection *handle = live();
        detail::install_handler(std::move(handler), [handle](void *user, hulynet_destroy_fn destroy) {
            return hulynet_connection_set_event_handler_v2(
                handle, user != nullptr ? &detail::event_trampoline : nullptr, user, destroy);
        });
    }

    /** A request to the container over this connection; returns its answer (JSON text). */
    std::string request(std::string_view operation, std::string_view data_json = {},
                        std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_connection_request(live(), detail::text(operation, "operation").c_str(),
                                                 detail::optional_text(data_json, "data_json").c_str(),
                                                 detail::ms(timeout), out.out()));
        return out.str();
    }

    /** The same without blocking. */
    std::future<std::string> request_async(std::string_view operation, std::string_view data_json = {},
                                           std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_connection *handle = live();
        const detail::text op(operation, "operation");
        const detail::optional_text data(data_json, "data_json");
        return detail::start_async([&](hulynet_result_fn done, void *user) {
            return hulynet_connection_request_async(handle, op.c_str(), data.c_str(), detail::ms(timeout), done, user);
        });
    }

    /** Disconnects from the container, frees the handle and releases the event handler;
     *  idempotent. */
    void close() noexcept { hulynet_connection_destroy(std::exchange(handle_, nullptr)); }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    hulynet_connection *handle() const noexcept { return handle_; }

private:
    hulynet_connection *live() const {
        if (handle_ == nullptr) detail::throw_closed("Connection");
        return handle_;
    }

    hulynet_connection *handle_ = nullptr;
};

/** A client's hold on a container (Client::get): the container runs while it is held.
 *
 *  It follows its container: when the container's agent dies or leaves (or after a coordinator
 *  restart), the library gets it again on a live agent (the same uuid for a get by uuid; the
 *  same kind, labels and extra otherwise). Requests made meanwhile wait and go again within
 *  their own timeout; Connections reopen where the container went and keep their event
 *  handlers; on_moved tells the holder. */
class Reference {
public:
    Reference() noexcept = default;
    /** Takes ownership of a C handle. */
    explicit Reference(hulynet_reference *handle) noexcept : handle_(handle) {}
    Reference(Reference &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Reference &operator=(Reference &&other) noexcept {
        if (this != &other) {
            close();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Reference(const Reference &) = delete;
    Reference &operator=(const Reference &) = delete;
    ~Reference() { close(); }

    /** The container's uuid, as it is now: after a move, a new one unless it was got by uuid. */
    std::string uuid() const { return accessor(hulynet_reference_uuid(live())); }
    /** The container's endpoint reference (JSON text), as it is now: it changes when the
     *  container moves. */
    std::string endpoint() const { return accessor(hulynet_reference_endpoint(live())); }

    /** `handler(uuid, endpoint)` is told each time the container moved, with its new uuid and
     *  endpoint (on a library thread; keep it short, no blocking calls), replacing the previous
     *  handler; an empty function stops it. Once this returns, the previous one is not called
     *  again. */
    void on_moved(MovedHandler handler) {
        hulynet_reference *handle = live();
        detail::install_handler(std::move(handler), [handle](void *user, hulynet_destroy_fn destroy) {
            return hulynet_reference_set_moved_handler_v2(
                handle, user != nullptr ? &detail::moved_trampoline : nullptr, user, destroy);
        });
    }

    /** A request through the coordinator; returns the container's answer (JSON text). */
    std::string request(std::string_view operation, std::string_view data_json = {},
                        std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_reference_request(live(), detail::text(operation, "operation").c_str(),
                                                detail::optional_text(data_json, "data_json").c_str(),
                                                detail::ms(timeout), out.out()));
        return out.str();
    }

    /** The same without blocking; it waits for a moving container as request() does. */
    std::future<std::string> request_async(std::string_view operation, std::string_view data_json = {},
                                           std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_reference *handle = live();
        const detail::text op(operation, "operation");
        const detail::optional_text data(data_json, "data_json");
        return detail::start_async([&](hulynet_result_fn done, void *user) {
            return hulynet_reference_request_async(handle, op.c_str(), data.c_str(), detail::ms(timeout), done, user);
        });
    }

    /** Opens a connection to the container (routed through its agent, or direct). */
    Connection connect(std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_connection *connection = nullptr;
        detail::check(hulynet_reference_connect(live(), detail::ms(timeout), &connection));
        return Connection(connection);
    }

    /** Gives the container back (it stops after the unused timeout once nobody holds it). The
     *  handle stays valid until close(). */
    void release(std::chrono::milliseconds timeout = default_timeout) {
        detail::check(hulynet_reference_release(live(), detail::ms(timeout)));
    }

    /** Releases the container if still held (without waiting), frees the handle and releases
     *  the moved handler; idempotent. */
    void close() noexcept { hulynet_reference_destroy(std::exchange(handle_, nullptr)); }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    hulynet_reference *handle() const noexcept { return handle_; }

private:
    hulynet_reference *live() const {
        if (handle_ == nullptr) detail::throw_closed("Reference");
        return handle_;
    }
    static std::string accessor(const char *value) {
        if (value == nullptr) throw error(HULYNET_EINVAL, "the reference handle is not live");
        return std::string(value);
    }

    hulynet_reference *handle_ = nullptr;
};

// ============================================================================================
// Container kinds
// ============================================================================================

/** A container of a kind implemented in C++. Derive from it, implement request(), and register
 *  the class on an Agent (AgentBuilder::kind<T>, Agent::create). The agent owns each instance:
 *  the destructor runs when the library terminates the container.
 *
 *  request / connect / disconnect run on library threads, possibly several at once (guard your
 *  state), and must not make blocking hulynet calls (they throw HULYNET_EINVAL there). */
class Container {
public:
    Container() = default;
    Container(const Container &) = delete;
    Container &operator=(const Container &) = delete;
    virtual ~Container() = default;

    /** Answers a request: return the result as JSON text, or throw (the caller then gets
     *  hulynet::error HULYNET_EREMOTE with what() as its message; throw hulynet::error with
     *  HULYNET_EAGAIN or HULYNET_ELIMIT to answer "retry later" or "a limit is reached"). `client_id` is the caller's
     *  id on a connection, empty for a request through the coordinator. */
    virtual std::string request(std::string_view operation, std::string_view data_json,
                                std::string_view client_id) = 0;
    /** A client connected: emit(json, client_id) reaches it until disconnect. */
    virtual void connect(std::string_view client_id) { (void)client_id; }
    virtual void disconnect(std::string_view client_id) { (void)client_id; }

    /** The container's uuid (set once the agent has made it: not yet in the constructor). */
    const std::string &uuid() const noexcept { return uuid_; }

protected:
    /** Sends `json` as an event to connected client `client_id`, or to every connected client
     *  (empty). Returns how many clients it was sent to; throws on failure (HULYNET_ENOTFOUND for
     *  a client that is not connected, HULYNET_EJSON for text that is not JSON, HULYNET_ECLOSED
     *  once the container is terminated). Usable from any thread, from the first callback on. */
    int emit(std::string_view json, std::string_view client_id = {}) {
        hulynet_container *handle = handle_.load(std::memory_order_acquire);
        if (handle == nullptr) throw error(HULYNET_ECLOSED, "the container is not running");
        int delivered = 0;
        detail::check(hulynet_container_emit(handle, detail::optional_text(client_id, "client_id").c_str(),
                                             detail::text(json, "json").c_str(), &delivered));
        return delivered;
    }

    /** The C handle (nullptr before start and after terminate). */
    hulynet_container *container_handle() const noexcept { return handle_.load(std::memory_order_acquire); }

private:
    friend struct detail::container_access;
    std::atomic<hulynet_container *> handle_{nullptr};
    std::string uuid_;
    bool stateless_ = false;
};

namespace detail {

/** The state behind a C container_user: the C++ container and a count of the callbacks running
 *  on it, plus one for "not terminated yet". The last one out deletes it. */
struct container_slot {
    std::unique_ptr<Container> object;
    std::atomic<int> holds{1};

    explicit container_slot(std::unique_ptr<Container> container) noexcept : object(std::move(container)) {}
    void hold() noexcept { holds.fetch_add(1, std::memory_order_relaxed); }
    void drop() noexcept {
        if (holds.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }
};

using kind_registry = registry<ContainerFactory>;

struct container_access {
    static void attach(Container &object, hulynet_container *handle) noexcept {
        object.handle_.store(handle, std::memory_order_release);
    }

    static container_slot *make_slot(std::unique_ptr<Container> object, hulynet_container *handle,
                                     std::string_view uuid, bool stateless) {
        object->uuid_ = std::string(uuid);
        object->stateless_ = stateless;
        object->handle_.store(handle, std::memory_order_release);
        return new container_slot(std::move(object));
    }

    static int start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                     void **container_user) noexcept {
        try {
            auto factory = kind_registry::instance().find(user_id(kind_user));
            if (!factory || !*factory) return HULYNET_ECLOSED; // the Agent is gone
            std::unique_ptr<Container> object = (*factory)(view(uuid), options_json != nullptr ? view(options_json)
                                                                                              : std::string_view("null"));
            if (!object) return HULYNET_EINVAL;
            *container_user = make_slot(std::move(object), container, view(uuid), false);
            return HULYNET_OK;
        } catch (const error &failure) {
            return failure.code() < 0 ? failure.code() : HULYNET_EREMOTE;
        } catch (...) {
            return HULYNET_EREMOTE;
        }
    }

    static void request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                        const char *client_id) noexcept {
        auto *slot = static_cast<container_slot *>(container_user);
        if (slot == nullptr) {
            hulynet_request_fail(request, "no C++ container");
            return;
        }
        slot->hold();
        try {
            const std::string answer = slot->object->request(
                view(operation), data_json != nullptr ? view(data_json) : std::string_view("null"), view(client_id));
            // A reply that is not JSON ends the request as an error (the library says why).
            hulynet_request_reply(request, answer.c_str());
        } catch (const error &failure) {
            // hulynet::error(HULYNET_EAGAIN / HULYNET_ELIMIT, ...) reaches the caller as that status.
            const int code = failure.code();
            hulynet_request_fail_status(request, code == HULYNET_EAGAIN || code == HULYNET_ELIMIT ? code : HULYNET_EREMOTE,
                                        failure.what());
        } catch (const std::exception &failure) {
            hulynet_request_fail(request, failure.what());
        } catch (...) {
            hulynet_request_fail(request, "unknown C++ exception");
        }
        slot->drop();
    }

    static void connect(void *container_user, const char *client_id) noexcept {
        auto *slot = static_cast<container_slot *>(container_user);
        if (slot == nullptr) return;
        slot->hold();
        try {
            slot->object->connect(view(client_id));
        } catch (...) {
        }
        slot->drop();
    }

    static void disconnect(void *container_user, const char *client_id) noexcept {
        auto *slot = static_cast<container_slot *>(container_user);
        if (slot == nullptr) return;
        slot->hold();
        try {
            slot->object->disconnect(view(client_id));
        } catch (...) {
        }
        slot->drop();
    }

    static void terminate(void *container_user) noexcept {
        auto *slot = static_cast<container_slot *>(container_user);
        if (slot == nullptr) return;
        slot->object->handle_.store(nullptr, std::memory_order_release);
        slot->drop(); // deletes the container now, or when its last running callback returns
    }
};

} // namespace detail

// ============================================================================================
// Agent
// ============================================================================================

/** A container kind for Agent::create: its name and its factory. */
struct Kind {
    std::string name;
    ContainerFactory factory;
};

/** Hosts containers of C++ kinds; serve or register it with a Client. */
class Agent {
public:
    Agent() noexcept = default;

    /** An agent hosting `kinds`; an empty uuid makes a random one. */
    static Agent create(std::vector<Kind> kinds, std::string_view uuid = {}) {
        auto &factories = detail::kind_registry::instance();
        Agent agent;
        std::vector<hulynet_container_kind> table;
        table.reserve(kinds.size());
        agent.kinds_.reserve(kinds.size());
        for (Kind &kind : kinds) {
            if (kind.name.find('\0') != std::string::npos)
                throw error(HULYNET_EINVAL, "a kind name contains a NUL character");
            if (!kind.factory) throw error(HULYNET_EINVAL, "kind " + kind.name + " has no factory");
            const std::uint64_t id = factories.add(std::make_shared<ContainerFactory>(std::move(kind.factory)));
            agent.kinds_.push_back(id);
            hulynet_container_kind entry = HULYNET_CONTAINER_KIND_INIT;
            entry.kind = kind.name.c_str();
            entry.kind_user = detail::id_user(id);
            entry.start = &detail::container_access::start;
            entry.request = &detail::container_access::request;
            entry.connect = &detail::container_access::connect;
            entry.disconnect = &detail::container_access::disconnect;
            entry.terminate = &detail::container_access::terminate;
            table.push_back(entry);
        }
        const detail::optional_text id(uuid, "uuid");
        detail::check(hulynet_agent_create(id.c_str(), table.data(), table.size(), &agent.handle_));
        return agent; // on a throw, ~Agent drops the factories
    }

    /** Starts an AgentBuilder: Agent::builder().kind<Counter>("counter").build(). */
    static AgentBuilder builder();

    Agent(Agent &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)), kinds_(std::move(other.kinds_)) {
        other.kinds_.clear();
    }
    Agent &operator=(Agent &&other) noexcept {
        if (this != &other) {
            close();
            handle_ = std::exchange(other.handle_, nullptr);
            kinds_ = std::move(other.kinds_);
            other.kinds_.clear();
        }
        return *this;
    }
    Agent(const Agent &) = delete;
    Agent &operator=(const Agent &) = delete;
    ~Agent() { close(); }

    /** The agent's uuid. */
    std::string uuid() const {
        const char *value = hulynet_agent_uuid(live());
        if (value == nullptr) throw error(HULYNET_EINVAL, "the agent handle is not live");
        return std::string(value);
    }

    /** Adds a pre-existing ("stateless", highly available) container of `kind` under a fixed
     *  uuid, owned by the agent from now on. Call before serving the agent. */
    void add_stateless(std::string_view uuid, std::string_view kind, std::unique_ptr<Container> container) {
        hulynet_agent *handle = live();
        if (!container) throw error(HULYNET_EINVAL, "container is null");
        const detail::text id(uuid, "uuid"), name(kind, "kind");
        Container *object = container.get();
        detail::container_slot *slot =
            detail::container_access::make_slot(std::move(container), nullptr, uuid, true);
        const int status = hulynet_agent_add_stateless(handle, id.c_str(), name.c_str(), slot);
        if (status != HULYNET_OK) {
            error failure = detail::last_error(status);
            slot->drop();
            throw failure;
        }
        detail::container_access::attach(*object, hulynet_agent_stateless_container(handle, id.c_str()));
    }

    /** Runs `kind`'s request handlers on the agent's I/O thread from the next request on (or, with
     *  false, on a library thread of their own, the default). Faster for handlers that answer at
     *  once; such a handler must return quickly, since the client's other traffic waits meanwhile. */
    void set_inline_requests(std::string_view kind, bool inline_requests = true) {
        detail::check(hulynet_agent_set_request_mode(live(), detail::text(kind, "kind").c_str(),
                                                     inline_requests ? HULYNET_EXPERIMENTAL_REQUESTS_INLINE
                                                                     : HULYNET_EXPERIMENTAL_REQUESTS_ON_CALLBACK_THREAD));
    }

    /** Serves `kind`'s containers started from now on each on an endpoint of its own, which
     *  clients connect to directly rather than through the agent (false: routed, the default).
     *  Needs an agent served with Client::serve. */
    void set_direct(std::string_view kind, bool direct = true) {
        detail::check(hulynet_agent_set_direct(live(), detail::text(kind, "kind").c_str(), direct ? 1 : 0));
    }

    /** Stops the agent's containers (their C++ objects are destroyed), unregisters it, frees it
     *  and releases its factories; idempotent. Blocks while it unregisters: do not call it (or
     *  destroy an Agent) from inside a callback. */
    void close() noexcept {
        hulynet_agent_destroy(std::exchange(handle_, nullptr));
        for (std::uint64_t id : kinds_) detail::kind_registry::instance().remove(id);
        kinds_.clear();
    }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    hulynet_agent *handle() const noexcept { return handle_; }

private:
    hulynet_agent *live() const {
        if (handle_ == nullptr) detail::throw_closed("Agent");
        return handle_;
    }
    hulynet_agent *handle_ = nullptr;
    std::vector<std::uint64_t> kinds_;
};

/** Builds an Agent kind by kind. */
class AgentBuilder {
public:
    /** The agent's uuid (default: a random one). */
    AgentBuilder &uuid(std::string_view uuid) {
        uuid_ = std::string(uuid);
        return *this;
    }

    /** A kind made by `factory`. */
    AgentBuilder &kind(std::string name, ContainerFactory factory) {
        kinds_.push_back(Kind{std::move(name), std::move(factory)});
        return *this;
    }

    /** A kind whose containers are `T`s, made with T(uuid, options_json), T(uuid) or T(),
     *  whichever T has. */
    template <class T>
    AgentBuilder &kind(std::string name) {
        static_assert(std::is_base_of<Container, T>::value, "T must derive from hulynet::Container");
        return kind(std::move(name), [](std::string_view uuid, std::string_view options_json) -> std::unique_ptr<Container> {
            if constexpr (std::is_constructible<T, std::string_view, std::string_view>::value) {
                return std::make_unique<T>(uuid, options_json);
            } else if constexpr (std::is_constructible<T, std::string_view>::value) {
                (void)options_json;
                return std::make_unique<T>(uuid);
            } else {
                static_assert(std::is_default_constructible<T>::value,
                              "T needs a constructor T(std::string_view uuid, std::string_view options_json), "
                              "T(std::string_view uuid) or T()");
                (void)uuid;
                (void)options_json;
                return std::make_unique<T>();
            }
        });
    }

    Agent build() const { return Agent::create(kinds_, uuid_); }

private:
    std::vector<Kind> kinds_;
    std::string uuid_;
};

inline AgentBuilder Agent::builder() { return AgentBuilder(); }

// ============================================================================================
// Client
// ============================================================================================

/** A connection to a network coordinator. */
class Client {
public:
    Client() noexcept = default;

    /** Connects to the coordinator at host:port in the background (see wait). */
    static Client connect(std::string_view host, int port, const Timeouts &timeouts = {}) {
        const hulynet_timeouts c_timeouts = timeouts.to_c();
        hulynet_client *handle = nullptr;
        detail::check(hulynet_client_connect(detail::text(host, "host").c_str(), port, &c_timeouts, &handle));
        return Client(handle);
    }

    /** Connects to whichever serves of several coordinators, "host:port[,host:port...]", and
     *  follows it when another takes over (see Server::start_elected). */
    static Client connect_network(std::string_view network, const Timeouts &timeouts = {}, const Security *security = nullptr) {
        const hulynet_timeouts c_timeouts = timeouts.to_c();
        const hulynet_security c_security = security != nullptr ? detail::to_c(*security) : hulynet_security{};
        hulynet_client *handle = nullptr;
        detail::check(hulynet_client_connect_with(detail::text(network, "network").c_str(), &c_timeouts,
                                                  security != nullptr ? &c_security : nullptr, &handle));
        return Client(handle);
    }

    /** Connects with CURVE (security.server_key required) to "host:port[,host:port...]". */
    static Client connect_secure(std::string_view network, const Security &security, const Timeouts &timeouts = {}) {
        return connect_network(network, timeouts, &security);
    }

    /** Takes ownership of a C handle (destroyed if this throws). */
    explicit Client(hulynet_client *handle) : state_(own(handle)) {}
    Client(Client &&other) noexcept = default;
    Client &operator=(Client &&other) noexcept {
        if (this != &other) {
            close();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    ~Client() { close(); }

    /** Waits until the coordinator has answered hello. */
    void wait(std::chrono::milliseconds timeout = default_timeout) const {
        detail::check(hulynet_client_wait(live(), detail::ms(timeout)));
    }

    /** The client's id on the network. */
    std::string id() const {
        const char *value = hulynet_client_id(live());
        if (value == nullptr) throw error(HULYNET_EINVAL, "the client handle is not live");
        return std::string(value);
    }

    /** `al`: a JSON array of {agentId, endpoint, kinds, containers}. */
    std::string agents(std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_client_agents(live(), detail::ms(timeout), out.out()));
        return out.str();
    }

    /** `ak`: a JSON array of container kinds. */
    std::string kinds(std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_client_kinds(live(), detail::ms(timeout), out.out()));
        return out.str();
    }

    /** `cl`: a JSON array of container records, of `kind` or (empty) all. */
    std::string list(std::string_view kind = {}, std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_client_list(live(), detail::optional_text(kind, "kind").c_str(), detail::ms(timeout),
                                          out.out()));
        return out.str();
    }

    /** `gg`: get-or-start a container of `kind`; `options_json` is empty or a JSON object
     *  {uuid?, labels?: [...], extra?: {...}}. The Reference holds the container. */
    Reference get(std::string_view kind, std::string_view options_json = {},
                  std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_reference *reference = nullptr;
        detail::check(hulynet_client_get(live(), detail::text(kind, "kind").c_str(),
                                         detail::optional_text(options_json, "options_json").c_str(),
                                         detail::ms(timeout), &reference));
        return Reference(reference);
    }

    /** get without blocking. */
    std::future<Reference> get_async(std::string_view kind, std::string_view options_json = {},
                                     std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_client *handle = live();
        const detail::text name(kind, "kind");
        const detail::optional_text options(options_json, "options_json");
        auto promise = std::make_unique<std::promise<Reference>>();
        std::future<Reference> future = promise->get_future();
        const int status = hulynet_client_get_async(handle, name.c_str(), options.c_str(), detail::ms(timeout),
                                                    &get_done, promise.get());
        if (status != HULYNET_OK) throw detail::last_error(status);
        promise.release(); // now owned by the completion
        return future;
    }

    /** `cs`: a request to container `uuid` through the coordinator; returns its answer. */
    std::string request(std::string_view uuid, std::string_view operation, std::string_view data_json = {},
                        std::chrono::milliseconds timeout = default_timeout) const {
        detail::c_string out;
        detail::check(hulynet_client_request(live(), detail::text(uuid, "uuid").c_str(),
                                             detail::text(operation, "operation").c_str(),
                                             detail::optional_text(data_json, "data_json").c_str(),
                                             detail::ms(timeout), out.out()));
        return out.str();
    }

    /** request without blocking. */
    std::future<std::string> request_async(std::string_view uuid, std::string_view operation,
                                           std::string_view data_json = {},
                                           std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_client *handle = live();
        const detail::text target(uuid, "uuid"), op(operation, "operation");
        const detail::optional_text data(data_json, "data_json");
        return detail::start_async([&](hulynet_result_fn done, void *user) {
            return hulynet_client_request_async(handle, target.c_str(), op.c_str(), data.c_str(), detail::ms(timeout),
                                                done, user);
        });
    }

    /** Calls `handler` with every network change (a NetworkEvent JSON object), on a library
     *  thread, until the returned Subscription is destroyed. */
    [[nodiscard]] Subscription on_update(EventHandler handler) const {
        hulynet_client *handle = live();
        if (!handler) throw error(HULYNET_EINVAL, "handler is empty");
        std::uint64_t subscription = 0;
        detail::install_handler(std::move(handler), [&](void *user, hulynet_destroy_fn destroy) {
            return hulynet_client_add_listener_v2(handle, &detail::event_trampoline, user, destroy, &subscription);
        });
        return Subscription(state_, subscription);
    }

    /** Opens the agent's endpoint on 0.0.0.0:port (0 picks one), advertised as
     *  `advertised_host`, and registers it with the network. */
    void serve(Agent &agent, std::string_view advertised_host = "127.0.0.1", int port = 0,
               std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_client *handle = live();
        if (!agent) detail::throw_closed("Agent");
        detail::check(hulynet_client_serve_agent(handle, agent.handle(),
                                                 detail::text(advertised_host, "advertised_host").c_str(), port,
                                                 detail::ms(timeout)));
    }

    /** Registers the agent without an endpoint (its containers are reached through the
     *  coordinator only). */
    void register_agent(Agent &agent, std::chrono::milliseconds timeout = default_timeout) const {
        hulynet_client *handle = live();
        if (!agent) detail::throw_closed("Agent");
        detail::check(hulynet_client_register_agent(handle, agent.handle(), detail::ms(timeout)));
    }

    /** Releases the client's references, closes its connections, unregisters its agents,
     *  disconnects and frees it; idempotent. The references and connections made through it then
     *  answer HULYNET_ECLOSED (and are freed by their own destructors); its subscriptions stop. */
    void close() noexcept {
        if (!state_) return;
        hulynet_client *handle = nullptr;
        {
            std::lock_guard<std::mutex> guard(state_->lock);
            handle = state_->handle.exchange(nullptr, std::memory_order_acq_rel);
        }
        hulynet_client_destroy(handle);
        state_.reset();
    }

    explicit operator bool() const noexcept { return state_ && state_->live() != nullptr; }
    hulynet_client *handle() const noexcept { return state_ ? state_->live() : nullptr; }

private:
    /** hulynet_reference_fn completing a heap-allocated std::promise<Reference>, which it frees. */
    static void get_done(void *user, int status, hulynet_reference *reference, const char *message) noexcept {
        std::unique_ptr<std::promise<Reference>> promise(static_cast<std::promise<Reference> *>(user));
        Reference owned(reference); // freed here if it cannot be handed over
        if (!promise) return;
        try {
            if (status == HULYNET_OK) {
                promise->set_value(std::move(owned));
            } else {
                promise->set_exception(std::make_exception_ptr(error(status, std::string(detail::view(message)))));
            }
        } catch (...) {
        }
    }

    static detail::client_ptr own(hulynet_client *handle) {
        try {
            return std::make_shared<detail::client_state>(handle);
        } catch (...) {
            hulynet_client_destroy(handle);
            throw;
        }
    }

    hulynet_client *live() const {
        hulynet_client *handle = state_ ? state_->live() : nullptr;
        if (handle == nullptr) detail::throw_closed("Client");
        return handle;
    }

    detail::client_ptr state_;
};

} // namespace hulynet

#endif // HULYNET_HPP
