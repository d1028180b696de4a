// hulynet::set_span_handler: a coordinator and an agent in this process; the agent's span of a
// request is the child of the coordinator's, in one trace, as copies the handler may keep.
#include "test_kinds.hpp"

using namespace test;

namespace {

struct Spans {
    std::mutex lock;
    std::vector<hulynet::Span> items;

    void add(const hulynet::Span &span) {
        std::lock_guard<std::mutex> guard(lock);
        items.push_back(span);
    }
    std::vector<hulynet::Span> all() {
        std::lock_guard<std::mutex> guard(lock);
        return items;
    }
    std::size_t named(std::string_view name) {
        std::size_t n = 0;
        for (const auto &span : all()) n += span.name == name;
        return n;
    }
};

} // namespace

TEST(spans_of_a_request_are_linked) {
    auto spans = std::make_shared<Spans>();
    // Before the network: each server and client reads the tracer once, when made.
    hulynet::set_span_handler([spans](const hulynet::Span &span) { spans->add(span); });
    {
        Network net;
        hulynet::Reference ref = net.client.get("echo", R"({"uuid":"cpp-traced"})");
        CHECK_EQ(ref.request("echo", "1"), std::string("1"));
        CHECK(wait_until([&] { return spans->named("hulynet.coordinator.request") == 1 && spans->named("hulynet.agent.request") == 1; }));
    }
    hulynet::set_span_handler(nullptr); // removed: the copy the library held is deleted
    const auto all = spans->all();
    const hulynet::Span *request = nullptr, *run = nullptr;
    for (const auto &span : all) {
        if (span.name == "hulynet.coordinator.request") request = &span;
        if (span.name == "hulynet.agent.request") run = &span;
    }
    REQUIRE(request != nullptr && run != nullptr);
    CHECK_EQ(run->trace_id, request->trace_id);
    CHECK_EQ(run->parent_span_id, request->span_id);
    CHECK(run->parent_is_remote);
    CHECK(request->parent_span_id.empty());
    CHECK_EQ(request->trace_id.size(), std::size_t{32});
    CHECK_EQ(request->span_id.size(), std::size_t{16});
    CHECK_EQ(request->kind, HULYNET_SPAN_KIND_SERVER);
    CHECK_EQ(request->status, HULYNET_SPAN_STATUS_UNSET);
    CHECK(request->start_ns > 0 && request->start_ns <= request->end_ns);
    const hulynet::Span::Value *container = run->attribute("hulynet.container");
    REQUIRE(container != nullptr && std::holds_alternative<std::string>(*container));
    CHECK_EQ(std::get<std::string>(*container), std::string("cpp-traced"));
    CHECK(run->attribute("no.such.key") == nullptr);
    CHECK_EQ(hulynet::spans_dropped(), std::uint64_t{0});
}

HULYNET_TEST_MAIN
