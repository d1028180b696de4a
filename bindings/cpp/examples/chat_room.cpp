// A chat room in C++ with hulynet: an agent hosting a C++ container kind, clients calling it and
// receiving its events.
//
// The "chat-room" kind keeps the room's members; it welcomes each client that connects (an event
// to that client only), and broadcasts every join and every message to all connected clients.
// Alice and Bob get the same room ("lobby"), connect to it, and chat. The program starts its own
// coordinator on 127.0.0.1 (a free port) and exits 0 once both have seen every message (1 if not
// within 10 s).
//
//   g++ -std=c++17 chat_room.cpp -lhulynet -lpthread && ./a.out
//
// JSON values are JSON text: the room embeds what it receives (JSON strings) in the events it
// sends, so it needs no JSON parser here. Real code would use a JSON library on top.
#include <hulynet.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// The container kind
// ---------------------------------------------------------------------------------------------

class ChatRoom : public hulynet::Container {
public:
    explicit ChatRoom(std::string_view uuid) { std::printf("[room] started %.*s\n", int(uuid.size()), uuid.data()); }
    ~ChatRoom() override { std::printf("[room] stopped after %d messages\n", messages_); }

    // Requests may arrive on several library threads at once: the state is behind a lock, and
    // events are emitted outside it.
    std::string request(std::string_view operation, std::string_view data, std::string_view client_id) override {
        if (operation == "join") { // data: the member's name, a JSON string
            if (client_id.empty()) throw std::runtime_error("join over a connection");
            std::size_t members;
            {
                std::lock_guard<std::mutex> guard(lock_);
                names_[std::string(client_id)] = std::string(data);
                members = names_.size();
            }
            emit("{\"type\":\"joined\",\"name\":" + std::string(data) + "}");
            return "{\"members\":" + std::to_string(members) + "}";
        }
        if (operation == "say") { // data: the text, a JSON string
            std::string name;
            int id;
            {
                std::lock_guard<std::mutex> guard(lock_);
                auto found = names_.find(std::string(client_id));
                if (found == names_.end()) throw std::runtime_error("join the room before you say anything");
                name = found->second;
                id = ++messages_;
            }
            emit("{\"type\":\"message\",\"id\":" + std::to_string(id) + ",\"from\":" + name + ",\"text\":" +
                 std::string(data) + "}");
            return "{\"id\":" + std::to_string(id) + "}";
        }
        if (operation == "stats") {
            std::lock_guard<std::mutex> guard(lock_);
            return "{\"members\":" + std::to_string(names_.size()) + ",\"messages\":" + std::to_string(messages_) + "}";
        }
        throw std::runtime_error("unknown operation " + std::string(operation));
    }

    void connect(std::string_view client_id) override {
        emit("{\"type\":\"welcome\",\"room\":\"" + uuid() + "\"}", client_id); // to the new client only
    }

    void disconnect(std::string_view client_id) override {
        std::lock_guard<std::mutex> guard(lock_);
        names_.erase(std::string(client_id));
    }

private:
    std::mutex lock_;
    std::map<std::string, std::string> names_; // client id -> name (JSON string)
    int messages_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The members
// ---------------------------------------------------------------------------------------------

/** Counts the events a member receives, to know when the chat is over. */
struct Mailbox {
    std::mutex lock;
    std::condition_variable changed;
    int messages = 0;

    bool wait_for_messages(int count, std::chrono::milliseconds limit) {
        std::unique_lock<std::mutex> guard(lock);
        return changed.wait_for(guard, limit, [&] { return messages >= count; });
    }
};

struct Member {
    std::string name;
    Mailbox mailbox; // before the connection: destroyed after it, as its handler uses it
    hulynet::Client client;
    hulynet::Reference room;
    hulynet::Connection connection;

    Member(std::string member_name, int port) : name(std::move(member_name)) {
        client = hulynet::Client::connect("127.0.0.1", port);
        client.wait(5s);
        room = client.get("chat-room", R"({"uuid":"lobby"})");
        connection = room.connect();
        connection.on_event([this](std::string_view event) {
            std::printf("  %-5s <- %.*s\n", name.c_str(), int(event.size()), event.data());
            if (event.find("\"type\":\"message\"") != std::string_view::npos) {
                std::lock_guard<std::mutex> guard(mailbox.lock);
                ++mailbox.messages;
                mailbox.changed.notify_all();
            }
        });
    }
};

int main() {
    try {
        hulynet::Server server = hulynet::Server::start("127.0.0.1", 0);
        std::printf("coordinator on 127.0.0.1:%d (hulynet %s)\n", server.port(), std::string(hulynet::version()).c_str());

        // The agent hosting chat rooms, served by a client of its own.
        hulynet::Client host = hulynet::Client::connect("127.0.0.1", server.port());
        host.wait(5s);
        hulynet::Agent agent = hulynet::Agent::builder().kind<ChatRoom>("chat-room").build();
        host.serve(agent);

        Member alice("alice", server.port());
        Member bob("bob", server.port());

        // Saying something before joining: the room throws, the caller gets hulynet::error.
        try {
            alice.connection.request("say", "\"am I here?\"");
        } catch (const hulynet::error &e) {
            std::printf("alice could not speak yet: %s (%s)\n", e.what(), e.name());
        }

        alice.connection.request("join", "\"Alice\"");
        bob.connection.request("join", "\"Bob\"");
        alice.connection.request("say", "\"Hi Bob!\"");
        // Asynchronously: the future holds the room's answer.
        std::future<std::string> sent = bob.connection.request_async("say", "\"Hello Alice, how are you?\"");
        std::printf("bob's message: %s\n", sent.get().c_str());
        alice.connection.request("say", "\"Fine, thanks.\"");

        const bool done = alice.mailbox.wait_for_messages(3, 10s) && bob.mailbox.wait_for_messages(3, 10s);
        // Any client may ask the room through the coordinator, by uuid.
        std::printf("room stats: %s\n", host.request("lobby", "stats").c_str());
        std::printf(done ? "everyone got every message\n" : "messages went missing\n");
        return done ? 0 : 1;
    } catch (const hulynet::error &e) {
        std::fprintf(stderr, "hulynet error %d (%s): %s\n", e.code(), e.name(), e.what());
        return 1;
    }
}
