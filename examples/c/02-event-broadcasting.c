/*
 * Example 2: a container broadcasting events, in C (after huly.net's
 * examples/02-event-broadcasting.ts).
 *
 * A container kind "chat-room" implemented in C keeps the room's messages and its connected
 * clients: it welcomes each client that connects (an event to that client), broadcasts every new
 * message to all connected clients (hulynet_container_emit with client_id NULL) and tells the
 * others when one leaves. Three clients (alice, bob, charlie) get the same room, connect to it,
 * receive its events through hulynet_connection_set_event_handler, and chat.
 *
 *   hulynet-example-02-event-broadcasting [--network HOST:PORT]
 *
 * Without --network it starts its own coordinator on 127.0.0.1 (a free port). Exits 0 when every
 * client received every event it should have.
 */
#define _POSIX_C_SOURCE 200809L

#include "example_util.h"

#include <hulynet.h>

#include <inttypes.h>
#include <pthread.h>

/* ------------------------------------------------------------------------------------------
 * The container kind, in C
 * ------------------------------------------------------------------------------------------ */

typedef struct chat_message {
    char *username_json; /* a JSON string */
    char *text_json;     /* a JSON string */
    int64_t timestamp;   /* ms since the epoch */
} chat_message;

typedef struct chat_room {
    pthread_mutex_t lock;
    hulynet_container *container;
    char *uuid, *name;
    chat_message *messages;
    size_t message_count, message_capacity;
    char **clients; /* connected client ids */
    size_t client_count, client_capacity;
} chat_room;

static void room_free(chat_room *room) {
    size_t i;
    for (i = 0; i < room->message_count; i++) {
        free(room->messages[i].username_json);
        free(room->messages[i].text_json);
    }
    for (i = 0; i < room->client_count; i++) free(room->clients[i]);
    free(room->messages);
    free(room->clients);
    free(room->uuid);
    free(room->name);
    pthread_mutex_destroy(&room->lock);
    free(room);
}

static int room_start(void *kind_user, hulynet_container *container, const char *uuid, const char *options_json,
                      void **container_user) {
    chat_room *room = (chat_room *)calloc(1, sizeof *room);
    char *labels, *first;
    (void)kind_user;
    if (room == NULL) return HULYNET_EINTERNAL;
    pthread_mutex_init(&room->lock, NULL);
    room->container = container;
    /* The room's name is its first label, else "general". */
    labels = json_member(options_json, "labels");
    first = labels ? json_item(labels, 0) : NULL;
    room->name = first ? json_decode_string(first) : NULL;
    free(first);
    free(labels);
    if (room->name == NULL) room->name = strdup("general");
    room->uuid = strdup(uuid);
    if (room->name == NULL || room->uuid == NULL) {
        room_free(room);
        return HULYNET_EINTERNAL;
    }
    *container_user = room;
    printf("[ChatRoom] room '%s' created (%s)\n", room->name, uuid);
    return HULYNET_OK;
}

/* Sends `event` to one client, or to all (client_id NULL). Not under the room's lock. */
static void room_emit(chat_room *room, const char *client_id, char *event) {
    int delivered = 0, status;
    if (event == NULL) {
        fprintf(stderr, "[ChatRoom] out of memory for an event\n");
        return;
    }
    status = hulynet_container_emit(room->container, client_id, event, &delivered);
    if (status != HULYNET_OK) {
        fprintf(stderr, "[ChatRoom] cannot emit %s: %s: %s\n", event, hulynet_strerror(status), hulynet_last_error());
    }
    free(event);
}

