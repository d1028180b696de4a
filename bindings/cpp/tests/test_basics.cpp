// Version, the error type, Server, Client basics, argument errors, the log handler.
#include "test_util.hpp"

using namespace test;

TEST(version) {
    CHECK_EQ(hulynet::version(), std::string_view(HULYNET_VERSION_STRING));
    CHECK_EQ(hulynet::version_number(), static_cast<unsigned>(HULYNET_VERSION_NUMBER));
}

TEST(callback_threads) {
    const int before = hulynet::callback_threads();
    CHECK(before >= 1);
    CHECK_THROWS_CODE(hulynet::set_callback_threads(-1), HULYNET_EINVAL, "out of range");
    hulynet::set_callback_threads(5);
    CHECK_EQ(hulynet::callback_threads(), 5);
    hulynet::set_callback_threads(before);
    CHECK_EQ(hulynet::callback_threads(), before);
}

TEST(error_type) {
    const hulynet::error e(HULYNET_ENOTFOUND, "no such thing");
    CHECK_EQ(e.code(), HULYNET_ENOTFOUND);
    CHECK_EQ(std::string(e.what()), std::string("no such thing"));
    CHECK_EQ(std::string(e.name()), std::string("not found"));
    const std::runtime_error &base = e;
    CHECK_EQ(std::string(base.what()), std::string("no such thing"));
    const hulynet::error bare(HULYNET_ETIMEOUT, "");
    CHECK_EQ(std::string(bare.what()), std::string("timed out")); // no message: the code's name
}

TEST(server_start_port_stats) {
    hulynet::Server server = start_server();
    REQUIRE(static_cast<bool>(server));
    CHECK(server.port() > 0);
    CHECK(server.handle() != nullptr);
    CHECK_EQ(server.stats().clients, 0);
    hulynet::Client client = connect_client(server);
    CHECK(wait_until([&] { return server.stats().clients == 1; }));
    (void)client.kinds();
    CHECK(server.stats().requests >= 1);
}

TEST(server_metrics) {
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    (void)client.kinds();
    CHECK(wait_until([&] { return server.metrics().find("hulynet_requests_total{method=\"ak\"} 1\n") != std::string::npos; }));
    CHECK(server.metrics().find("# TYPE hulynet_request_duration_seconds histogram\n") != std::string::npos);
    const int port = server.serve_metrics();
    CHECK(port > 0);
    CHECK_THROWS_CODE(server.serve_metrics(), HULYNET_EINVAL, "already");
    server.close();
    CHECK_THROWS_CODE(server.metrics(), HULYNET_ECLOSED, "Server");
}

TEST(server_port_in_use) {
    hulynet::Server first = start_server();
    CHECK_THROWS_CODE(hulynet::Server::start("127.0.0.1", first.port()), HULYNET_EBIND, "");
}

TEST(argument_errors) {
    CHECK_THROWS_CODE(hulynet::Server::start("127.0.0.1", -1), HULYNET_EINVAL, "port");
    CHECK_THROWS_CODE(hulynet::Server::start("127.0.0.1", 70000), HULYNET_EINVAL, "port");
    CHECK_THROWS_CODE(hulynet::Server::start(std::string_view("127.0.0.1\0x", 11)), HULYNET_EINVAL, "NUL");
    hulynet::Timeouts bad;
    bad.request = -5ms;
    CHECK_THROWS_CODE(hulynet::Server::start("127.0.0.1", 0, bad), HULYNET_EINVAL, "request_ms");
    CHECK_THROWS_CODE(hulynet::Client::connect("127.0.0.1", 0), HULYNET_EINVAL, "port");
    CHECK_THROWS_CODE(hulynet::Client::connect("", 1234), HULYNET_EINVAL, "host");
    CHECK_THROWS_CODE(hulynet::Client::connect("bad host", 1234), HULYNET_EINVAL, "not a host name");
    CHECK_THROWS_CODE(hulynet::Server::start("", 0), HULYNET_EINVAL, "host is empty");
    CHECK_THROWS_CODE(hulynet::Server::start("127.0.0.1", 99999), HULYNET_EINVAL, "out of range");
}

TEST(timeout_argument_errors) {
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    CHECK_THROWS_CODE(client.wait(-1ms), HULYNET_EINVAL, "timeout_ms -1");
    CHECK_THROWS_CODE(client.wait(std::chrono::hours(25)), HULYNET_EINVAL, "out of range");
    client.wait(hulynet::default_timeout);
}

TEST(client_id_and_wait) {
    hulynet::Server server = start_server();
    hulynet::Client client = hulynet::Client::connect("127.0.0.1", server.port(), fast_timeouts());
    client.wait(5s);
    CHECK_EQ(client.id().size(), static_cast<std::size_t>(36));
    CHECK(client.handle() != nullptr);
    hulynet::Client other = connect_client(server);
    CHECK(other.id() != client.id());
}

TEST(client_wait_times_out) {
    int port = 0;
    {
        hulynet::Server gone = start_server(); // a port that nothing listens on afterwards
        port = gone.port();
    }
    hulynet::Client client = hulynet::Client::connect("127.0.0.1", port, fast_timeouts());
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_CODE(client.wait(200ms), HULYNET_ETIMEOUT, "");
    CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST(server_close_idempotent) {
    hulynet::Server server = start_server();
    server.close();
    server.close();
    CHECK(!server);
    CHECK_THROWS_CODE(server.port(), HULYNET_ECLOSED, "Server");
    CHECK_THROWS_CODE(server.stats(), HULYNET_ECLOSED, "Server");
}

TEST(server_release_handle) {
    hulynet::Server server = start_server();
    hulynet_server *raw = server.release();
    CHECK(!server);
    CHECK(hulynet_server_port(raw) > 0);
    hulynet::Server again(raw); // ownership back
    CHECK(again.port() > 0);
}

TEST(log_handler) {
    std::atomic<int> messages{0};
    std::atomic<int> bad_levels{0};
    hulynet::set_log_handler(
        [&](int level, std::string_view message) {
            if (level < HULYNET_LOG_TRACE || level > HULYNET_LOG_CRITICAL) ++bad_levels;
            if (!message.empty()) ++messages;
            throw std::runtime_error("a log handler's exception must not reach the library");
        },
        HULYNET_LOG_TRACE);
    {
        hulynet::Server server = start_server();
        hulynet::Client client = connect_client(server);
        (void)client.kinds();
        CHECK(wait_until([&] { return messages.load() > 0; }, 3s));
    }
    CHECK_EQ(bad_levels.load(), 0);
    // An invalid level is refused and the handler stays as it was.
    CHECK_THROWS_CODE(hulynet::set_log_handler([](int, std::string_view) {}, 99), HULYNET_EINVAL, "min_level");
    hulynet::set_log_handler(nullptr); // back to the default
    const int before = messages.load();
    {
        hulynet::Server server = start_server();
        hulynet::Client client = connect_client(server);
        (void)client.kinds();
    }
    CHECK_EQ(messages.load(), before);
}

HULYNET_TEST_MAIN
