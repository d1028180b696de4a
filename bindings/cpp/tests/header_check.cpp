// hulynet.hpp on its own, first and only include, with every warning an error (see CMakeLists.txt):
// it must be self-contained and warning-free. The templates are instantiated here too.
#include <hulynet.hpp>

namespace {

class Probe : public hulynet::Container {
public:
    std::string request(std::string_view operation, std::string_view data_json, std::string_view client_id) override {
        (void)operation;
        (void)client_id;
        emit(data_json);
        return std::string(data_json);
    }
};

class ProbeWithUuid : public Probe {
public:
    explicit ProbeWithUuid(std::string_view uuid) : id(uuid) {}
    std::string id;
};

class ProbeWithOptions : public Probe {
public:
    ProbeWithOptions(std::string_view uuid, std::string_view options_json) : id(uuid), options(options_json) {}
    std::string id, options;
};

} // namespace

hulynet::AgentBuilder hulynet_cpp_header_check_builder();
hulynet::AgentBuilder hulynet_cpp_header_check_builder() {
    hulynet::AgentBuilder builder = hulynet::Agent::builder();
    builder.kind<Probe>("a").kind<ProbeWithUuid>("b").kind<ProbeWithOptions>("c");
    return builder;
}
