// Futures: Client::request_async, Reference::request_async, Client::get_async, Connection::request_async.
#include "test_kinds.hpp"

#include <future>

using namespace test;

static bool ready(std::future<std::string> &future, std::chrono::milliseconds limit = 5s) {
    return future.wait_for(limit) == std::future_status::ready;
}

TEST(request_async_results) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    std::future<std::string> future = net.client.request_async(ref.uuid(), "echo", "{\"async\":true}");
    REQUIRE(ready(future));
    CHECK_EQ(future.get(), std::string("{\"async\":true}"));
    std::future<std::string> no_data = net.client.request_async(ref.uuid(), "echo");
    REQUIRE(ready(no_data));
    CHECK_EQ(no_data.get(), std::string("null"));
    std::future<std::string> through_reference = ref.request_async("echo", "[\"by reference\"]");
    REQUIRE(ready(through_reference));
    CHECK_EQ(through_reference.get(), std::string("[\"by reference\"]"));
}

TEST(request_async_many_at_once) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    const std::string uuid = ref.uuid();
    std::vector<std::future<std::string>> futures;
    for (int i = 0; i < 100; ++i) futures.push_back(net.client.request_async(uuid, "echo", std::to_string(i)));
    for (int i = 0; i < 100; ++i) {
        REQUIRE(ready(futures[static_cast<std::size_t>(i)]));
        CHECK_EQ(futures[static_cast<std::size_t>(i)].get(), std::to_string(i));
    }
}

TEST(request_async_errors) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    // Failures of the request itself are stored in the future.
    std::future<std::string> missing = net.client.request_async("no-such-container", "echo");
    REQUIRE(ready(missing));
    CHECK_THROWS_CODE(missing.get(), HULYNET_ENOTFOUND, "no-such-container");
    std::future<std::string> thrown = net.client.request_async(ref.uuid(), "fail", "\"async\"");
    REQUIRE(ready(thrown));
    CHECK_THROWS_CODE(thrown.get(), HULYNET_EREMOTE, "deliberate failure: \"async\"");
    std::future<std::string> slow = net.client.request_async(ref.uuid(), "sleep", "500", 100ms);
    REQUIRE(ready(slow));
    CHECK_THROWS_CODE(slow.get(), HULYNET_ETIMEOUT, "");
    // Arguments the library refuses at once throw at the call.
    CHECK_THROWS_CODE(net.client.request_async(ref.uuid(), "echo", "{bad"), HULYNET_EJSON, "data_json");
}

TEST(get_async) {
    Network net;
    std::future<hulynet::Reference> future = net.client.get_async("echo", R"({"uuid":"async-get"})");
    REQUIRE(future.wait_for(5s) == std::future_status::ready);
    hulynet::Reference ref = future.get();
    CHECK_EQ(ref.uuid(), std::string("async-get"));
    CHECK_EQ(ref.request("echo", "1"), std::string("1"));
    // A failing start is stored in the future.
    hulynet::Agent broken = hulynet::Agent::builder()
                                .kind("broken", [](std::string_view, std::string_view) -> std::unique_ptr<hulynet::Container> {
                                    throw std::runtime_error("no");
                                })
                                .build();
    hulynet::Client host = connect_client(net.server);
    host.serve(broken);
    std::future<hulynet::Reference> failing = net.client.get_async("broken");
    REQUIRE(failing.wait_for(5s) == std::future_status::ready);
    CHECK_THROWS_CODE(failing.get(), HULYNET_EREMOTE, "failed to start");
    CHECK_THROWS_CODE(net.client.get_async("echo", "[1"), HULYNET_EJSON, "options_json");
}

TEST(connection_request_async) {
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    hulynet::Connection connection = ref.connect();
    std::future<std::string> who = connection.request_async("whoami");
    REQUIRE(ready(who));
    CHECK(contains(who.get(), net.client.id()));
    std::future<std::string> failing = connection.request_async("fail", "1", 2s);
    REQUIRE(ready(failing));
    CHECK_THROWS_CODE(failing.get(), HULYNET_EREMOTE, "deliberate failure: 1");
    CHECK_THROWS_CODE(connection.request_async("echo", "nope"), HULYNET_EJSON, "data_json");
}

TEST(abandoned_futures) {
    // Futures dropped before their completion: the promise is freed by the completion (ASan
    // checks that nothing leaks or is used after being freed).
    Network net;
    hulynet::Reference ref = net.client.get("echo");
    for (int i = 0; i < 20; ++i) (void)net.client.request_async(ref.uuid(), "echo", std::to_string(i));
    (void)net.client.get_async("echo", R"({"uuid":"abandoned"})");
    CHECK(wait_until([&] { return net.stats.made.load() == 2; }));
    // Its reference was destroyed with the abandoned future: the container is released and stops.
    CHECK(wait_until([&] { return net.stats.destroyed.load() == 1; }));
    CHECK(wait_until([&] { return net.stats.requests.load() == 20; }));
}

HULYNET_TEST_MAIN