static void room_connect(void *container_user, const char *client_id) {
    chat_room *room = (chat_room *)container_user;
    example_buffer event = {NULL, 0, 0, 0};
    char *copy = strdup(client_id);
    pthread_mutex_lock(&room->lock);
    if (copy != NULL && room->client_count == room->client_capacity) {
        size_t capacity = room->client_capacity ? room->client_capacity * 2 : 4;
        char **grown = (char **)realloc(room->clients, capacity * sizeof *grown);
        if (grown != NULL) {
            room->clients = grown;
            room->client_capacity = capacity;
        }
    }
    if (copy != NULL && room->client_count < room->client_capacity) {
        room->clients[room->client_count++] = copy;
        copy = NULL;
    }
    buffer_append(&event, "{\"type\":\"welcome\",\"message\":");
    {
        char welcome[300];
        snprintf(welcome, sizeof welcome, "Welcome to %s!", room->name);
        buffer_append_json_string(&event, welcome);
    }
    buffer_printf(&event, ",\"currentUsers\":%lu,\"messageHistory\":%lu}", (unsigned long)room->client_count,
                  (unsigned long)room->message_count);
    pthread_mutex_unlock(&room->lock);
    free(copy);
    printf("[ChatRoom] client %s joined '%s'\n", client_id, room->name);
    room_emit(room, client_id, buffer_finish(&event)); /* to the new client only */
}

static void room_disconnect(void *container_user, const char *client_id) {
    chat_room *room = (chat_room *)container_user;
    example_buffer event = {NULL, 0, 0, 0};
    size_t i;
    pthread_mutex_lock(&room->lock);
    for (i = 0; i < room->client_count; i++) {
        if (strcmp(room->clients[i], client_id) == 0) {
            free(room->clients[i]);
            room->clients[i] = room->clients[--room->client_count];
            break;
        }
    }
    buffer_append(&event, "{\"type\":\"userLeft\",\"clientId\":");
    buffer_append_json_string(&event, client_id);
    buffer_printf(&event, ",\"remainingUsers\":%lu}", (unsigned long)room->client_count);
    pthread_mutex_unlock(&room->lock);
    printf("[ChatRoom] client %s left '%s'\n", client_id, room->name);
    room_emit(room, NULL, buffer_finish(&event)); /* to everyone still connected */
}

static void append_message(example_buffer *out, const chat_message *message) {
    buffer_printf(out, "{\"username\":%s,\"text\":%s,\"timestamp\":%" PRId64 "}", message->username_json,
                  message->text_json, message->timestamp);
}

static void room_request(void *container_user, hulynet_request *request, const char *operation, const char *data_json,
                         const char *client_id) {
    chat_room *room = (chat_room *)container_user;
    example_buffer answer = {NULL, 0, 0, 0}, event = {NULL, 0, 0, 0};
    const char *error = NULL;
    char *answer_text;
    int status;
    size_t i;
    (void)client_id;

    pthread_mutex_lock(&room->lock);
    if (strcmp(operation, "sendMessage") == 0) {
        char *username = json_member(data_json, "username"), *text = json_member(data_json, "text");
        chat_message *message;
        if (username == NULL || text == NULL || username[0] != '"' || text[0] != '"') {
            error = "sendMessage needs {\"username\": string, \"text\": string}";
        } else if (room->message_count == room->message_capacity) {
            size_t capacity = room->message_capacity ? room->message_capacity * 2 : 8;
            chat_message *grown = (chat_message *)realloc(room->messages, capacity * sizeof *grown);
            if (grown == NULL) {
                error = "out of memory";
            } else {
                room->messages = grown;
                room->message_capacity = capacity;
            }
        }
        if (error == NULL) {
            message = &room->messages[room->message_count++];
            message->username_json = username;
            message->text_json = text;
            message->timestamp = example_now_ms();
            username = text = NULL;
            printf("[ChatRoom] %s: %s\n", message->username_json, message->text_json);
            buffer_append(&event, "{\"type\":\"newMessage\",\"message\":");
            append_message(&event, message);
            buffer_printf(&event, ",\"messageCount\":%lu}", (unsigned long)room->message_count);
            buffer_printf(&answer, "{\"success\":true,\"messageId\":%lu,\"timestamp\":%" PRId64 "}",
                          (unsigned long)(room->message_count - 1), message->timestamp);
        }
        free(username);
        free(text);
    } else if (strcmp(operation, "getHistory") == 0) {
        buffer_append(&answer, "{\"success\":true,\"messages\":[");
        for (i = 0; i < room->message_count; i++) {
            if (i > 0) buffer_append(&answer, ",");
            append_message(&answer, &room->messages[i]);
        }
        buffer_printf(&answer, "],\"totalMessages\":%lu}", (unsigned long)room->message_count);
    } else if (strcmp(operation, "getUserCount") == 0) {
        buffer_printf(&answer, "{\"success\":true,\"count\":%lu,\"connectedClients\":[", (unsigned long)room->client_count);
        for (i = 0; i < room->client_count; i++) {
            if (i > 0) buffer_append(&answer, ",");
            buffer_append_json_string(&answer, room->clients[i]);
        }
        buffer_append(&answer, "]}");
    } else if (strcmp(operation, "getRoomInfo") == 0) {
        buffer_append(&answer, "{\"success\":true,\"roomName\":");
        buffer_append_json_string(&answer, room->name);
        buffer_append(&answer, ",\"uuid\":");
        buffer_append_json_string(&answer, room->uuid);
        buffer_printf(&answer, ",\"messageCount\":%lu,\"clientCount\":%lu}", (unsigned long)room->message_count,
                      (unsigned long)room->client_count);
    } else {
        error = "unknown operation (use sendMessage, getHistory, getUserCount or getRoomInfo)";
    }
    pthread_mutex_unlock(&room->lock);

    /* Broadcast first (as the reference does), then answer. */
    if (event.data != NULL || event.failed) room_emit(room, NULL, buffer_finish(&event));
    answer_text = error == NULL ? buffer_finish(&answer) : (free(answer.data), (char *)NULL);
    if (answer_text != NULL) {
        status = hulynet_request_reply(request, answer_text);
    } else {
        char message[256];
        snprintf(message, sizeof message, "%s: %s", operation, error ? error : "out of memory");
        status = hulynet_request_fail(request, message);
    }
    if (status != HULYNET_OK) {
        fprintf(stderr, "[ChatRoom] cannot answer %s: %s: %s\n", operation, hulynet_strerror(status),
                hulynet_last_error());
    }
    free(answer_text);
}

