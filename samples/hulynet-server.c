/*
 * hulynet-server: a Huly network coordinator, on include/hulynet.h only (C99 + POSIX).
 *
 *   hulynet-server [--host H] [--port P] [--stats-interval S] [--log-level L]
 *                  [--etcd URLS [--lease-ttl S] [--etcd-key K] [--advertise HOST:PORT]]
 *                  [--secret-key FILE [--allow FILE]] [--metrics-port M] [--metrics-host A]
 *
 * With --secret-key (NAME.key of `hulynet keygen`) it serves with CURVE encryption, admitting the
 * client keys of the --allow file (docs/SECURITY.md).
 *
 * With --etcd it is one of several coordinators that stand in for each other (docs/HA.md): it
 * campaigns for leadership through etcd and serves only while it leads, printing
 * "leading: hulynet-server listening on HOST:PORT" when it starts serving and "standing by: ..."
 * when it stops or another leads.
 *
 * Like the reference's network pod: the address defaults to the HOST and PORT environment
 * variables, then to 0.0.0.0:3737. Once bound it prints "hulynet-server listening on HOST:PORT"
 * (stdout, flushed) so scripts can wait for it; every S seconds (default 5, 0 for never) it prints
 * its counts of clients, agents and containers. SIGINT or SIGTERM stop it cleanly, with exit
 * code 0. A taken port or bad arguments end it with a message and a non-zero exit code.
 * With --metrics-port it serves GET /metrics (Prometheus text) and GET /health over HTTP on
 * A:M (A defaults to 127.0.0.1) and prints "hulynet-server metrics on A:M".
 *
 * Signals: SIGINT and SIGTERM are blocked before the library starts any thread (so every thread
 * inherits the mask) and taken synchronously by the main thread with sigtimedwait(), which also
 * paces the statistics. No signal handler runs at all.
 */
#define _POSIX_C_SOURCE 200809L

#include <hulynet.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_HOST "0.0.0.0"
#define DEFAULT_PORT 3737
#define DEFAULT_STATS_INTERVAL 5.0

/* Exit codes. */
#define EXIT_USAGE 2      /* bad arguments */
#define EXIT_FAILED 1     /* could not start (a taken port, ...) */

static const char *program = "hulynet-server";

static void usage(FILE *to) {
    fprintf(to,
            "usage: %s [--host H] [--port P] [--stats-interval S] [--log-level L] [--metrics-port M] [--metrics-host A]\n"
            "\n"
            "  --host H            address to listen on (default: $HOST, else " DEFAULT_HOST ")\n"
            "  --port P            port to listen on, 0 for any free one (default: $PORT, else %d)\n"
            "  --stats-interval S  seconds between statistics lines, 0 for none (default: 5)\n"
            "  --log-level L       trace, debug, info, notice, warning, error or critical (default: info)\n"
            "  --etcd URLS         campaign for leadership through etcd (http://host:port[,...]); serve only while leading\n"
            "  --lease-ttl S       with --etcd: seconds the leadership lease lives without renewal (1-300, default: 3)\n"
            "  --etcd-key K        with --etcd: the key the coordinators of one network campaign for\n"
            "  --advertise A       with --etcd: this coordinator's HOST:PORT as others see it\n"
            "  --secret-key FILE   serve with CURVE encryption with this secret key (NAME.key of hulynet keygen)\n"
            "  --allow FILE        with --secret-key: the allow list of client keys (KEY NAME lines), read again on change\n"
            "  --metrics-port M    serve GET /metrics and GET /health over HTTP on this port, 0 for any (default: none)\n"
            "  --metrics-host A    the address of the metrics port (default: 127.0.0.1)\n"
            "  -h, --help          this text\n",
            program, DEFAULT_PORT);
}

/* ------------------------------------------------------------------------------------------
 * Logging: the library's messages (and ours) to stderr, one line each, with a UTC time stamp.
 * ------------------------------------------------------------------------------------------ */

static const char *const level_names[] = {"trace", "debug", "info", "notice", "warning", "error", "critical"};

static const char *level_name(int level) {
    if (level < HULYNET_LOG_TRACE || level > HULYNET_LOG_CRITICAL) return "log";
    return level_names[level];
}

static int parse_level(const char *text) {
    int level;
    for (level = HULYNET_LOG_TRACE; level <= HULYNET_LOG_CRITICAL; level++) {
        if (strcmp(text, level_names[level]) == 0) return level;
    }
    return -1;
}

