/*
 * Example 1: a container with request/response, in C (after huly.net's
 * examples/01-basic-container-request-response.ts).
 *
 * A container kind "data-processor" implemented in C keeps a key-value store per container
 * (operations store, retrieve, delete, list, stats). One client serves an agent hosting that kind;
 * another gets a container of the kind by labels and calls it: through the coordinator, through a
 * connection routed via the agent, and by uuid.
 *
 *   hulynet-example-01-request-response [--network HOST:PORT]
 *
 * Without --network it starts its own coordinator on 127.0.0.1 (a free port). Exits 0 when every
 * call answered as expected.
 */
#define _POSIX_C_SOURCE 200809L

#include "example_util.h"

#include <hulynet.h>

#include <pthread.h>

/* ------------------------------------------------------------------------------------------
 * The container kind, in C
 * ------------------------------------------------------------------------------------------ */

typedef struct entry {
    char *key;        /* decoded */
    char *value_json; /* raw JSON text */
} entry;

/* The kind's own state (kind_user): how many containers started and terminated. */
typedef struct kind_counters {
    pthread_mutex_t lock;
    int started, terminated;
} kind_counters;

/* One container's state. Requests may arrive on several library threads at once: a mutex. */
typedef struct data_processor {
    pthread_mutex_t lock;
    char *uuid;
    entry *entries;
    size_t count, capacity;
    kind_counters *counters;
} data_processor;

static int dp_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                    void **container_user) {
    kind_counters *counters = (kind_counters *)kind_user;
    data_processor *dp = (data_processor *)calloc(1, sizeof *dp);
    (void)container;
    if (dp == NULL || (dp->uuid = strdup(uuid)) == NULL) {
        free(dp);
        return HULYNET_EINTERNAL;
    }
    pthread_mutex_init(&dp->lock, NULL);
    dp->counters = counters;
    *container_user = dp;
    pthread_mutex_lock(&counters->lock);
    counters->started++;
    pthread_mutex_unlock(&counters->lock);
    printf("[DataProcessor] container %s created (options %s)\n", uuid, options_json);
    return HULYNET_OK;
}

static entry *dp_find(data_processor *dp, const char *key) {
    size_t i;
    for (i = 0; i < dp->count; i++) {
        if (strcmp(dp->entries[i].key, key) == 0) return &dp->entries[i];
    }
    return NULL;
}

/* Builds the answer to one operation under the container's lock; NULL with *error set on failure. */
static char *dp_answer(data_processor *dp, const char *operation, const char *data_json, const char **error) {
    example_buffer out = {NULL, 0, 0, 0};
    char *key = NULL;
    int needs_key = strcmp(operation, "store") == 0 || strcmp(operation, "retrieve") == 0 ||
                    strcmp(operation, "delete") == 0;

    if (needs_key) {
        key = json_string_member(data_json, "key");
        if (key == NULL) {
            *error = "this operation needs {\"key\": string}";
            return NULL;
        }
    }
    if (strcmp(operation, "store") == 0) {
        char *value = json_member(data_json, "value");
        entry *existing;
        if (value == NULL) {
            *error = "store needs {\"key\": string, \"value\": any JSON}";
            free(key);
            return NULL;
        }
        existing = dp_find(dp, key);
        if (existing != NULL) {
            free(existing->value_json);
            existing->value_json = value;
        } else {
            if (dp->count == dp->capacity) {
                size_t capacity = dp->capacity ? dp->capacity * 2 : 8;
                entry *grown = (entry *)realloc(dp->entries, capacity * sizeof *grown);
                if (grown == NULL) {
                    *error = "out of memory";
                    free(value);
                    free(key);
                    return NULL;
                }
                dp->entries = grown;
                dp->capacity = capacity;
            }
            dp->entries[dp->count].key = key;
            dp->entries[dp->count].value_json = value;
            dp->count++;
            key = NULL; /* kept */
            existing = &dp->entries[dp->count - 1];
        }
        buffer_append(&out, "{\"success\":true,\"key\":");
        buffer_append_json_string(&out, existing->key);
        buffer_append(&out, "}");
    } else if (strcmp(operation, "retrieve") == 0) {
        entry *found = dp_find(dp, key);
        buffer_printf(&out, "{\"success\":true,\"value\":%s,\"found\":%s}", found ? found->value_json : "null",
                      found ? "true" : "false");
    } else if (strcmp(operation, "delete") == 0) {
        entry *found = dp_find(dp, key);
        if (found != NULL) {
            free(found->key);
            free(found->value_json);
            *found = dp->entries[dp->count - 1];
            dp->count--;
        }
        buffer_printf(&out, "{\"success\":true,\"deleted\":%s}", found ? "true" : "false");
    } else if (strcmp(operation, "list") == 0) {
        size_t i;
        buffer_append(&out, "{\"success\":true,\"keys\":[");
        for (i = 0; i < dp->count; i++) {
            if (i > 0) buffer_append(&out, ",");
            buffer_append_json_string(&out, dp->entries[i].key);
        }
        buffer_append(&out, "]}");
    } else if (strcmp(operation, "stats") == 0) {
        buffer_printf(&out, "{\"success\":true,\"totalKeys\":%lu,\"uuid\":", (unsigned long)dp->count);
        buffer_append_json_string(&out, dp->uuid);
        buffer_append(&out, "}");
    } else {
        *error = "unknown operation (use store, retrieve, delete, list or stats)";
        free(key);
        return NULL;
    }
    free(key);
    if (out.failed) *error = "out of memory";
    return buffer_finish(&out);
}

