// Events: connections and their handlers, Container::emit, connect/disconnect callbacks,
// Client::on_update subscriptions, exceptions in handlers.
#include "test_kinds.hpp"

using namespace test;

TEST(connection_events_and_requests) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect(3s);
    REQUIRE(static_cast<bool>(connection));
    const std::string me = net.client.id();
    // connect() ran in the container, which welcomed this client before a handler was set: the
    // event waits for the first handler.
    CHECK(wait_until([&] { return net.stats.is_connected(me); }));
    Inbox inbox;
    connection.on_event(inbox.handler());
    CHECK(inbox.wait_for("\"welcome\":" + quote(me)));

    // Over a connection the container sees the caller's id.
    CHECK(contains(connection.request("whoami"), "\"client\":" + quote(me)));
    CHECK_EQ(connection.request("echo", "{\"x\":[1]}", 2s), std::string("{\"x\":[1]}"));
    CHECK_EQ(connection.request("emit_all", "{\"n\":1}"), std::string("{\"delivered\":1}"));
    CHECK(inbox.wait_for("{\"n\":1}"));
    CHECK_EQ(connection.request("emit_self", "{\"n\":2}"), std::string("{\"delivered\":1}"));
    CHECK(inbox.wait_for("{\"n\":2}"));
    CHECK_EQ(connection.request("emit_to", quote(me)), std::string("{\"delivered\":1}"));
    CHECK(inbox.wait_for("\"to you\""));
    CHECK_THROWS_CODE(connection.request("fail", "3"), HULYNET_EREMOTE, "deliberate failure: 3");
    // Errors by status, not text: a container's EAGAIN / ELIMIT reach the caller as such; its
    // other errors (even one worded as the network's) are HULYNET_EREMOTE.
    CHECK_THROWS_CODE(connection.request("busy"), HULYNET_EAGAIN, "busy, retry later");
    CHECK_THROWS_CODE(ref.request("busy"), HULYNET_EAGAIN, "busy, retry later");
    CHECK_THROWS_CODE(connection.request("too_big"), HULYNET_ELIMIT, "too much");
    CHECK_THROWS_CODE(connection.request("says_not_found"), HULYNET_EREMOTE, "Container abc not found");
    try {
        (void)ref.request("busy");
    } catch (const hulynet::error &failure) {
        CHECK(failure.retry_later());
        CHECK(!failure.limit_reached());
        CHECK_EQ(std::string(failure.name()), std::string("retry later"));
    }
}

TEST(emit_errors_reach_the_caller) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    // emit to a client that is not connected: ENOTFOUND inside the container, which the request
    // reports as its failure.
    CHECK_THROWS_CODE(connection.request("emit_to", "\"nobody\""), HULYNET_EREMOTE, "not connected");
    // emit of text that is not JSON.
    CHECK_THROWS_CODE(connection.request("emit_bad"), HULYNET_EREMOTE, "json");
    // Through the coordinator (no caller id) emit_self means "everyone connected".
    CHECK_EQ(ref.request("emit_self", "5"), std::string("{\"delivered\":1}"));
}

TEST(broadcast_to_several_clients) {
    Network net;
    hulynet::Client other = connect_client(net.server);
    hulynet::Reference mine = net.client.get("echo", R"({"uuid":"room"})");
    hulynet::Reference theirs = other.get("echo", R"({"uuid":"room"})");
    hulynet::Connection a = mine.connect();
    hulynet::Connection b = theirs.connect();
    Inbox inbox_a, inbox_b;
    a.on_event(inbox_a.handler());
    b.on_event(inbox_b.handler());
    CHECK(wait_until([&] { return net.stats.connects.load() == 2; }));
    CHECK_EQ(a.request("emit_all", "\"hello all\""), std::string("{\"delivered\":2}"));
    CHECK(inbox_a.wait_for("hello all"));
    CHECK(inbox_b.wait_for("hello all"));
    // The welcome of each went to that client only.
    CHECK(inbox_a.wait_for(net.client.id()));
    CHECK(!inbox_a.has(other.id()));
    CHECK(!inbox_b.has(net.client.id()));

    // Closing a connection disconnects that client from the container.
    b.close();
    CHECK(wait_until([&] { return net.stats.disconnects.load() == 1; }));
    CHECK(!net.stats.is_connected(other.id()));
    CHECK_EQ(a.request("emit_all", "\"after\""), std::string("{\"delivered\":1}"));
    CHECK(inbox_a.wait_for("after"));
}

TEST(replacing_and_clearing_the_event_handler) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    Inbox first, second;
    connection.on_event(first.handler());
    CHECK(first.wait_for("welcome"));
    connection.on_event(second.handler());
    (void)connection.request("emit_all", "\"one\"");
    CHECK(second.wait_for("one"));
    CHECK(!first.has("one"));
    connection.on_event(nullptr); // no handler: events are dropped
    (void)connection.request("emit_all", "\"two\"");
    connection.on_event(second.handler());
    (void)connection.request("emit_all", "\"three\"");
    CHECK(second.wait_for("three"));
    CHECK(!second.has("two"));
}

TEST(handlers_are_freed_by_the_librarys_destroy_notification) {
    // The library owns each handler handed to it and deletes it (what it captured too) once it
    // is replaced, or its object closed, and no call of it is in progress.
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    auto token = std::make_shared<int>(1);
    connection.on_event([token](std::string_view) {});
    CHECK_EQ(token.use_count(), 2L);
    connection.on_event(nullptr);
    CHECK_EQ(token.use_count(), 1L);
    connection.on_event([token](std::string_view) {});
    ref.on_moved([token](std::string_view, std::string_view) {});
    {
        hulynet::Subscription subscription = net.client.on_update([token](std::string_view) {});
        CHECK_EQ(token.use_count(), 4L);
    }
    CHECK_EQ(token.use_count(), 3L);
    connection.close();
    CHECK_EQ(token.use_count(), 2L);
    ref.close();
    CHECK_EQ(token.use_count(), 1L);
}

