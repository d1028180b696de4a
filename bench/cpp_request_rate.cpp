// Requests per second through the coordinator (`cs`) from C++ (hulynet.hpp), the same topology
// as `hulynet bench` and bench/c_request_rate.c: a server, an agent serving an echo kind written
// in C++, and a client, in one process on 127.0.0.1. Prints "<case>\t<requests/s>".
//
//   cpp_request_rate [seconds-per-case] [bytes]
#include <hulynet.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
class Echo : public hulynet::Container {
public:
    std::string request(std::string_view, std::string_view data, std::string_view) override { return std::string(data); }
};
} // namespace

int main(int argc, char **argv) {
    using clock = std::chrono::steady_clock;
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3;
    const int bytes = argc > 2 ? std::atoi(argv[2]) : 100;
    try {
        hulynet::Server server = hulynet::Server::start("127.0.0.1", 0);
        hulynet::Client host = hulynet::Client::connect("127.0.0.1", server.port());
        hulynet::Agent agent = hulynet::Agent::builder().kind<Echo>("echo").build();
        host.serve(agent);
        hulynet::Client client = hulynet::Client::connect("127.0.0.1", server.port());
        client.wait(std::chrono::seconds(5));
        hulynet::Reference reference = client.get("echo");
        const std::string uuid = reference.uuid();
        const std::string data = "\"" + std::string(static_cast<std::size_t>(bytes > 2 ? bytes - 2 : 0), 'x') + "\"";
        long count = 0;
        const auto begin = clock::now();
        const auto end = begin + std::chrono::duration<double>(seconds);
        while (clock::now() < end) {
            client.request(uuid, "echo", data);
            ++count;
        }
        const double elapsed = std::chrono::duration<double>(clock::now() - begin).count();
        std::printf("cs sync\t%.0f\n", static_cast<double>(count) / elapsed);
    } catch (const hulynet::error &error) {
        std::fprintf(stderr, "cpp_request_rate: %s\n", error.what());
        return 1;
    }
    return 0;
}
