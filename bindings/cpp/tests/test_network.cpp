// Server + client + agent with C++ container kinds: get / request / list / agents / kinds, the
// errors as exceptions, container lifetimes.
#include "test_kinds.hpp"

#include <unistd.h>

#include <algorithm>
#include <mutex>

using namespace test;

TEST(agent_builder_and_uuid) {
    EchoStats stats;
    hulynet::Agent agent = hulynet::Agent::builder()
                               .uuid("agent-fixed-uuid")
                               .kind("echo", echo_factory(stats))
                               .kind("other", echo_factory(stats))
                               .build();
    CHECK_EQ(agent.uuid(), std::string("agent-fixed-uuid"));
    hulynet::Agent random = hulynet::Agent::create({{"echo", echo_factory(stats)}});
    CHECK_EQ(random.uuid().size(), static_cast<std::size_t>(36));
    CHECK_THROWS_CODE(hulynet::Agent::create({{"echo", echo_factory(stats)}, {"echo", echo_factory(stats)}}),
                      HULYNET_EINVAL, "twice");
    CHECK_THROWS_CODE(hulynet::Agent::create({{"", echo_factory(stats)}}), HULYNET_EINVAL, "empty");
    CHECK_THROWS_CODE(hulynet::Agent::create({{"echo", nullptr}}), HULYNET_EINVAL, "factory");
    CHECK_EQ(stats.made.load(), 0);
}

TEST(log_record_handler) {
    std::mutex lock;
    std::vector<std::string> registered; // the agent field of each "agent registered" record
    hulynet::set_log_record_handler(
        [&](int, std::string_view, std::string_view message, const std::vector<hulynet::LogField> &fields) {
            if (message != "agent registered") return;
            for (const hulynet::LogField &field : fields)
                if (field.key == "agent") {
                    std::lock_guard<std::mutex> guard(lock);
                    registered.emplace_back(field.value);
                }
        },
        HULYNET_LOG_INFO);
    {
        Network net;
        const std::string agent = net.agent.uuid();
        CHECK(wait_until([&] {
            std::lock_guard<std::mutex> guard(lock);
            return std::find(registered.begin(), registered.end(), agent) != registered.end();
        }, 3s));
    }
    CHECK_THROWS_CODE(hulynet::set_log_record_handler(
                          [](int, std::string_view, std::string_view, const std::vector<hulynet::LogField> &) {}, 99),
                      HULYNET_EINVAL, "min_level");
    hulynet::set_log_record_handler(nullptr);
}

TEST(serve_get_request_list) {
    Network net;
    const std::string kinds = net.client.kinds();
    CHECK(contains(kinds, "\"echo\""));
    const std::string agents = net.client.agents();
    CHECK(contains(agents, net.agent.uuid()));

    hulynet::Reference ref = net.client.get("echo");
    REQUIRE(static_cast<bool>(ref));
    const std::string uuid = ref.uuid();
    CHECK_EQ(uuid.size(), static_cast<std::size_t>(36));
    CHECK(contains(ref.endpoint(), "\"host\""));
    CHECK_EQ(net.stats.made.load(), 1);

    CHECK_EQ(ref.request("echo", R"({"a":1})"), std::string(R"({"a":1})"));
    CHECK_EQ(ref.request("echo"), std::string("null")); // no data: null
    CHECK_EQ(net.client.request(uuid, "echo", "[1,2,3]"), std::string("[1,2,3]"));
    CHECK_EQ(net.client.request(uuid, "echo", "\"text\"", 2s), std::string("\"text\""));
    // Through the coordinator there is no caller id; the container knows its uuid.
    const std::string who = ref.request("whoami");
    CHECK(contains(who, "\"client\":null"));
    CHECK(contains(who, "\"uuid\":" + quote(uuid)));
    CHECK(contains(who, "\"created\":" + quote(uuid)));

    CHECK(contains(net.client.list(), uuid));
    CHECK(contains(net.client.list("echo"), uuid));
    CHECK_EQ(net.client.list("no-such-kind"), std::string("[]"));

    // The same kind again gives the running container.
    hulynet::Reference again = net.client.get("echo");
    CHECK_EQ(again.uuid(), uuid);
    CHECK_EQ(net.stats.made.load(), 1);
}