static void dp_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                       const char *client_id) {
    data_processor *dp = (data_processor *)container_user;
    const char *error = NULL;
    char *answer;
    int status;
    (void)client_id; /* NULL through the coordinator, the caller's id on a connection */

    pthread_mutex_lock(&dp->lock);
    answer = dp_answer(dp, operation, data_json, &error);
    pthread_mutex_unlock(&dp->lock);

    /* Answering frees the request; a failure here only means the answer could not be delivered. */
    if (answer != NULL) {
        status = hulynet_request_reply(request, answer);
    } else {
        char message[256];
        snprintf(message, sizeof message, "%s: %s", operation, error ? error : "failed");
        status = hulynet_request_fail(request, message);
    }
    if (status != HULYNET_OK) {
        fprintf(stderr, "[DataProcessor] cannot answer %s: %s: %s\n", operation, hulynet_strerror(status),
                hulynet_last_error());
    }
    free(answer);
}

static void dp_terminate(void *container_user) {
    data_processor *dp = (data_processor *)container_user;
    size_t i;
    printf("[DataProcessor] container %s terminating, cleaning up %lu entries\n", dp->uuid, (unsigned long)dp->count);
    for (i = 0; i < dp->count; i++) {
        free(dp->entries[i].key);
        free(dp->entries[i].value_json);
    }
    free(dp->entries);
    free(dp->uuid);
    pthread_mutex_destroy(&dp->lock);
    pthread_mutex_lock(&dp->counters->lock);
    dp->counters->terminated++;
    pthread_mutex_unlock(&dp->counters->lock);
    free(dp);
}

/* ------------------------------------------------------------------------------------------
 * The client side
 * ------------------------------------------------------------------------------------------ */

/* Calls `operation` on the container through the coordinator and prints the exchange. */
static int call(hulynet_reference *reference, const char *operation, const char *data_json, char **result) {
    int status;
    hulynet_free(*result);
    *result = NULL;
    status = hulynet_reference_request(reference, operation, data_json, EXAMPLE_TIMEOUT_MS, result);
    if (status == HULYNET_OK) printf("  %s(%s) -> %s\n", operation, data_json ? data_json : "null", *result);
    return status;
}

/* The raw JSON of member `name` of `json` equals `expected`. */
static int member_is(const char *json, const char *name, const char *expected) {
    char *value = json_member(json, name);
    int same = value != NULL && strcmp(value, expected) == 0;
    free(value);
    return same;
}

