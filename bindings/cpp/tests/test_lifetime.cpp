// Move semantics, closed and moved-from objects, destruction in every order.
#include "test_kinds.hpp"

#include <type_traits>

using namespace test;

// Every handle type is move-only.
template <class T>
constexpr bool move_only = std::is_nothrow_move_constructible<T>::value && std::is_nothrow_move_assignable<T>::value &&
                           !std::is_copy_constructible<T>::value && !std::is_copy_assignable<T>::value &&
                           std::is_nothrow_destructible<T>::value && std::is_nothrow_default_constructible<T>::value;
static_assert(move_only<hulynet::Server>, "Server");
static_assert(move_only<hulynet::Client>, "Client");
static_assert(move_only<hulynet::Agent>, "Agent");
static_assert(move_only<hulynet::Reference>, "Reference");
static_assert(move_only<hulynet::Connection>, "Connection");
static_assert(move_only<hulynet::Subscription>, "Subscription");
static_assert(!std::is_copy_constructible<hulynet::Container>::value, "Container");

TEST(empty_objects) {
    hulynet::Server server;
    hulynet::Client client;
    hulynet::Agent agent;
    hulynet::Reference reference;
    hulynet::Connection connection;
    hulynet::Subscription subscription;
    CHECK(!server && !client && !agent && !reference && !connection && !subscription);
    CHECK_THROWS_CODE(server.port(), HULYNET_ECLOSED, "Server");
    CHECK_THROWS_CODE(client.kinds(), HULYNET_ECLOSED, "Client");
    CHECK_THROWS_CODE(client.id(), HULYNET_ECLOSED, "Client");
    CHECK_THROWS_CODE(agent.uuid(), HULYNET_ECLOSED, "Agent");
    CHECK_THROWS_CODE(reference.request("echo"), HULYNET_ECLOSED, "Reference");
    CHECK_THROWS_CODE(reference.uuid(), HULYNET_ECLOSED, "Reference");
    CHECK_THROWS_CODE(connection.request("echo"), HULYNET_ECLOSED, "Connection");
    CHECK_THROWS_CODE(connection.request_async("echo"), HULYNET_ECLOSED, "Connection");
    CHECK(client.handle() == nullptr);
    server.close();
    client.close();
    agent.close();
    reference.close();
    connection.close();
    subscription.reset();
}

TEST(move_construct_and_assign) {
    Network net;
    // Server
    hulynet::Server s1 = start_server();
    const int port = s1.port();
    hulynet::Server s2(std::move(s1));
    CHECK(!s1);
    CHECK_EQ(s2.port(), port);
    CHECK_THROWS_CODE(s1.port(), HULYNET_ECLOSED, "");
    s1 = std::move(s2);
    CHECK_EQ(s1.port(), port);
    CHECK(!s2);

    // Client
    hulynet::Client c1 = connect_client(net.server);
    const std::string id = c1.id();
    hulynet::Client c2(std::move(c1));
    CHECK(!c1);
    CHECK_EQ(c2.id(), id);
    CHECK_THROWS_CODE(c1.kinds(), HULYNET_ECLOSED, "Client");
    c1 = std::move(c2);
    CHECK_EQ(c1.id(), id);

    // Reference
    hulynet::Reference r1 = net.client.get("echo", R"({"uuid":"moved"})");
    hulynet::Reference r2(std::move(r1));
    CHECK(!r1);
    CHECK_EQ(r2.uuid(), std::string("moved"));
    CHECK_THROWS_CODE(r1.request("echo"), HULYNET_ECLOSED, "Reference");
    hulynet::Reference r3;
    r3 = std::move(r2);
    CHECK_EQ(r3.request("echo", "3"), std::string("3"));

    // Connection
    hulynet::Connection k1 = r3.connect();
    hulynet::Connection k2(std::move(k1));
    CHECK(!k1);
    CHECK_EQ(k2.request("echo", "4"), std::string("4"));
    CHECK_THROWS_CODE(k1.request("echo"), HULYNET_ECLOSED, "Connection");

    // Agent
    hulynet::Agent a1 = hulynet::Agent::create({{"other", echo_factory(net.stats)}}, "moved-agent");
    hulynet::Agent a2(std::move(a1));
    CHECK(!a1);
    CHECK_EQ(a2.uuid(), std::string("moved-agent"));
    net.client.serve(a2); // the moved-to agent keeps its kinds
    hulynet::Reference other = net.client.get("other");
    CHECK_EQ(other.request("echo", "5"), std::string("5"));

    // Subscription
    Inbox inbox;
    hulynet::Subscription u1 = net.client.on_update(inbox.handler());
    hulynet::Subscription u2(std::move(u1));
    CHECK(!u1);
    CHECK(static_cast<bool>(u2));
    hulynet::Agent a3 = hulynet::Agent::create({{"third", echo_factory(net.stats)}}, "third-agent");
    net.client.serve(a3);
    CHECK(inbox.wait_for("third-agent")); // the moved subscription still delivers
}

