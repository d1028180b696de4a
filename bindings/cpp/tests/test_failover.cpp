// References follow their container when the client serving its agent leaves: Reference::on_moved,
// uuid() and endpoint() after the move, a request made while it moves, the same Connection and
// event handler afterwards, and no agent of the kind left.
#include "test_kinds.hpp"

using namespace test;

namespace {

/** What an on_moved handler was told. */
class Moves {
public:
    hulynet::MovedHandler handler() {
        return [this](std::string_view uuid, std::string_view endpoint) {
            std::lock_guard<std::mutex> guard(lock_);
            ++count_;
            uuid_ = std::string(uuid);
            endpoint_ = std::string(endpoint);
        };
    }
    int count() {
        std::lock_guard<std::mutex> guard(lock_);
        return count_;
    }
    std::string uuid() {
        std::lock_guard<std::mutex> guard(lock_);
        return uuid_;
    }
    std::string endpoint() {
        std::lock_guard<std::mutex> guard(lock_);
        return endpoint_;
    }

private:
    std::mutex lock_;
    int count_ = 0;
    std::string uuid_, endpoint_;
};

/** Holds the starts of a factory while closed (at most 3 s), so that a test can act while a
 *  container is moving, before the move completes. */
class Gate {
public:
    void set_closed(bool closed) { closed_ = closed; }
    int entered() const { return entered_.load(); }
    hulynet::ContainerFactory around(hulynet::ContainerFactory factory) {
        return [this, factory](std::string_view uuid, std::string_view options) {
            ++entered_;
            (void)wait_until([this] { return !closed_.load(); }, 3s);
            return factory(uuid, options);
        };
    }

private:
    std::atomic<bool> closed_{false};
    std::atomic<int> entered_{0};
};

/** The agentId of an endpoint reference (JSON text). */
std::string agent_of(const std::string &endpoint) {
    const std::string key = "\"agentId\":\"";
    const std::size_t start = endpoint.find(key);
    if (start == std::string::npos) return {};
    const std::size_t from = start + key.size();
    return endpoint.substr(from, endpoint.find('"', from) - from);
}

/** The record of container `uuid` in a `cl` answer: the top-level object naming it, or "". */
std::string record_of(const std::string &list, const std::string &uuid) {
    const std::string needle = "\"uuid\":" + quote(uuid);
    int depth = 0;
    bool in_string = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const char c = list[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{') {
            if (depth++ == 0) start = i;
        } else if (c == '}' && --depth == 0) {
            std::string record = list.substr(start, i - start + 1);
            if (contains(record, needle)) return record;
        }
    }
    return {};
}

/** A server, a user client, and two clients to serve an agent of kind "echo" each: A's at once,
 *  B's by serve_b, so that what the user gets first starts on A. */
struct TwoHosts {
    EchoStats stats_a, stats_b;
    hulynet::Server server = start_server();
    hulynet::Client host_a = connect_client(server);
    hulynet::Client host_b = connect_client(server);
    hulynet::Client user = connect_client(server);
    hulynet::Agent agent_a, agent_b;

    TwoHosts() {
        agent_a = hulynet::Agent::create({{"echo", echo_factory(stats_a)}});
        host_a.serve(agent_a);
    }
    void serve_b(hulynet::ContainerFactory factory) {
        agent_b = hulynet::Agent::create({{"echo", std::move(factory)}});
        host_b.serve(agent_b);
    }
};

} // namespace