TEST(direct_container) {
    Network net;
    net.agent.set_direct("echo");
    CHECK_THROWS_CODE(net.agent.set_direct("no-such-kind"), HULYNET_ENOTFOUND, "no container kind");
    hulynet::Reference ref = net.client.get("echo", R"({"uuid":"direct-1"})");
    // A direct endpoint reference (kind 1) naming the container.
    CHECK(contains(ref.endpoint(), "\"kind\":1"));
    CHECK(contains(ref.endpoint(), "\"uuid\":\"direct-1\""));
    hulynet::Connection connection = ref.connect();
    Inbox inbox;
    connection.on_event(inbox.handler());
    CHECK(inbox.wait_for("welcome")); // connect ran in the container before connect() returned
    CHECK_EQ(connection.request("echo", "[7]"), std::string("[7]"));
    CHECK(contains(connection.request("whoami"), "\"client\":" + quote(net.client.id())));
    CHECK_EQ(connection.request("emit_self", "\"direct\""), std::string("{\"delivered\":1}"));
    CHECK(inbox.wait_for("\"direct\""));
    CHECK_EQ(ref.request("echo", "8"), std::string("8")); // through the coordinator as well
    net.agent.set_direct("echo", false);
    hulynet::Reference routed = net.client.get("echo", R"({"uuid":"routed-1"})");
    CHECK(contains(routed.endpoint(), "\"kind\":0"));
}

TEST(get_options) {
    Network net;
    hulynet::Reference ref = net.client.get("echo", R"({"uuid":"my-container","labels":["red"],"extra":{"k":1}})");
    CHECK_EQ(ref.uuid(), std::string("my-container"));
    const std::string options = ref.request("options");
    CHECK(contains(options, "\"red\""));
    CHECK(contains(options, "\"k\":1"));
    CHECK(contains(net.client.list("echo"), "my-container"));
}

TEST(request_errors) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    const std::string uuid = ref.uuid();
    CHECK_THROWS_CODE(net.client.request("no-such-container", "echo"), HULYNET_ENOTFOUND, "no-such-container");
    CHECK_THROWS_CODE(net.client.request(uuid, "echo", "{not json"), HULYNET_EJSON, "data_json");
    CHECK_THROWS_CODE(ref.request("echo", "[1,"), HULYNET_EJSON, "data_json");
    CHECK_THROWS_CODE(net.client.get("echo", "{bad"), HULYNET_EJSON, "options_json");
    CHECK_THROWS_CODE(net.client.get("echo", "42"), HULYNET_EINVAL, "options_json");
    CHECK_THROWS_CODE(net.client.request(uuid, std::string_view("ec\0ho", 5)), HULYNET_EINVAL, "NUL");
    // A C++ container that throws: HULYNET_EREMOTE with its message.
    CHECK_THROWS_CODE(ref.request("fail", "7"), HULYNET_EREMOTE, "deliberate failure: 7");
    CHECK_THROWS_CODE(net.client.request(uuid, "fail", "8"), HULYNET_EREMOTE, "deliberate failure: 8");
    CHECK_THROWS_CODE(ref.request("no-such-operation"), HULYNET_EREMOTE, "unknown operation no-such-operation");
    CHECK_THROWS_CODE(ref.request("throw_int"), HULYNET_EREMOTE, "unknown C++ exception");
    // An answer that is not JSON (or empty) ends the request as an error.
    CHECK_THROWS_CODE(ref.request("badjson"), HULYNET_EREMOTE, "invalid JSON");
    CHECK_THROWS_CODE(ref.request("empty"), HULYNET_EREMOTE, "invalid JSON");
    // The container is still fine afterwards.
    CHECK_EQ(ref.request("echo", "1"), std::string("1"));
}

TEST(request_timeout) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_CODE(ref.request("sleep", "600", 100ms), HULYNET_ETIMEOUT, "");
    CHECK(std::chrono::steady_clock::now() - start < 550ms);
    CHECK_THROWS_CODE(net.client.request(ref.uuid(), "sleep", "600", 100ms), HULYNET_ETIMEOUT, "");
}

TEST(blocking_call_inside_container_is_refused) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    CHECK_EQ(ref.request("blocking"), std::string("{\"code\":" + std::to_string(HULYNET_EINVAL) + "}"));
}

