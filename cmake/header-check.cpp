// include/hulynet.h compiled on its own as C++17 with -Wall -Wextra -Werror -pedantic.
#include <hulynet.h>
#include <hulynet.h> // the include guard

#include <type_traits>

static_assert(HULYNET_VERSION_NUMBER == HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH,
              "HULYNET_VERSION_NUMBER does not match its parts");
static_assert(std::is_trivially_copyable<hulynet_timeouts>::value, "hulynet_timeouts is plain data");
static_assert(std::is_trivially_copyable<hulynet_server_stats>::value, "hulynet_server_stats is plain data");
static_assert(std::is_same<decltype(&hulynet_free), void (*)(void *)>::value, "hulynet_free has C linkage and type");

namespace {
// Callbacks written in C++ with C linkage-compatible signatures.
void on_log(void *, int, const char *) {}
void on_event(void *, const char *) {}
void on_result(void *, int, const char *) {}
} // namespace

int hulynet_header_check_cxx();
int hulynet_header_check_cxx() {
    hulynet_log_fn log = on_log;
    hulynet_event_fn event = on_event;
    hulynet_result_fn result = on_result;
    hulynet_container_kind kind = HULYNET_CONTAINER_KIND_INIT;
    kind.kind = "kind";
    hulynet_timeouts timeouts = HULYNET_TIMEOUTS_INIT;
    (void)log;
    (void)event;
    (void)result;
    (void)kind;
    (void)timeouts;
    return HULYNET_OK;
}