TEST(reference_follows_its_container) {
    Gate gate; // outlives agent B, whose factory uses it
    TwoHosts net;
    hulynet::Client &user = net.user;
    hulynet::Reference by_uuid = user.get("echo", R"({"uuid":"failover-2"})");
    hulynet::Reference by_labels = user.get("echo", R"({"labels":["failover-labels"]})");
    const std::string old_label_uuid = by_labels.uuid();
    CHECK_EQ(agent_of(by_uuid.endpoint()), net.agent_a.uuid());
    CHECK_EQ(agent_of(by_labels.endpoint()), net.agent_a.uuid());
    net.serve_b(gate.around(echo_factory(net.stats_b)));

    hulynet::Connection conn_uuid = by_uuid.connect();
    hulynet::Connection conn_labels = by_labels.connect();
    Inbox events_uuid, events_labels;
    conn_uuid.on_event(events_uuid.handler());
    conn_labels.on_event(events_labels.handler());
    Moves moved_uuid, moved_labels;
    by_uuid.on_moved(moved_uuid.handler());
    by_labels.on_moved(moved_labels.handler());
    CHECK(events_uuid.wait_for("welcome") && events_labels.wait_for("welcome"));

    // A's client leaves (unregistering agent A): both containers move to B, whose starts wait at
    // the gate, so the requests below are made while the containers are moving.
    gate.set_closed(true);
    net.host_a.close();
    REQUIRE(wait_until([&] { return gate.entered() > 0; }, 3s));
    std::future<std::string> held_uuid = conn_uuid.request_async("whoami", {}, 3s);
    std::future<std::string> held_labels = conn_labels.request_async("whoami", {}, 3s);
    CHECK(moved_uuid.count() == 0 && moved_labels.count() == 0);
    gate.set_closed(false);

    CHECK(wait_until([&] { return moved_uuid.count() == 1 && moved_labels.count() == 1; }, 3s));
    REQUIRE(held_uuid.wait_for(5s) == std::future_status::ready);
    REQUIRE(held_labels.wait_for(5s) == std::future_status::ready);
    CHECK(contains(held_uuid.get(), "\"uuid\":\"failover-2\""));
    const std::string label_answer = held_labels.get();
    CHECK_EQ(net.stats_b.made.load(), 2);
    CHECK(wait_until([&] { return net.stats_a.destroyed.load() == 2; }));

    // The uuid reference: the same uuid, on B.
    CHECK_EQ(moved_uuid.uuid(), std::string("failover-2"));
    CHECK_EQ(by_uuid.uuid(), std::string("failover-2"));
    CHECK_EQ(by_uuid.endpoint(), moved_uuid.endpoint());
    CHECK_EQ(agent_of(moved_uuid.endpoint()), net.agent_b.uuid());

    // The label reference: a new container, with the same labels, on B.
    const std::string label_uuid = by_labels.uuid();
    CHECK(label_uuid != old_label_uuid && !label_uuid.empty());
    CHECK_EQ(moved_labels.uuid(), label_uuid);
    CHECK_EQ(by_labels.endpoint(), moved_labels.endpoint());
    CHECK_EQ(agent_of(moved_labels.endpoint()), net.agent_b.uuid());
    CHECK(contains(label_answer, "\"uuid\":" + quote(label_uuid)));
    const std::string list = user.list("echo");
    CHECK(contains(record_of(list, label_uuid), R"("labels":["failover-labels"])"));
    CHECK(!contains(list, old_label_uuid));

    // Requests through the references and over the same Connections reach B; the containers'
    // events reach the same handlers (B's welcome on the reopened connection, then an emit).
    const int before = net.stats_b.requests.load();
    CHECK(contains(by_uuid.request("whoami"), "\"client\":null"));
    CHECK(contains(by_labels.request("options"), "failover-labels"));
    CHECK_EQ(conn_uuid.request("emit_self", "\"after-uuid\""), std::string("{\"delivered\":1}"));
    CHECK_EQ(conn_labels.request("emit_self", "\"after-labels\""), std::string("{\"delivered\":1}"));
    CHECK_EQ(net.stats_b.requests.load() - before, 4);
    CHECK(events_uuid.wait_for("after-uuid") && events_labels.wait_for("after-labels"));
    CHECK(!events_uuid.has("after-labels") && !events_labels.has("after-uuid"));
    CHECK_EQ(events_uuid.items().size(), static_cast<std::size_t>(3)); // A's welcome, B's welcome, the emit
    CHECK(net.stats_b.is_connected(user.id()));
    CHECK_EQ(moved_uuid.count(), 1); // told once per move
    CHECK_EQ(moved_labels.count(), 1);

    // No agent of the kind left: a request over a connection is held for its time, then fails
    // saying why (the same through the reference: test_lifetime's destruction_orders). It is
    // made once the client has heard that the container is gone (its listeners hear it first).
    Inbox updates;
    hulynet::Subscription subscription = user.on_update(updates.handler());
    net.host_b.close();
    CHECK(updates.wait_for(label_uuid, 3s));
    CHECK_THROWS_CODE(conn_labels.request("echo", "1", 500ms), HULYNET_ENOTFOUND, "No suitable agents");
    CHECK_EQ(moved_labels.count(), 1);
}

TEST(moved_handler_lifetime) {
    Network net;
    hulynet::Reference reference = net.client.get("echo");
    auto token = std::make_shared<int>(0); // counts the handler copies still held
    auto handler = [token](std::string_view, std::string_view) {};

    reference.on_moved(handler);
    CHECK_EQ(token.use_count(), 3L); // token, handler, the registered copy
    reference.on_moved(handler);     // replaces: the first copy is dropped
    CHECK_EQ(token.use_count(), 3L);
    reference.on_moved(nullptr); // stops and drops it
    CHECK_EQ(token.use_count(), 2L);

    // Moving a Reference takes its handler along; move-assignment drops the target's.
    reference.on_moved(handler);
    hulynet::Reference moved(std::move(reference));
    CHECK_EQ(token.use_count(), 3L);
    auto other_token = std::make_shared<int>(0);
    hulynet::Reference target = net.client.get("echo", R"({"uuid":"lifetime-target"})");
    target.on_moved([other_token](std::string_view, std::string_view) {});
    CHECK_EQ(other_token.use_count(), 2L);
    target = std::move(moved);
    CHECK_EQ(other_token.use_count(), 1L);
    CHECK_EQ(token.use_count(), 3L);
    target.close();
    CHECK_EQ(token.use_count(), 2L);

    CHECK_THROWS_CODE(reference.on_moved(handler), HULYNET_ECLOSED, "Reference");
    CHECK_EQ(token.use_count(), 2L);
    // A closed client's reference refuses a handler and keeps nothing.
    hulynet::Reference orphan = net.client.get("echo");
    net.client.close();
    CHECK_THROWS_CODE(orphan.on_moved(handler), HULYNET_ECLOSED, "closed");
    CHECK_EQ(token.use_count(), 2L);
}

TEST(moved_handler_exceptions_stay_in_cpp) {
    TwoHosts net;
    hulynet::Reference reference = net.user.get("echo", R"({"uuid":"failover-3"})");
    net.serve_b(echo_factory(net.stats_b));
    std::atomic<int> calls{0};
    reference.on_moved([&](std::string_view, std::string_view) {
        ++calls;
        throw std::runtime_error("thrown by a moved handler");
    });
    net.host_a.close();
    CHECK(wait_until([&] { return calls.load() == 1; }, 3s));
    CHECK_EQ(reference.request("echo", "7"), std::string("7"));
    CHECK_EQ(agent_of(reference.endpoint()), net.agent_b.uuid());
}

HULYNET_TEST_MAIN