TEST(factory_failures) {
    EchoStats stats;
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    hulynet::Agent agent = hulynet::Agent::builder()
                               .kind("throws", [](std::string_view, std::string_view) -> std::unique_ptr<hulynet::Container> {
                                   throw std::runtime_error("cannot start");
                               })
                               .kind("null", [](std::string_view, std::string_view) -> std::unique_ptr<hulynet::Container> {
                                   return nullptr;
                               })
                               .kind("hulynet-error", [](std::string_view, std::string_view) -> std::unique_ptr<hulynet::Container> {
                                   throw hulynet::error(HULYNET_EINVAL, "refused");
                               })
                               .build();
    client.serve(agent);
    CHECK_THROWS_CODE(client.get("throws"), HULYNET_EREMOTE, "failed to start");
    CHECK_THROWS_CODE(client.get("null"), HULYNET_EREMOTE, "failed to start");
    CHECK_THROWS_CODE(client.get("hulynet-error"), HULYNET_EREMOTE, "status -1");
    CHECK_EQ(client.list(), std::string("[]"));
}

TEST(register_agent_without_endpoint) {
    Network net(false);
    net.client.register_agent(net.agent);
    hulynet::Reference ref = net.client.get("echo");
    CHECK_EQ(ref.request("echo", "true"), std::string("true"));
    CHECK(contains(ref.endpoint(), "\"kind\":2")); // no connection
    CHECK_THROWS_CODE(ref.connect(), HULYNET_EINVAL, "no connection endpoint");
    // An agent is served by one client only.
    hulynet::Client second = connect_client(net.server);
    CHECK_THROWS_CODE(second.register_agent(net.agent), HULYNET_EINVAL, "served");
}

TEST(container_destroyed_when_unused) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    CHECK_EQ(net.stats.made.load(), 1);
    ref.release(2s);
    // Unused for 300 ms: the network terminates it and the C++ object is destroyed.
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }, 5s));
    CHECK(wait_until([&] { return net.client.list("echo") == "[]"; }, 3s));
    ref.close();
    ref.close();
}

TEST(agent_close_destroys_containers) {
    Network net;
    hulynet::Reference a = net.client.get("echo", R"({"uuid":"c-1"})");
    hulynet::Reference b = net.client.get("echo", R"({"uuid":"c-2"})");
    CHECK_EQ(net.stats.made.load(), 2);
    net.agent.close();
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 2; }, 3s));
    CHECK(wait_until([&] { return !contains(net.client.agents(), "\"echo\""); }, 3s));
    net.agent.close(); // idempotent
    CHECK_THROWS_CODE(net.agent.uuid(), HULYNET_ECLOSED, "Agent");
}

TEST(container_deleted_after_its_running_request) {
    // The agent closes while a request is running in the container: the C++ object outlives the
    // request (ASan would see a use after free otherwise).
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    auto running = net.client.request_async(ref.uuid(), "sleep", "300", 3s);
    REQUIRE(wait_until([&] { return net.stats.requests.load() == 1; }, 3s));
    net.agent.close();
    try {
        (void)running.get(); // an answer or an error: either is fine here
    } catch (const hulynet::error &) {
    }
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }, 3s));
}

TEST(stateless_container) {
    Network net(false);
    net.agent.add_stateless("stateless-1", "echo", std::make_unique<Echo>(net.stats, "stateless-1", "null"));
    CHECK_THROWS_CODE(net.agent.add_stateless("stateless-2", "no-such-kind",
                                              std::make_unique<Echo>(net.stats, "stateless-2", "null")),
                      HULYNET_ENOTFOUND, "no-such-kind");
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }, 1s)); // the refused one
    net.client.serve(net.agent);
    CHECK(contains(net.client.list("echo"), "stateless-1"));
    const std::string who = net.client.request("stateless-1", "whoami");
    CHECK(contains(who, "\"uuid\":\"stateless-1\""));
    // A stateless container emits like any other (no client is connected to it here).
    CHECK(contains(net.client.request("stateless-1", "emit_all", "1"), "\"delivered\":0"));
    net.agent.close();
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 2; }, 3s));
}

TEST(several_agents_and_kinds) {
    EchoStats stats;
    hulynet::Server server = start_server();
    hulynet::Client a = connect_client(server);
    hulynet::Client b = connect_client(server);
    hulynet::Agent first = hulynet::Agent::builder().kind("alpha", echo_factory(stats)).build();
    hulynet::Agent second = hulynet::Agent::create({{"beta", echo_factory(stats)}, {"gamma", echo_factory(stats)}});
    a.serve(first);
    b.serve(second);
    const std::string kinds = a.kinds();
    CHECK(contains(kinds, "alpha") && contains(kinds, "beta") && contains(kinds, "gamma"));
    const std::string agents = b.agents();
    CHECK(contains(agents, first.uuid()) && contains(agents, second.uuid()));
    hulynet::Reference ra = b.get("alpha"); // hosted by the other client's agent
    hulynet::Reference rg = a.get("gamma");
    CHECK_EQ(ra.request("echo", "\"a\""), std::string("\"a\""));
    CHECK_EQ(rg.request("echo", "\"g\""), std::string("\"g\""));
    CHECK(contains(a.list("gamma"), rg.uuid()));
    CHECK(!contains(a.list("gamma"), ra.uuid()));
}