static void timestamp(char *buffer, size_t size) {
    struct timespec now;
    struct tm parts;
    size_t length;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || gmtime_r(&now.tv_sec, &parts) == NULL) {
        snprintf(buffer, size, "?");
        return;
    }
    length = strftime(buffer, size, "%Y-%m-%dT%H:%M:%S", &parts);
    snprintf(buffer + length, size - length, ".%03ldZ", (long)(now.tv_nsec / 1000000));
}

/* Called on library threads, possibly several at once: one fprintf per line keeps lines whole. */
static void log_line(void *user, int level, const char *message) {
    char when[40];
    (void)user;
    timestamp(when, sizeof when);
    fprintf(stderr, "%s %-8s %s\n", when, level_name(level), message);
}

/* ------------------------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------------------------ */

typedef struct options {
    const char *host;
    int port;
    double stats_interval;
    int log_level;
    const char *etcd;      /* NULL: a coordinator on its own */
    int lease_ttl_seconds;
    const char *etcd_key;
    const char *advertise;
    const char *secret_key_file; /* NULL: the plain wire */
    const char *allow_file;
    int metrics_port; /* -1: none */
    const char *metrics_host;
} options;

static int parse_port(const char *text, int *port) {
    char *end;
    long value;
    if (text == NULL || *text == '\0') return -1;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0 || value > 65535) return -1;
    *port = (int)value;
    return 0;
}

static int parse_seconds(const char *text, double *seconds) {
    char *end;
    double value;
    if (text == NULL || *text == '\0') return -1;
    errno = 0;
    value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(value >= 0.0) || value > 86400.0 * 365) return -1;
    *seconds = value;
    return 0;
}

/* "--name value" or "--name=value"; returns the value, advancing *index, or NULL. */
static const char *option_value(int argc, char **argv, int *index, const char *name, int *matched) {
    const char *arg = argv[*index];
    size_t length = strlen(name);
    *matched = 0;
    if (strncmp(arg, name, length) != 0) return NULL;
    if (arg[length] == '=') {
        *matched = 1;
        return arg + length + 1;
    }
    if (arg[length] != '\0') return NULL;
    *matched = 1;
    if (*index + 1 >= argc) return NULL;
    *index += 1;
    return argv[*index];
}