int main(int argc, char **argv) {
    char host[256];
    int port, parsed, status, exit_code = 1;
    kind_counters counters;
    hulynet_container_kind kinds[1];
    hulynet_server *server = NULL;
    hulynet_client *agent_side = NULL, *client = NULL;
    hulynet_agent *agent = NULL;
    hulynet_reference *reference = NULL;
    hulynet_connection *connection = NULL;
    char *result = NULL, *uuid = NULL;

    parsed = example_arguments(argc, argv, host, sizeof host, &port,
                               "Example 1: a C container kind with state (a key-value store), called by a client.");
    if (parsed != 0) return parsed > 0 ? 0 : 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_mutex_init(&counters.lock, NULL);
    counters.started = counters.terminated = 0;

    printf("=== Basic Container with Request/Response Example (C, hulynet %s) ===\n\n", hulynet_version_string());

    /* 1. The network: our own coordinator on a free port, or the one given. */
    if (host[0] == '\0') {
        strcpy(host, "127.0.0.1");
        CHECK(hulynet_server_start(host, 0, NULL, &server));
        port = hulynet_server_port(server);
        EXPECT(port > 0, "a bound port, got %d", port);
        printf("* network server started on %s:%d\n", host, port);
    } else {
        printf("* using the network at %s:%d\n", host, port);
    }

    /* 2. An agent hosting the C kind, served (its own endpoint) by a client of its own. */
    memset(kinds, 0, sizeof kinds);
    kinds[0].size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    kinds[0].kind = "data-processor";
    kinds[0].kind_user = &counters;
    kinds[0].start = dp_start;
    kinds[0].request = dp_request;
    kinds[0].terminate = dp_terminate;
    CHECK(hulynet_agent_create(NULL, kinds, 1, &agent));
    CHECK(hulynet_client_connect(host, port, NULL, &agent_side));
    CHECK(hulynet_client_wait(agent_side, EXAMPLE_TIMEOUT_MS));
    CHECK(hulynet_client_serve_agent(agent_side, agent, "127.0.0.1", 0, EXAMPLE_TIMEOUT_MS));
    printf("* agent %s serving kind data-processor\n", hulynet_agent_uuid(agent));

    /* 3. A client. */
    CHECK(hulynet_client_connect(host, port, NULL, &client));
    CHECK(hulynet_client_wait(client, EXAMPLE_TIMEOUT_MS));
    printf("* client %s connected\n\n", hulynet_client_id(client));

    /* 4. Get (start) a container of the kind for labels ["user1"]. */
    printf("--- Requesting container ---\n");
    CHECK(hulynet_client_get(client, "data-processor", "{\"labels\":[\"user1\"]}", EXAMPLE_TIMEOUT_MS, &reference));
    uuid = strdup(hulynet_reference_uuid(reference));
    EXPECT(uuid != NULL && uuid[0] != '\0', "a container uuid");
    printf("* got container %s (endpoint %s)\n\n", uuid, hulynet_reference_endpoint(reference));

    /* 5. Requests through the coordinator. */
    printf("--- Storing data ---\n");
    CHECK(call(reference, "store", "{\"key\":\"user:123\",\"value\":{\"name\":\"Alice\",\"age\":30}}", &result));
    EXPECT(member_is(result, "success", "true"), "store to succeed: %s", result);
    CHECK(call(reference, "store", "{\"key\":\"user:456\",\"value\":{\"name\":\"Bob\",\"age\":25}}", &result));
    CHECK(call(reference, "store", "{\"key\":\"config:app\",\"value\":{\"theme\":\"dark\"}}", &result));

    printf("\n--- Retrieving data ---\n");
    CHECK(call(reference, "retrieve", "{\"key\":\"user:123\"}", &result));
    EXPECT(member_is(result, "found", "true"), "user:123 found: %s", result);
    {
        char *value = json_member(result, "value");
        char *name = value ? json_string_member(value, "name") : NULL;
        int alice = name != NULL && strcmp(name, "Alice") == 0;
        free(name);
        free(value);
        EXPECT(alice, "user:123 to be Alice: %s", result);
    }
    CHECK(call(reference, "retrieve", "{\"key\":\"user:456\"}", &result));
    EXPECT(member_is(result, "found", "true"), "user:456 found: %s", result);
    CHECK(call(reference, "retrieve", "{\"key\":\"nonexistent\"}", &result));
    EXPECT(member_is(result, "found", "false"), "nonexistent not found: %s", result);

    printf("\n--- Listing all keys ---\n");
    CHECK(call(reference, "list", NULL, &result));
    {
        char *keys = json_member(result, "keys");
        long count = keys ? json_count(keys) : -1;
        free(keys);
        EXPECT(count == 3, "3 keys, got %ld: %s", count, result);
    }

    printf("\n--- Getting stats ---\n");
    CHECK(call(reference, "stats", NULL, &result));
    EXPECT(member_is(result, "totalKeys", "3"), "3 keys: %s", result);

    printf("\n--- Deleting data ---\n");
    CHECK(call(reference, "delete", "{\"key\":\"user:456\"}", &result));
    EXPECT(member_is(result, "deleted", "true"), "user:456 deleted: %s", result);
    CHECK(call(reference, "stats", NULL, &result));
    EXPECT(member_is(result, "totalKeys", "2"), "2 keys after the delete: %s", result);

    /* 6. An error answer: the container fails the request, the caller gets HULYNET_EREMOTE. */
    printf("\n--- An unknown operation ---\n");
    hulynet_free(result);
    result = NULL;
    status = hulynet_reference_request(reference, "compress", NULL, EXAMPLE_TIMEOUT_MS, &result);
    EXPECT(status == HULYNET_EREMOTE && result == NULL, "HULYNET_EREMOTE, got %d (%s)", status, hulynet_strerror(status));
    printf("  compress(null) -> %s: %s\n", hulynet_strerror(status), hulynet_last_error());

    /* 7. The same container over a connection (routed through the agent), and by uuid. */
    printf("\n--- Over a connection, and by uuid ---\n");
    CHECK(hulynet_reference_connect(reference, EXAMPLE_TIMEOUT_MS, &connection));
    hulynet_free(result);
    result = NULL;
    CHECK(hulynet_connection_request(connection, "retrieve", "{\"key\":\"config:app\"}", EXAMPLE_TIMEOUT_MS, &result));
    printf("  connection: retrieve({\"key\":\"config:app\"}) -> %s\n", result);
    EXPECT(member_is(result, "found", "true"), "config:app found: %s", result);
    hulynet_free(result);
    result = NULL;
    CHECK(hulynet_client_request(client, uuid, "stats", NULL, EXAMPLE_TIMEOUT_MS, &result));
    printf("  by uuid: stats(null) -> %s\n", result);
    EXPECT(member_is(result, "totalKeys", "2"), "2 keys: %s", result);
    hulynet_free(result);
    result = NULL;
    CHECK(hulynet_client_list(client, "data-processor", EXAMPLE_TIMEOUT_MS, &result));
    printf("  containers of kind data-processor: %s\n", result);
    EXPECT(json_count(result) >= 1, "at least one data-processor container: %s", result);

    /* 8. Clean up: close, release, stop the agent (its containers terminate), disconnect. */
    printf("\n--- Cleanup ---\n");
    hulynet_connection_destroy(connection);
    connection = NULL;
    CHECK(hulynet_reference_release(reference, EXAMPLE_TIMEOUT_MS));
    hulynet_reference_destroy(reference);
    reference = NULL;
    hulynet_client_destroy(client);
    client = NULL;
    hulynet_agent_destroy(agent);
    agent = NULL;
    pthread_mutex_lock(&counters.lock);
    status = counters.started == 1 && counters.terminated == 1;
    printf("* containers started: %d, terminated: %d\n", counters.started, counters.terminated);
    pthread_mutex_unlock(&counters.lock);
    EXPECT(status, "the one container started to be terminated with its agent");
    exit_code = 0;
    printf("\n* example completed successfully\n");

fail:
    hulynet_free(result);
    free(uuid);
    hulynet_connection_destroy(connection);
    hulynet_reference_destroy(reference);
    hulynet_client_destroy(client);
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(agent_side);
    hulynet_server_destroy(server);
    pthread_mutex_destroy(&counters.lock);
    return exit_code;
}