TEST(handler_exceptions_stay_in_cpp) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    std::atomic<int> calls{0};
    connection.on_event([&](std::string_view) {
        ++calls;
        throw std::runtime_error("thrown by an event handler");
    });
    CHECK(wait_until([&] { return calls.load() == 1; })); // the welcome
    (void)connection.request("emit_all", "1");
    (void)connection.request("emit_all", "2");
    CHECK(wait_until([&] { return calls.load() == 3; }));
    CHECK_EQ(connection.request("echo", "4"), std::string("4"));

    std::atomic<int> updates{0};
    hulynet::Subscription subscription = net.client.on_update([&](std::string_view) {
        ++updates;
        throw 17;
    });
    hulynet::Reference another = net.client.get("echo", R"({"uuid":"another"})");
    CHECK(wait_until([&] { return updates.load() >= 1; }));
    CHECK_EQ(another.request("echo", "5"), std::string("5"));
}

TEST(on_update_network_events) {
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    Inbox inbox;
    hulynet::Subscription subscription = client.on_update(inbox.handler());
    REQUIRE(static_cast<bool>(subscription));
    CHECK(subscription.id() != 0);

    EchoStats stats;
    hulynet::Client host = connect_client(server);
    hulynet::Agent agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
    host.serve(agent);
    CHECK(inbox.wait_for(agent.uuid())); // the agent was added
    CHECK(inbox.has("\"agents\""));
    hulynet::Reference ref = client.get("echo");
    const std::string uuid = ref.uuid();
    CHECK(inbox.wait_for("\"uuid\":" + quote(uuid))); // the container was added
    ref.release();
    // Removed once unused: an event with event 2 for that container.
    CHECK(wait_until([&] {
        for (const std::string &event : inbox.items())
            if (contains(event, uuid) && contains(event, "\"event\":2")) return true;
        return false;
    }));
}

TEST(subscription_reset_stops_delivery) {
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    Inbox stopped, witness;
    hulynet::Subscription a = client.on_update(stopped.handler());
    hulynet::Subscription b = client.on_update(witness.handler());
    EchoStats stats;
    {
        hulynet::Agent first = hulynet::Agent::create({{"echo", echo_factory(stats)}}, "first-agent");
        client.serve(first);
        CHECK(stopped.wait_for("first-agent"));
        CHECK(witness.wait_for("first-agent"));
    }
    a.reset();
    a.reset(); // idempotent
    CHECK(!a);
    hulynet::Agent second = hulynet::Agent::create({{"echo", echo_factory(stats)}}, "second-agent");
    client.serve(second);
    CHECK(witness.wait_for("second-agent"));
    CHECK(!stopped.has("second-agent"));
    // A subscription is removed when it goes out of scope, too.
    {
        Inbox scoped;
        hulynet::Subscription s = client.on_update(scoped.handler());
    }
    CHECK_THROWS_CODE(client.on_update(nullptr), HULYNET_EINVAL, "empty");
}

TEST(late_calls_after_removal_are_dropped) {
    // The library may still call a listener after hulynet_client_remove_listener returned (its
    // removal is queued): here each subscription removes the other from its callback, while the
    // library is delivering the same event to both. The removed one must not be called, and its
    // function (with what it captured) is gone at once.
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    struct Side {
        hulynet::Subscription subscription;
        std::atomic<int> calls_after_removal{0};
        std::atomic<bool> removed{false};
        std::atomic<bool> done{false};
        std::atomic<bool> reset_done{false};
    };
    Side a, b;
    auto handler = [](Side &me, Side &other) {
        auto captured = std::make_shared<std::string>(1000, 'c'); // freed with the function
        return [&me, &other, captured](std::string_view) {
            if (me.removed) ++me.calls_after_removal;
            if (captured->size() != 1000) ++me.calls_after_removal;
            if (!me.done.exchange(true) && !other.removed.exchange(true)) {
                other.subscription.reset();
                other.reset_done = true;
            }
        };
    };
    a.subscription = client.on_update(handler(a, b));
    b.subscription = client.on_update(handler(b, a));
    EchoStats stats;
    hulynet::Agent agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
    client.serve(agent); // a network event for both
    CHECK(wait_until([&] { return a.reset_done.load() || b.reset_done.load(); }));
    hulynet::Reference ref = client.get("echo"); // more events
    CHECK(wait_until([&] { return contains(client.list(), ref.uuid()); }));
    CHECK_EQ(a.calls_after_removal.load(), 0);
    CHECK_EQ(b.calls_after_removal.load(), 0);
}

TEST(subscription_and_connection_outlive_client) {
    Network net;
    Inbox updates, events;
    hulynet::Subscription subscription = net.client.on_update(updates.handler());
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    connection.on_event(events.handler());
    CHECK(events.wait_for("welcome"));
    net.agent.close();
    net.client.close();
    CHECK_THROWS_CODE(connection.request("echo", "1"), HULYNET_ECLOSED, "closed");
    CHECK_THROWS_CODE(connection.on_event(events.handler()), HULYNET_ECLOSED, "closed");
    subscription.reset();
    connection.close();
}

HULYNET_TEST_MAIN
