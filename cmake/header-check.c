/* include/hulynet.h compiled on its own as C99 with -Wall -Wextra -Werror -pedantic. */
#include <hulynet.h>
#include <hulynet.h> /* the include guard */

#if HULYNET_VERSION_NUMBER != HULYNET_VERSION_MAJOR * 10000 + HULYNET_VERSION_MINOR * 100 + HULYNET_VERSION_PATCH
#error "HULYNET_VERSION_NUMBER does not match its parts"
#endif

int hulynet_header_check_c(void);

/* Every declaration is usable from C: take the address of a few functions and fill the structs. */
int hulynet_header_check_c(void) {
    hulynet_timeouts timeouts = HULYNET_TIMEOUTS_INIT;
    hulynet_server_stats stats = {0, 0, 0, 0, 0};
    hulynet_container_kind kind = HULYNET_CONTAINER_KIND_INIT;
    int (*start)(const char *, int, const hulynet_timeouts *, hulynet_server **) = hulynet_server_start;
    void (*destroy)(hulynet_client *) = hulynet_client_destroy;
    (void)timeouts;
    (void)stats;
    (void)kind;
    (void)start;
    (void)destroy;
    return HULYNET_OK + HULYNET_LOG_INFO + (int)sizeof(hulynet_log_fn) + (int)sizeof(hulynet_result_fn) +
           (int)sizeof(hulynet_event_fn) + (int)sizeof(hulynet_reference_fn);
}
