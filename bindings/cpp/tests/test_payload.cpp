// JSON text, byte for byte (issue 11): what a C++ caller sends reaches the container as the same
// bytes, and what the container answers or emits comes back as it wrote it (key order, number
// spelling, layout), through the coordinator, by uuid, over routed and direct connections,
// blocking and asynchronous, and as events. Malformed text is refused with HULYNET_EJSON before
// anything is sent.
#include "test_util.hpp"

#include <future>

using namespace test;

namespace {

// The example of issue 11: key order, nesting, a number no double holds, two spellings a parser
// rewrites (1.10 -> 1.1, 1e2 -> 100).
const std::string caller_text =
    R"({"zeta":1,"alpha":2,"mid":{"b":1,"a":2},"big":12345678901234567890,"f":1.10,"e":1e2})";
// Spaces around tokens, escapes, and a raw non-ASCII character (é in UTF-8): kept too.
const std::string spaced_text = R"([ 1.0 , {"z" : null, "a":"\u00e9\n)" "\xc3\xa9" R"("} ])";

/** What the TextEcho containers of a test were given, byte for byte. */
struct Seen {
    std::mutex lock;
    std::vector<std::string> data;

    void add(std::string_view text) {
        std::lock_guard<std::mutex> guard(lock);
        data.emplace_back(text);
    }
    std::string last() {
        std::lock_guard<std::mutex> guard(lock);
        return data.empty() ? std::string() : data.back();
    }
};

/** Echoes the text it is given, emits it on "emit", answers malformed text on "bad". */
class TextEcho : public hulynet::Container {
public:
    explicit TextEcho(Seen &seen) : seen_(seen) {}

    std::string request(std::string_view operation, std::string_view data, std::string_view) override {
        seen_.add(data);
        if (operation == "echo") return std::string(data);
        if (operation == "emit") return "{\"delivered\":" + std::to_string(emit(data)) + "}";
        if (operation == "bad") return "{\"a\":}";
        throw std::invalid_argument("unknown operation " + std::string(operation));
    }

private:
    Seen &seen_;
};

/** A server, a client serving an agent of kind "text-echo", and what its containers saw. */
struct TextNetwork {
    Seen seen;
    hulynet::Server server = start_server();
    hulynet::Client client = connect_client(server);
    hulynet::Agent agent;

    TextNetwork() {
        agent = hulynet::Agent::create(
            {{"text-echo", [this](std::string_view, std::string_view) { return std::make_unique<TextEcho>(seen); }}});
        client.serve(agent);
    }
};

/** The value of a future, or "<no answer>" when it is not ready within a bounded wait. */
std::string within(std::future<std::string> future) {
    if (future.wait_for(5s) != std::future_status::ready) return "<no answer>";
    return future.get();
}

bool event_is(Inbox &inbox, std::size_t count, const std::string &text) {
    const std::vector<std::string> items = inbox.items();
    return items.size() == count && items.back() == text;
}

void check_paths(bool direct) {
    TextNetwork net;
    net.agent.set_direct("text-echo", direct);
    hulynet::Reference ref =
        net.client.get("text-echo", direct ? R"({"uuid":"payload-direct"})" : R"({"uuid":"payload-routed"})", 3s);
    CHECK(contains(ref.endpoint(), direct ? "\"kind\":1" : "\"kind\":0"));
    hulynet::Connection connection = ref.connect(3s);
    Inbox inbox;
    connection.on_event(inbox.handler());

    std::size_t events = 0;
    for (const std::string &text : {caller_text, spaced_text}) {
        CHECK_EQ(ref.request("echo", text, 2s), text);
        CHECK_EQ(net.seen.last(), text); // the container was given the caller's bytes
        CHECK_EQ(net.client.request(ref.uuid(), "echo", text, 2s), text);
        CHECK_EQ(connection.request("echo", text, 2s), text);
        CHECK_EQ(net.seen.last(), text);
        CHECK_EQ(within(ref.request_async("echo", text, 2s)), text);
        CHECK_EQ(within(net.client.request_async(ref.uuid(), "echo", text, 2s)), text);
        CHECK_EQ(within(connection.request_async("echo", text, 2s)), text);

        // The container emits the text it was given; the event arrives as it was sent.
        CHECK_EQ(connection.request("emit", text, 2s), std::string("{\"delivered\":1}"));
        ++events;
        CHECK(wait_until([&] { return event_is(inbox, events, text); }, 3s));
    }

    // Malformed text never leaves the caller: every path throws HULYNET_EJSON at the call.
    CHECK_THROWS_CODE(ref.request("echo", R"({"a":1,})", 2s), HULYNET_EJSON, "");
    CHECK_THROWS_CODE(connection.request("echo", "[1] [2]", 2s), HULYNET_EJSON, "");
    CHECK_THROWS_CODE(net.client.request(ref.uuid(), "echo", "12345678901234567890x", 2s), HULYNET_EJSON, "");
    CHECK_THROWS_CODE(ref.request_async("echo", "{", 2s), HULYNET_EJSON, "");
    CHECK_THROWS_CODE(connection.request_async("echo", "1.", 2s), HULYNET_EJSON, "");
    CHECK_THROWS_CODE(net.client.request_async(ref.uuid(), "echo", "'x'", 2s), HULYNET_EJSON, "");
    // A container answering malformed text fails the request rather than sending it.
    CHECK_THROWS_CODE(connection.request("bad", "null", 2s), HULYNET_EREMOTE, "invalid JSON");
    CHECK_EQ(connection.request("echo", "0", 2s), std::string("0")); // and the connection still works
}

} // namespace

TEST(text_byte_for_byte_routed) { check_paths(false); }

TEST(text_byte_for_byte_direct) { check_paths(true); }

HULYNET_TEST_MAIN
