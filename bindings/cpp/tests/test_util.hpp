// test_util.hpp: a tiny test harness for the C++ binding's tests (no test framework dependency).
//
// TEST(name) { ... } defines a test; CHECK / CHECK_EQ record failures and go on; REQUIRE stops the
// test; CHECK_THROWS_CODE checks that an expression throws hulynet::error with a given code.
// main() (HULYNET_TEST_MAIN) runs every test, or those named on the command line, and prints
// each one's time. Waits are bounded polls (wait_until), never fixed sleeps.
#ifndef HULYNET_CPP_TEST_UTIL_HPP
#define HULYNET_CPP_TEST_UTIL_HPP

#include <hulynet.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace test {

using namespace std::chrono_literals;

struct Case {
    const char *name;
    void (*body)();
};

inline std::vector<Case> &cases() {
    static std::vector<Case> all;
    return all;
}

struct Register {
    Register(const char *name, void (*body)()) { cases().push_back(Case{name, body}); }
};

inline int &failures() {
    static int count = 0;
    return count;
}

struct Stop {}; // thrown by REQUIRE

inline void fail(const char *file, int line, const std::string &what) {
    ++failures();
    std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what.c_str());
}

template <class A, class B>
std::string describe(const A &a, const B &b) {
    std::ostringstream out;
    out << "got [" << a << "], expected [" << b << "]";
    return out.str();
}

/** Polls `condition` every 5 ms until it holds or `limit` passes; returns whether it held. */
inline bool wait_until(const std::function<bool()> &condition, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

inline bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

/** The code of the hulynet::error `body` throws (0: none; 1: another exception). */
template <class F>
int thrown_code(F &&body, std::string *message = nullptr) {
    try {
        body();
    } catch (const hulynet::error &e) {
        if (message != nullptr) *message = e.what();
        return e.code();
    } catch (...) {
        return 1;
    }
    return 0;
}

/** Short protocol timeouts so the suite stays fast. */
inline hulynet::Timeouts fast_timeouts() {
    hulynet::Timeouts timeouts;
    timeouts.alive = 1000ms;
    timeouts.unused_container = 300ms;
    timeouts.ping_interval = 200ms;
    timeouts.request = 3000ms;
    return timeouts;
}

inline hulynet::Server start_server() { return hulynet::Server::start("127.0.0.1", 0, fast_timeouts()); }

inline hulynet::Client connect_client(const hulynet::Server &server) {
    hulynet::Client client = hulynet::Client::connect("127.0.0.1", server.port(), fast_timeouts());
    client.wait(5s);
    return client;
}

/** Events collected by a handler, thread-safe. */
class Inbox {
public:
    hulynet::EventHandler handler() {
        return [this](std::string_view json) { push(std::string(json)); };
    }
    void push(std::string value) {
        std::lock_guard<std::mutex> guard(lock_);
        items_.push_back(std::move(value));
    }
    std::size_t size() {
        std::lock_guard<std::mutex> guard(lock_);
        return items_.size();
    }
    std::vector<std::string> items() {
        std::lock_guard<std::mutex> guard(lock_);
        return items_;
    }
    bool has(std::string_view part) {
        std::lock_guard<std::mutex> guard(lock_);
        for (const auto &item : items_)
            if (contains(item, part)) return true;
        return false;
    }
    bool wait_for(std::string_view part, std::chrono::milliseconds limit = 5s) {
        return wait_until([&] { return has(part); }, limit);
    }

private:
    std::mutex lock_;
    std::vector<std::string> items_;
};

/** A JSON string literal for `text` (enough for the tests' ASCII texts). */
inline std::string quote(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

inline int run(int argc, char **argv) {
    using clock = std::chrono::steady_clock;
    const auto all_start = clock::now();
    int ran = 0;
    for (const Case &c : cases()) {
        if (argc > 1) {
            bool wanted = false;
            for (int i = 1; i < argc; ++i) wanted = wanted || std::strcmp(argv[i], c.name) == 0;
            if (!wanted) continue;
        }
        const int before = failures();
        const auto start = clock::now();
        try {
            c.body();
        } catch (const Stop &) {
        } catch (const hulynet::error &e) {
            fail(__FILE__, __LINE__, std::string("unexpected hulynet::error ") + e.name() + " (" +
                                         std::to_string(e.code()) + "): " + e.what());
        } catch (const std::exception &e) {
            fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count();
        std::printf("%s %-44s %6lld ms\n", failures() == before ? "ok  " : "FAIL", c.name, static_cast<long long>(ms));
        std::fflush(stdout);
        ++ran;
    }
    const auto total = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - all_start).count();
    std::printf("%d tests, %d failed checks, %lld ms\n", ran, failures(), static_cast<long long>(total));
    return failures() == 0 && ran > 0 ? 0 : 1;
}

} // namespace test

#define TEST(name)                                                                                                    \
    static void test_##name();                                                                                        \
    static const test::Register test_register_##name(#name, &test_##name);                                            \
    static void test_##name()

#define CHECK(cond)                                                                                                   \
    do {                                                                                                              \
        if (!(cond)) test::fail(__FILE__, __LINE__, "CHECK(" #cond ")");                                              \
    } while (0)

#define REQUIRE(cond)                                                                                                 \
    do {                                                                                                              \
        if (!(cond)) {                                                                                                \
            test::fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");                                                     \
            throw test::Stop();                                                                                       \
        }                                                                                                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                                                \
    do {                                                                                                              \
        const auto &check_a_ = (a);                                                                                   \
        const auto &check_b_ = (b);                                                                                   \
        if (!(check_a_ == check_b_)) test::fail(__FILE__, __LINE__, #a " == " #b ": " + test::describe(check_a_, check_b_)); \
    } while (0)

// Checks that `expr` throws hulynet::error with code `code`; `message_part` (may be "") must occur
// in what().
#define CHECK_THROWS_CODE(expr, expected_code, message_part)                                                                   \
    do {                                                                                                              \
        try {                                                                                                         \
            (void)(expr);                                                                                             \
            test::fail(__FILE__, __LINE__, #expr " did not throw");                                                   \
        } catch (const hulynet::error &check_e_) {                                                                    \
            if (check_e_.code() != (expected_code))                                                                            \
                test::fail(__FILE__, __LINE__, #expr " threw code " + std::to_string(check_e_.code()) + " (" +        \
                                                   check_e_.what() + "), expected " #expected_code);                            \
            else if (!test::contains(check_e_.what(), (message_part)))                                                \
                test::fail(__FILE__, __LINE__, #expr " threw [" + std::string(check_e_.what()) +                     \
                                                   "], expected a message with [" + std::string(message_part) + "]"); \
        }                                                                                                             \
    } while (0)

#define HULYNET_TEST_MAIN                                                                                             \
    int main(int argc, char **argv) { return test::run(argc, argv); }

#endif