static void room_terminate(void *container_user) {
    chat_room *room = (chat_room *)container_user;
    printf("[ChatRoom] room '%s' closing (%lu messages)\n", room->name, (unsigned long)room->message_count);
    room_free(room);
}

/* ------------------------------------------------------------------------------------------
 * The clients
 * ------------------------------------------------------------------------------------------ */

typedef struct participant {
    const char *name;
    hulynet_client *client;
    hulynet_reference *reference;
    hulynet_connection *connection;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int welcomes, messages, left; /* events received, by type */
} participant;

/* The connection's events, on a library thread. */
static void on_event(void *user, const char *json) {
    participant *p = (participant *)user;
    char *type = json_string_member(json, "type");
    printf("  [%s] event %s\n", p->name, json);
    pthread_mutex_lock(&p->lock);
    if (type != NULL && strcmp(type, "welcome") == 0) p->welcomes++;
    if (type != NULL && strcmp(type, "newMessage") == 0) p->messages++;
    if (type != NULL && strcmp(type, "userLeft") == 0) p->left++;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    free(type);
}

/* Waits until *counter (guarded by p->lock) reaches `count`; 0 on success, -1 on timeout. */
static int wait_for(participant *p, const int *counter, int count, int64_t timeout_ms) {
    struct timespec deadline;
    int reached;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (*counter < count) {
        if (pthread_cond_timedwait(&p->changed, &p->lock, &deadline) != 0) break;
    }
    reached = *counter >= count;
    pthread_mutex_unlock(&p->lock);
    return reached ? 0 : -1;
}

static int send_message(participant *p, const char *username, const char *text) {
    example_buffer data = {NULL, 0, 0, 0};
    char *json, *result = NULL;
    int status;
    buffer_append(&data, "{\"username\":");
    buffer_append_json_string(&data, username);
    buffer_append(&data, ",\"text\":");
    buffer_append_json_string(&data, text);
    buffer_append(&data, "}");
    json = buffer_finish(&data);
    if (json == NULL) return HULYNET_EINTERNAL;
    status = hulynet_connection_request(p->connection, "sendMessage", json, EXAMPLE_TIMEOUT_MS, &result);
    if (status == HULYNET_OK) printf("  [%s] sendMessage(%s) -> %s\n", p->name, json, result);
    hulynet_free(result);
    free(json);
    return status;
}