TEST(move_assignment_closes_the_target) {
    Network net;
    hulynet::Reference held = net.client.get("echo", R"({"uuid":"first"})");
    hulynet::Reference other = net.client.get("echo", R"({"uuid":"second"})");
    CHECK_EQ(net.stats.made.load(), 2);
    held = std::move(other); // "first" is released, and stops once unused
    CHECK_EQ(held.uuid(), std::string("second"));
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }));
    CHECK(contains(net.client.list("echo"), "second"));
    CHECK(!contains(net.client.list("echo"), "\"first\""));

    // Self-move leaves the object as it was.
    hulynet::Reference &alias = held;
    held = std::move(alias);
    CHECK_EQ(held.uuid(), std::string("second"));
}

TEST(children_after_client_close) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    Inbox inbox;
    hulynet::Subscription subscription = net.client.on_update(inbox.handler());
    net.client.close();
    net.client.close(); // idempotent
    CHECK(!net.client);
    CHECK_THROWS_CODE(ref.request("echo"), HULYNET_ECLOSED, "closed");
    CHECK(!ref.uuid().empty()); // accessors still answer
    CHECK_THROWS_CODE(ref.connect(), HULYNET_ECLOSED, "closed");
    CHECK_THROWS_CODE(ref.release(), HULYNET_ECLOSED, "closed");
    CHECK_THROWS_CODE(connection.request("echo"), HULYNET_ECLOSED, "closed");
    CHECK_THROWS_CODE(net.client.get("echo"), HULYNET_ECLOSED, "Client");
    CHECK_THROWS_CODE(net.client.serve(net.agent), HULYNET_ECLOSED, "Client");
    CHECK(static_cast<bool>(ref)); // still owns its handle: the destructor frees it
    // The client unregistered its agent and the network stopped the containers.
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }));
}

TEST(destruction_orders) {
    EchoStats stats;
    {
        // Server first, then the rest. (Closing a client whose coordinator is gone waits for its
        // release / unregister calls to time out: a short request timeout keeps this quick.)
        hulynet::Server server = start_server();
        hulynet::Timeouts quick = fast_timeouts();
        quick.request = 300ms;
        hulynet::Client client = hulynet::Client::connect("127.0.0.1", server.port(), quick);
        client.wait(5s);
        hulynet::Agent agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
        client.serve(agent);
        hulynet::Reference ref = client.get("echo");
        hulynet::Connection connection = ref.connect();
        server.close();
        CHECK_THROWS_CODE(ref.request("echo", "1", 200ms), HULYNET_ETIMEOUT, "");
        client.close(); // before the agent, which would otherwise try to unregister for 2 s
    }
    CHECK(wait_until([&] { return stats.destroyed.load() == stats.made.load(); }));
    {
        // Client before its agent, references and connections.
        hulynet::Server server = start_server();
        hulynet::Agent agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
        hulynet::Reference ref;
        hulynet::Connection connection;
        hulynet::Subscription subscription;
        {
            hulynet::Client client = connect_client(server);
            client.serve(agent);
            ref = client.get("echo");
            connection = ref.connect();
            subscription = client.on_update([](std::string_view) {});
        }
        CHECK_THROWS_CODE(ref.request("echo"), HULYNET_ECLOSED, "closed");
    }
    CHECK(wait_until([&] { return stats.destroyed.load() == stats.made.load(); }));
    {
        // Agent before the client that serves it.
        hulynet::Server server = start_server();
        hulynet::Client client = connect_client(server);
        hulynet::Reference ref;
        {
            hulynet::Agent agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
            client.serve(agent);
            ref = client.get("echo");
        }
        CHECK(wait_until([&] { return stats.destroyed.load() == stats.made.load(); }));
        // Its container is gone and no agent offers the kind any more: the reference looks for
        // one for the request's time, then says why.
        CHECK_THROWS_CODE(ref.request("echo", "1"), HULYNET_ENOTFOUND, "No suitable agents");
    }
    CHECK_EQ(stats.made.load(), 3);
}

TEST(client_close_from_a_callback) {
    // Destroy functions may be called from callbacks: a client closed by its own event handler.
    Network net(false);
    hulynet::Client doomed = connect_client(net.server);
    std::atomic<bool> closing{false}, closed{false};
    hulynet::Subscription subscription = doomed.on_update([&](std::string_view) {
        if (closing.exchange(true)) return;
        doomed.close();
        closed = true;
    });
    net.client.serve(net.agent); // an event for every client
    CHECK(wait_until([&] { return closed.load(); }));
    CHECK(!doomed);
    CHECK_THROWS_CODE(doomed.kinds(), HULYNET_ECLOSED, "Client");
    subscription.reset();
}

HULYNET_TEST_MAIN
