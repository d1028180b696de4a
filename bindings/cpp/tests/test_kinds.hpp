// test_kinds.hpp: C++ container kinds used by the tests.
#ifndef HULYNET_CPP_TEST_KINDS_HPP
#define HULYNET_CPP_TEST_KINDS_HPP

#include "test_util.hpp"

#include <set>
#include <stdexcept>

namespace test {

/** Counts what the Echo containers of a test did. */
struct EchoStats {
    std::atomic<int> made{0}, destroyed{0}, requests{0}, connects{0}, disconnects{0};
    std::mutex lock;
    std::set<std::string> connected; // client ids
    const hulynet::Client *probe = nullptr; // for the "blocking" operation

    bool is_connected(const std::string &id) {
        std::lock_guard<std::mutex> guard(lock);
        return connected.count(id) != 0;
    }
};

/** An echo container: answers, fails, emits and records on demand. */
class Echo : public hulynet::Container {
public:
    Echo(EchoStats &stats, std::string_view uuid, std::string_view options)
        : stats_(stats), created_uuid_(uuid), options_(options), payload_(1024, 'x') {
        ++stats_.made;
    }
    ~Echo() override {
        payload_.assign(payload_.size(), 'y'); // touches the object: a use after free shows under ASan
        ++stats_.destroyed;
    }

    std::string request(std::string_view operation, std::string_view data, std::string_view client_id) override {
        ++stats_.requests;
        if (operation == "echo") return std::string(data);
        if (operation == "whoami") {
            return "{\"uuid\":" + quote(uuid()) + ",\"created\":" + quote(created_uuid_) +
                   ",\"client\":" + (client_id.empty() ? std::string("null") : quote(client_id)) + "}";
        }
        if (operation == "options") return options_;
        if (operation == "fail") throw std::runtime_error("deliberate failure: " + std::string(data));
        if (operation == "throw_int") throw 42;
        if (operation == "busy") throw hulynet::error(HULYNET_EAGAIN, "busy, retry later");
        if (operation == "too_big") throw hulynet::error(HULYNET_ELIMIT, "too much");
        if (operation == "says_not_found") throw hulynet::error(HULYNET_ENOTFOUND, "Container abc not found");
        if (operation == "badjson") return "{not json";
        if (operation == "empty") return std::string();
        if (operation == "emit_all") return "{\"delivered\":" + std::to_string(emit(data)) + "}";
        if (operation == "emit_bad") return "{\"delivered\":" + std::to_string(emit("{oops")) + "}";
        if (operation == "emit_self") return "{\"delivered\":" + std::to_string(emit(data, client_id)) + "}";
        if (operation == "emit_to") { // data: a JSON string naming the client
            std::string id(data.substr(1, data.size() - 2));
            return "{\"delivered\":" + std::to_string(emit("\"to you\"", id)) + "}";
        }
        if (operation == "sleep") { // simulated work of `data` ms
            std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(std::string(data))));
            payload_[0] = 'z'; // touches the object after the wait
            return "\"slept\"";
        }
        if (operation == "blocking") { // a blocking call from inside a callback
            try {
                (void)stats_.probe->kinds(500ms);
                return "{\"code\":0}";
            } catch (const hulynet::error &e) {
                return "{\"code\":" + std::to_string(e.code()) + "}";
            }
        }
        throw std::invalid_argument("unknown operation " + std::string(operation));
    }

    void connect(std::string_view client_id) override {
        ++stats_.connects;
        {
            std::lock_guard<std::mutex> guard(stats_.lock);
            stats_.connected.insert(std::string(client_id));
        }
        emit("{\"welcome\":" + quote(client_id) + "}", client_id);
    }

    void disconnect(std::string_view client_id) override {
        ++stats_.disconnects;
        std::lock_guard<std::mutex> guard(stats_.lock);
        stats_.connected.erase(std::string(client_id));
    }

private:
    EchoStats &stats_;
    std::string created_uuid_, options_;
    std::string payload_;
};

/** A factory of Echo containers recording into `stats`. */
inline hulynet::ContainerFactory echo_factory(EchoStats &stats) {
    return [&stats](std::string_view uuid, std::string_view options) { return std::make_unique<Echo>(stats, uuid, options); };
}

/** A server, a client, and an agent with the "echo" kind served by that client. */
struct Network {
    EchoStats stats;
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    hulynet::Agent agent;

    explicit Network(bool serve = true) {
        stats.probe = &client;
        agent = hulynet::Agent::create({{"echo", echo_factory(stats)}});
        if (serve) client.serve(agent);
    }
};

} // namespace test

#endif