HULYNET_TEST_MAIN

TEST(inline_requests) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    REQUIRE(static_cast<bool>(ref));
    net.agent.set_inline_requests("echo");
    CHECK_EQ(ref.request("echo", "[1]"), std::string("[1]"));
    net.agent.set_inline_requests("echo", false);
    CHECK_EQ(ref.request("echo", "[2]"), std::string("[2]"));
    CHECK_THROWS_CODE(net.agent.set_inline_requests("no-such-kind"), HULYNET_ENOTFOUND, "no container kind");
}

// Several coordinators (docs/HA.md): a client given a list follows the one serving; an elected
// server with etcd out of reach stands by and binds nothing. (Elections against a real etcd run
// in the Swift tests and ctest's sample-server-elected.)
TEST(elected_server_and_network_list) {
    hulynet::Server server = hulynet::Server::start("127.0.0.1", 0);
    CHECK(server.role() == hulynet::Role::leader);
    CHECK(contains(server.health(), "\"serving\""));
    const int dead = hulynet::Server::start("127.0.0.1", 0).port(); // closed at once: nothing behind it
    hulynet::Client client = hulynet::Client::connect_network(
        "127.0.0.1:" + std::to_string(dead) + ",127.0.0.1:" + std::to_string(server.port()));
    client.wait(10s);
    CHECK(contains(client.kinds(), "["));
    CHECK_THROWS_CODE(hulynet::Client::connect_network("127.0.0.1:1,127.0.0.1:1"), HULYNET_EINVAL, "twice");

    hulynet::ElectionOptions options;
    options.etcd = "http://127.0.0.1:" + std::to_string(dead);
    CHECK_THROWS_CODE(hulynet::Server::start_elected("127.0.0.1", 0, options), HULYNET_EINVAL, "port 0");
    options.lease_ttl = 1500ms;
    CHECK_THROWS_CODE(hulynet::Server::start_elected("127.0.0.1", dead, options), HULYNET_EINVAL, "TTL");
    options.lease_ttl = 0ms;
    hulynet::Server standby = hulynet::Server::start_elected("127.0.0.1", dead, options);
    CHECK(standby.role() == hulynet::Role::standby);
    CHECK_EQ(standby.port(), dead);
    CHECK(contains(standby.health(), "\"standby\""));
    CHECK_EQ(standby.stats().clients, 0);
    // It binds nothing: the port is free for another.
    hulynet::Server other = hulynet::Server::start("127.0.0.1", dead);
    CHECK_EQ(other.port(), dead);
}

// CURVE: a secured coordinator with an allow list admits its key and refuses a stranger's.
TEST(secured_server_and_clients) {
    const auto [server_public, server_secret] = hulynet::curve_keypair();
    const auto [alice_public, alice_secret] = hulynet::curve_keypair();
    const auto stranger = hulynet::curve_keypair();
    CHECK_EQ(server_public.size(), static_cast<std::size_t>(40));
    char path[] = "/tmp/hulynet-allow-cpp-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const std::string line = alice_public + " alice\n";
    REQUIRE(write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    close(fd);

    hulynet::Server server = hulynet::Server::start_secure("127.0.0.1", 0, {server_secret, "", path});
    const std::string network = "127.0.0.1:" + std::to_string(server.port());
    hulynet::Client alice = hulynet::Client::connect_secure(network, {alice_secret, server_public, ""});
    alice.wait(5s);
    CHECK(contains(alice.kinds(), "["));
    hulynet::Client refused = hulynet::Client::connect_secure(network, {stranger.second, server_public, ""});
    CHECK_THROWS_CODE(refused.wait(1s), HULYNET_ETIMEOUT, "refused");
    CHECK_THROWS_CODE(hulynet::Client::connect_secure(network, {"not a key", server_public, ""}), HULYNET_EINVAL, "secret_key");
    CHECK_THROWS_CODE(hulynet::Server::start_secure("127.0.0.1", 0, {"", "", path}), HULYNET_EINVAL, "secret_key");
    unlink(path);
}