#define PARTICIPANTS 3

int main(int argc, char **argv) {
    static const char *const names[PARTICIPANTS] = {"alice", "bob", "charlie"};
    static const char *const usernames[PARTICIPANTS] = {"Alice", "Bob", "Charlie"};
    static const char *const texts[PARTICIPANTS] = {"Hello everyone!", "Hi Alice!", "Hey folks!"};
    const char *const room_options = "{\"uuid\":\"room-general\",\"labels\":[\"general\"]}";
    char host[256];
    int port, parsed, exit_code = 1, i;
    hulynet_container_kind kinds[1];
    hulynet_server *server = NULL;
    hulynet_client *agent_side = NULL;
    hulynet_agent *agent = NULL;
    participant people[PARTICIPANTS];
    char *result = NULL;

    parsed = example_arguments(argc, argv, host, sizeof host, &port,
                               "Example 2: a C container broadcasting events to the clients connected to it.");
    if (parsed != 0) return parsed > 0 ? 0 : 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(people, 0, sizeof people);
    for (i = 0; i < PARTICIPANTS; i++) {
        people[i].name = names[i];
        pthread_mutex_init(&people[i].lock, NULL);
        pthread_cond_init(&people[i].changed, NULL);
    }

    printf("=== Event Broadcasting Container Example (C, hulynet %s) ===\n\n", hulynet_version_string());

    /* 1. The network. */
    if (host[0] == '\0') {
        strcpy(host, "127.0.0.1");
        CHECK(hulynet_server_start(host, 0, NULL, &server));
        port = hulynet_server_port(server);
        EXPECT(port > 0, "a bound port, got %d", port);
        printf("* network server started on %s:%d\n", host, port);
    } else {
        printf("* using the network at %s:%d\n", host, port);
    }

    /* 2. An agent hosting the chat-room kind. */
    memset(kinds, 0, sizeof kinds);
    kinds[0].size = HULYNET_STRUCT_SIZE(hulynet_container_kind);
    kinds[0].kind = "chat-room";
    kinds[0].start = room_start;
    kinds[0].request = room_request;
    kinds[0].connect = room_connect;
    kinds[0].disconnect = room_disconnect;
    kinds[0].terminate = room_terminate;
    CHECK(hulynet_agent_create(NULL, kinds, 1, &agent));
    CHECK(hulynet_client_connect(host, port, NULL, &agent_side));
    CHECK(hulynet_client_wait(agent_side, EXAMPLE_TIMEOUT_MS));
    CHECK(hulynet_client_serve_agent(agent_side, agent, "127.0.0.1", 0, EXAMPLE_TIMEOUT_MS));
    printf("* agent %s serving kind chat-room\n", hulynet_agent_uuid(agent));

    /* 3. Three clients join the same room and listen to it. */
    printf("\n--- Clients joining the chat room ---\n");
    for (i = 0; i < PARTICIPANTS; i++) {
        participant *p = &people[i];
        CHECK(hulynet_client_connect(host, port, NULL, &p->client));
        CHECK(hulynet_client_wait(p->client, EXAMPLE_TIMEOUT_MS));
        CHECK(hulynet_client_get(p->client, "chat-room", room_options, EXAMPLE_TIMEOUT_MS, &p->reference));
        EXPECT(strcmp(hulynet_reference_uuid(p->reference), "room-general") == 0, "the room's uuid, got %s",
               hulynet_reference_uuid(p->reference));
        CHECK(hulynet_reference_connect(p->reference, EXAMPLE_TIMEOUT_MS, &p->connection));
        CHECK(hulynet_connection_set_event_handler(p->connection, on_event, p));
        printf("* %s (client %s) connected to room-general\n", p->name, hulynet_client_id(p->client));
    }
    for (i = 0; i < PARTICIPANTS; i++) {
        EXPECT(wait_for(&people[i], &people[i].welcomes, 1, EXAMPLE_TIMEOUT_MS) == 0, "%s to be welcomed", people[i].name);
    }

    /* 4. Room information, through the coordinator. */
    printf("\n--- Room information ---\n");
    CHECK(hulynet_reference_request(people[0].reference, "getRoomInfo", NULL, EXAMPLE_TIMEOUT_MS, &result));
    printf("  getRoomInfo -> %s\n", result);
    {
        char *clients = json_member(result, "clientCount");
        int three = clients != NULL && strcmp(clients, "3") == 0;
        free(clients);
        EXPECT(three, "3 clients in the room: %s", result);
    }
    hulynet_free(result);
    result = NULL;

    /* 5. Everyone says something; everyone hears everything. */
    printf("\n--- Sending messages ---\n");
    for (i = 0; i < PARTICIPANTS; i++) {
        CHECK(send_message(&people[i], usernames[i], texts[i]));
    }
    for (i = 0; i < PARTICIPANTS; i++) {
        EXPECT(wait_for(&people[i], &people[i].messages, PARTICIPANTS, EXAMPLE_TIMEOUT_MS) == 0,
               "%s to receive %d messages", people[i].name, PARTICIPANTS);
    }
    printf("* every client received all %d messages\n", PARTICIPANTS);

    /* 6. Who is here, and the history. */
    printf("\n--- User count ---\n");
    CHECK(hulynet_connection_request(people[1].connection, "getUserCount", NULL, EXAMPLE_TIMEOUT_MS, &result));
    printf("  getUserCount -> %s\n", result);
    {
        char *count = json_member(result, "count");
        int three = count != NULL && strcmp(count, "3") == 0;
        free(count);
        EXPECT(three, "3 users: %s", result);
    }
    hulynet_free(result);
    result = NULL;

    printf("\n--- Message history ---\n");
    CHECK(hulynet_reference_request(people[2].reference, "getHistory", NULL, EXAMPLE_TIMEOUT_MS, &result));
    {
        char *messages = json_member(result, "messages");
        long count = messages ? json_count(messages) : -1;
        long n;
        for (n = 0; n < count; n++) {
            char *item = json_item(messages, (size_t)n);
            char *who = item ? json_string_member(item, "username") : NULL;
            char *text = item ? json_string_member(item, "text") : NULL;
            printf("  %ld. %s: %s\n", n + 1, who ? who : "?", text ? text : "?");
            free(who);
            free(text);
            free(item);
        }
        free(messages);
        EXPECT(count == PARTICIPANTS, "%d messages in the history: %s", PARTICIPANTS, result);
    }
    hulynet_free(result);
    result = NULL;

    /* 7. bob leaves; the others are told. */
    printf("\n--- bob leaves ---\n");
    hulynet_connection_destroy(people[1].connection);
    people[1].connection = NULL;
    EXPECT(wait_for(&people[0], &people[0].left, 1, EXAMPLE_TIMEOUT_MS) == 0, "alice to hear that bob left");
    EXPECT(wait_for(&people[2], &people[2].left, 1, EXAMPLE_TIMEOUT_MS) == 0, "charlie to hear that bob left");

    /* 8. Clean up. */
    printf("\n--- Cleanup ---\n");
    for (i = 0; i < PARTICIPANTS; i++) {
        hulynet_connection_destroy(people[i].connection);
        people[i].connection = NULL;
        CHECK(hulynet_reference_release(people[i].reference, EXAMPLE_TIMEOUT_MS));
        hulynet_reference_destroy(people[i].reference);
        people[i].reference = NULL;
    }
    exit_code = 0;
    printf("* example completed successfully\n");

fail:
    hulynet_free(result);
    for (i = 0; i < PARTICIPANTS; i++) {
        hulynet_connection_destroy(people[i].connection);
        hulynet_reference_destroy(people[i].reference);
        hulynet_client_destroy(people[i].client);
    }
    hulynet_agent_destroy(agent);
    hulynet_client_destroy(agent_side);
    hulynet_server_destroy(server);
    /* Every handle is gone, so no callback can run any more. */
    for (i = 0; i < PARTICIPANTS; i++) {
        pthread_cond_destroy(&people[i].changed);
        pthread_mutex_destroy(&people[i].lock);
    }
    return exit_code;
}
