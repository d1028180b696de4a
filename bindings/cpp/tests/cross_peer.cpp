// The C++ side of the cross-language test (bindings/python/tests/test_cross_language.py):
//
//   cross_peer agent HOST:PORT    serves kind "cpp-echo" (echo; "broadcast" emits its data to every
//                                 connected client and answers how many it reached), prints "ready"
//                                 and runs until its standard input closes
//   cross_peer client HOST:PORT   as a client of kind "py-echo" (served by Python): requests
//                                 through the coordinator (JSON text byte for byte), a connection
//                                 receiving an event; prints what it got and exits 0 when every
//                                 check holds
#include <hulynet.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

namespace {

class CppEcho : public hulynet::Container {
public:
    std::string request(std::string_view operation, std::string_view data, std::string_view) override {
        if (operation == "broadcast") return std::to_string(emit(data));
        if (operation == "language") return "\"c++\"";
        return std::string(data);
    }
};

bool split(const std::string &address, std::string &host, int &port) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    host = address.substr(0, colon);
    port = std::stoi(address.substr(colon + 1));
    return true;
}

int fail(const std::string &what) {
    std::fprintf(stderr, "cross_peer: %s\n", what.c_str());
    return 1;
}

int run_agent(const std::string &host, int port) {
    hulynet::Client client = hulynet::Client::connect(host, port);
    client.wait(5s);
    hulynet::Agent agent = hulynet::Agent::builder().kind<CppEcho>("cpp-echo").build();
    client.serve(agent);
    std::printf("ready %s\n", agent.uuid().c_str());
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {}
    return 0;
}

int run_client(const std::string &host, int port) {
    hulynet::Client client = hulynet::Client::connect(host, port);
    client.wait(5s);
    hulynet::Reference reference = client.get("py-echo", R"({"labels":["cross"]})", 10s);
    const std::string language = reference.request("language");
    if (language != "\"python\"") return fail("the container says it is " + language);
    const std::string echoed = reference.request("echo", R"({"from":"c++"})");
    if (echoed != R"({"from":"c++"})") return fail("echo answered " + echoed);
    // The text of issue 11 through a Python container that answers the bytes it was given.
    const std::string text = R"({"zeta":1,"alpha":2,"big":12345678901234567890,"f":1.10,"e":1e2, "s" : [ ] })";
    const std::string text_echoed = reference.request("echo", text);
    if (text_echoed != text) return fail("echo of JSON text answered " + text_echoed);

    hulynet::Connection connection = reference.connect();
    std::mutex lock;
    std::condition_variable changed;
    std::string event;
    connection.on_event([&](std::string_view json) {
        std::lock_guard<std::mutex> guard(lock);
        event = std::string(json);
        changed.notify_all();
    });
    const std::string sent = R"([ "hello from python" , 1.10 ])";
    const std::string reached = connection.request("broadcast", sent);
    if (reached != "1") return fail("broadcast reached " + reached);
    std::unique_lock<std::mutex> guard(lock);
    if (!changed.wait_for(guard, 5s, [&] { return !event.empty(); })) return fail("no event");
    if (event != sent) return fail("event " + event);
    std::printf("ok %s %s %s\n", language.c_str(), echoed.c_str(), event.c_str());
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    std::string host;
    int port = 0;
    if (argc != 3 || !split(argv[2], host, port)) return fail("usage: cross_peer agent|client HOST:PORT");
    try {
        const std::string mode = argv[1];
        if (mode == "agent") return run_agent(host, port);
        if (mode == "client") return run_client(host, port);
        return fail("unknown mode " + mode);
    } catch (const hulynet::error &error) {
        return fail(std::string("hulynet error ") + std::to_string(error.code()) + ": " + error.what());
    }
}