/* 0 to run, 1 to exit successfully (--help), -1 on bad arguments (reported). */
static int parse_arguments(int argc, char **argv, options *out) {
    const char *env_host = getenv("HOST");
    const char *env_port = getenv("PORT");
    int i;

    out->host = (env_host != NULL && *env_host != '\0') ? env_host : DEFAULT_HOST;
    out->port = DEFAULT_PORT;
    out->stats_interval = DEFAULT_STATS_INTERVAL;
    out->log_level = HULYNET_LOG_INFO;
    out->etcd = NULL;
    out->lease_ttl_seconds = 3;
    out->etcd_key = NULL;
    out->advertise = NULL;
    out->secret_key_file = NULL;
    out->allow_file = NULL;
    out->metrics_port = -1;
    out->metrics_host = "127.0.0.1";
    if (env_port != NULL && *env_port != '\0' && parse_port(env_port, &out->port) != 0) {
        fprintf(stderr, "%s: the PORT environment variable is not a port number (0-65535): '%s'\n", program, env_port);
        return -1;
    }

    for (i = 1; i < argc; i++) {
        int matched = 0;
        const char *value;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        value = option_value(argc, argv, &i, "--host", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --host needs an address\n", program);
                return -1;
            }
            out->host = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--port", &matched);
        if (matched) {
            if (parse_port(value, &out->port) != 0) {
                fprintf(stderr, "%s: --port needs a port number (0-65535), not '%s'\n", program, value ? value : "");
                return -1;
            }
            continue;
        }
        value = option_value(argc, argv, &i, "--metrics-port", &matched);
        if (matched) {
            if (parse_port(value, &out->metrics_port) != 0) {
                fprintf(stderr, "%s: --metrics-port needs a port number (0-65535), not '%s'\n", program, value ? value : "");
                return -1;
            }
            continue;
        }
        value = option_value(argc, argv, &i, "--metrics-host", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --metrics-host needs an address\n", program);
                return -1;
            }
            out->metrics_host = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--stats-interval", &matched);
        if (matched) {
            if (parse_seconds(value, &out->stats_interval) != 0) {
                fprintf(stderr, "%s: --stats-interval needs a number of seconds >= 0, not '%s'\n", program,
                        value ? value : "");
                return -1;
            }
            continue;
        }
        value = option_value(argc, argv, &i, "--log-level", &matched);
        if (matched) {
            out->log_level = value ? parse_level(value) : -1;
            if (out->log_level < 0) {
                fprintf(stderr, "%s: --log-level needs one of trace, debug, info, notice, warning, error, critical, not '%s'\n",
                        program, value ? value : "");
                return -1;
            }
            continue;
        }
        value = option_value(argc, argv, &i, "--etcd", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --etcd needs etcd's client URLs\n", program);
                return -1;
            }
            out->etcd = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--lease-ttl", &matched);
        if (matched) {
            double seconds = 0;
            if (parse_seconds(value, &seconds) != 0 || seconds < 1 || seconds > 300 || seconds != (double)(int)seconds) {
                fprintf(stderr, "%s: --lease-ttl needs whole seconds from 1 to 300, not '%s'\n", program, value ? value : "");
                return -1;
            }
            out->lease_ttl_seconds = (int)seconds;
            continue;
        }
        value = option_value(argc, argv, &i, "--etcd-key", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --etcd-key needs a key\n", program);
                return -1;
            }
            out->etcd_key = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--advertise", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --advertise needs HOST:PORT\n", program);
                return -1;
            }
            out->advertise = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--secret-key", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --secret-key needs a key file\n", program);
                return -1;
            }
            out->secret_key_file = value;
            continue;
        }
        value = option_value(argc, argv, &i, "--allow", &matched);
        if (matched) {
            if (value == NULL || *value == '\0') {
                fprintf(stderr, "%s: --allow needs an allow list file\n", program);
                return -1;
            }
            out->allow_file = value;
            continue;
        }
        fprintf(stderr, "%s: unknown argument '%s'\n", program, argv[i]);
        usage(stderr);
        return -1;
    }
    if (out->allow_file != NULL && out->secret_key_file == NULL) {
        fprintf(stderr, "%s: --allow needs --secret-key\n", program);
        return -1;
    }
    if (out->etcd == NULL && (out->etcd_key != NULL || out->advertise != NULL || out->lease_ttl_seconds != 3)) {
        fprintf(stderr, "%s: --lease-ttl, --etcd-key and --advertise need --etcd\n", program);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------------------------ */

/* The first word of a key file (a Z85 key: 40 characters) into key[41]; 0, or -1 (reported). */
static int read_key_file(const char *path, char key[41]) {
    FILE *file = fopen(path, "r");
    int read;
    if (file == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", program, path, strerror(errno));
        return -1;
    }
    read = fscanf(file, "%40s", key);
    fclose(file);
    if (read != 1 || strlen(key) != 40) {
        fprintf(stderr, "%s: %s holds no key (40 characters of Z85)\n", program, path);
        return -1;
    }
    return 0;
}

static double monotonic_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void print_stats(hulynet_server *server) {
    hulynet_server_stats stats;
    char when[40];
    int status = hulynet_server_stats_get(server, &stats);
    timestamp(when, sizeof when);
    if (status != HULYNET_OK) {
        fprintf(stderr, "%s %-8s hulynet-server: cannot read statistics: %s: %s\n", when, "error",
                hulynet_strerror(status), hulynet_last_error());
        return;
    }
    printf("%s stats: clients=%" PRId64 " agents=%" PRId64 " containers=%" PRId64 " requests=%" PRId64
           " malformed=%" PRId64 "\n",
           when, stats.clients, stats.agents, stats.containers, stats.requests, stats.malformed);
    fflush(stdout);
}

int main(int argc, char **argv) {
    options opts;
    sigset_t stop_signals;
    hulynet_server *server = NULL;
    int status, port, signal_number = 0, parsed, role = -1;
    char secret_key[41] = {0};
    hulynet_security security;
    double next_stats;
    char when[40];

    if (argc > 0 && argv[0] != NULL && *argv[0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        program = slash ? slash + 1 : argv[0];
    }
    parsed = parse_arguments(argc, argv, &opts);
    if (parsed > 0) return 0;
    if (parsed < 0) return EXIT_USAGE;

    /* Before any library thread exists, so that they all inherit the mask. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) != 0) {
        fprintf(stderr, "%s: sigprocmask: %s\n", program, strerror(errno));
        return EXIT_FAILED;
    }

    status = hulynet_set_log_handler(log_line, NULL, opts.log_level);
    if (status != HULYNET_OK) {
        fprintf(stderr, "%s: cannot set the log handler: %s: %s\n", program, hulynet_strerror(status),
                hulynet_last_error());
        return EXIT_FAILED;
    }

    if (opts.secret_key_file != NULL && read_key_file(opts.secret_key_file, secret_key) != 0) return EXIT_USAGE;
    memset(&security, 0, sizeof security);
    security.size = sizeof security;
    security.secret_key = secret_key;
    security.allow_list_path = opts.allow_file;
    if (opts.etcd != NULL) {
        hulynet_election_options election;
        memset(&election, 0, sizeof election);
        election.size = sizeof election;
        election.etcd = opts.etcd;
        election.key = opts.etcd_key;
        election.lease_ttl_ms = (int64_t)opts.lease_ttl_seconds * 1000;
        election.advertise = opts.advertise;
        status = hulynet_server_start_with(opts.host, opts.port, NULL, &election,
                                           opts.secret_key_file != NULL ? &security : NULL, &server);
    } else {
        status = hulynet_server_start_with(opts.host, opts.port, NULL, NULL,
                                           opts.secret_key_file != NULL ? &security : NULL, &server);
    }
    if (status != HULYNET_OK) {
        if (status == HULYNET_EBIND) {
            fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", program, opts.host, opts.port,
                    hulynet_last_error());
        } else {
            fprintf(stderr, "%s: cannot start on %s:%d: %s: %s\n", program, opts.host, opts.port,
                    hulynet_strerror(status), hulynet_last_error());
        }
        return EXIT_FAILED;
    }
    port = hulynet_server_port(server);
    if (port < 0) {
        fprintf(stderr, "%s: cannot read the bound port: %s: %s\n", program, hulynet_strerror(port),
                hulynet_last_error());
        hulynet_server_destroy(server);
        return EXIT_FAILED;
    }

    timestamp(when, sizeof when);
    fprintf(stderr, "%s %-8s hulynet-server %s (library %s) started\n", when, level_name(HULYNET_LOG_INFO),
            HULYNET_VERSION_STRING, hulynet_version_string());
    if (opts.etcd != NULL) {
        printf("hulynet-server campaigning through etcd %s for %s:%d\n", opts.etcd, opts.host, port);
    } else {
        printf("hulynet-server listening on %s:%d\n", opts.host, port);
    }
    if (opts.metrics_port >= 0) {
        int metrics_port = 0;
        status = hulynet_server_serve_metrics(server, opts.metrics_host, opts.metrics_port, &metrics_port);
        if (status != HULYNET_OK) {
            fprintf(stderr, "%s: cannot serve metrics on %s:%d: %s: %s\n", program, opts.metrics_host, opts.metrics_port,
                    hulynet_strerror(status), hulynet_last_error());
            hulynet_server_destroy(server);
            return EXIT_FAILED;
        }
        printf("hulynet-server metrics on %s:%d\n", opts.metrics_host, metrics_port);
    }
    fflush(stdout);

    next_stats = opts.stats_interval > 0 ? monotonic_seconds() + opts.stats_interval : 0;
    while (signal_number <= 0) {
        struct timespec wait;
        double seconds = 3600.0;
        if (opts.etcd != NULL) {
            /* Elected: say each change of role, looking 10 times a second. */
            int now_role = hulynet_server_role(server);
            if (now_role != role) {
                if (now_role == HULYNET_ROLE_LEADER) {
                    printf("leading: hulynet-server listening on %s:%d\n", opts.host, port);
                } else if (now_role == HULYNET_ROLE_STANDBY) {
                    char *health = NULL;
                    if (hulynet_server_health(server, &health) == HULYNET_OK) {
                        printf("standing by: %s\n", health);
                        hulynet_free(health);
                    } else {
                        printf("standing by\n");
                    }
                }
                fflush(stdout);
                role = now_role;
            }
            seconds = 0.1;
        }
        if (opts.stats_interval > 0) {
            double now = monotonic_seconds();
            if (now >= next_stats) {
                print_stats(server);
                while (next_stats <= now) next_stats += opts.stats_interval;
            }
            if (next_stats - now < seconds) seconds = next_stats - now;
        }
        if (seconds < 0.001) seconds = 0.001;
        wait.tv_sec = (time_t)seconds;
        wait.tv_nsec = (long)((seconds - (double)wait.tv_sec) * 1e9);
        signal_number = sigtimedwait(&stop_signals, NULL, &wait);
        if (signal_number < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "%s: sigtimedwait: %s\n", program, strerror(errno));
            break;
        }
    }

    timestamp(when, sizeof when);
    fprintf(stderr, "%s %-8s hulynet-server: %s, stopping\n", when, level_name(HULYNET_LOG_INFO),
            signal_number == SIGINT ? "SIGINT" : signal_number == SIGTERM ? "SIGTERM" : "error");
    hulynet_server_destroy(server);
    timestamp(when, sizeof when);
    fprintf(stderr, "%s %-8s hulynet-server: stopped\n", when, level_name(HULYNET_LOG_INFO));
    return signal_number > 0 ? 0 : EXIT_FAILED;
}
