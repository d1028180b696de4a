/* A program using an installed hulynet: the header, the library, a server on a free port. */
#include <hulynet.h>

#include <stdio.h>

int main(void) {
    hulynet_server *server = NULL;
    int status, port;

    printf("hulynet %s (header %s)\n", hulynet_version_string(), HULYNET_VERSION_STRING);
    if (hulynet_version_number() != HULYNET_VERSION_NUMBER) {
        fprintf(stderr, "consumer: the library is version %u, the header %d\n", hulynet_version_number(),
                HULYNET_VERSION_NUMBER);
        return 1;
    }
    status = hulynet_server_start("127.0.0.1", 0, NULL, &server);
    if (status != HULYNET_OK) {
        fprintf(stderr, "consumer: hulynet_server_start: %s: %s\n", hulynet_strerror(status), hulynet_last_error());
        return 1;
    }
    port = hulynet_server_port(server);
    if (port <= 0) {
        fprintf(stderr, "consumer: hulynet_server_port: %d: %s\n", port, hulynet_last_error());
        hulynet_server_destroy(server);
        return 1;
    }
    printf("server on 127.0.0.1:%d\n", port);
    hulynet_server_destroy(server);
    printf("ok\n");
    return 0;
}
