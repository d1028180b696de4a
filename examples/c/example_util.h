/*
 * Helpers shared by the C examples: status checks, the --network argument, time, and a very small
 * JSON reader/writer (just enough for the examples' containers to read their requests).
 * Not part of hulynet's API.
 */
#ifndef HULYNET_EXAMPLE_UTIL_H
#define HULYNET_EXAMPLE_UTIL_H

#include <hulynet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Runs a hulynet call; on failure prints what failed and why, and jumps to `fail`. */
#define CHECK(call)                                                                                     \
    do {                                                                                                \
        int check_status_ = (call);                                                                     \
        if (check_status_ != HULYNET_OK) {                                                              \
            fprintf(stderr, "%s:%d: %s failed: %s (%d): %s\n", __FILE__, __LINE__, #call,               \
                    hulynet_strerror(check_status_), check_status_, hulynet_last_error());              \
            goto fail;                                                                                  \
        }                                                                                               \
    } while (0)

/* A condition the example expects; on failure prints it and jumps to `fail`. */
#define EXPECT(condition, ...)                                                                          \
    do {                                                                                                \
        if (!(condition)) {                                                                             \
            fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #condition);                    \
            fprintf(stderr, __VA_ARGS__);                                                               \
            fputc('\n', stderr);                                                                        \
            goto fail;                                                                                  \
        }                                                                                               \
    } while (0)

/* How long the examples wait for anything (ms). */
#define EXAMPLE_TIMEOUT_MS 10000

static inline int64_t example_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static inline void example_sleep_ms(long ms) {
    struct timespec wait;
    wait.tv_sec = ms / 1000;
    wait.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&wait, &wait) != 0 && errno == EINTR) {
    }
}

/* Parses `[--network HOST:PORT]`. Returns 0 (host/port set, or host left NULL: start a server),
 * 1 for --help, -1 on bad arguments (reported). `host` is a buffer of `host_size` bytes. */
static inline int example_arguments(int argc, char **argv, char *host, size_t host_size, int *port,
                                    const char *description) {
    int i;
    host[0] = '\0';
    *port = 0;
    for (i = 1; i < argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--network HOST:PORT]\n\n%s\n\nWithout --network it starts its own coordinator on "
                   "127.0.0.1 (a free port).\n", argv[0], description);
            return 1;
        }
        if (strcmp(argv[i], "--network") == 0 && i + 1 < argc) {
            value = argv[++i];
        } else if (strncmp(argv[i], "--network=", 10) == 0) {
            value = argv[i] + 10;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (usage: %s [--network HOST:PORT])\n", argv[0], argv[i], argv[0]);
            return -1;
        }
        {
            const char *colon = strrchr(value, ':');
            char *end;
            long number;
            if (colon == NULL || colon == value || (size_t)(colon - value) >= host_size) {
                fprintf(stderr, "%s: --network needs HOST:PORT, not '%s'\n", argv[0], value);
                return -1;
            }
            errno = 0;
            number = strtol(colon + 1, &end, 10);
            if (errno != 0 || *end != '\0' || end == colon + 1 || number < 1 || number > 65535) {
                fprintf(stderr, "%s: --network needs HOST:PORT with a port 1-65535, not '%s'\n", argv[0], value);
                return -1;
            }
            memcpy(host, value, (size_t)(colon - value));
            host[colon - value] = '\0';
            *port = (int)number;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * A growable string
 * ------------------------------------------------------------------------------------------ */

typedef struct example_buffer {
    char *data;
    size_t length, capacity;
    int failed; /* out of memory */
} example_buffer;

static inline void buffer_append_n(example_buffer *b, const char *text, size_t n) {
    if (b->failed) return;
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        char *grown;
        while (capacity < b->length + n + 1) capacity *= 2;
        grown = (char *)realloc(b->data, capacity);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, text, n);
    b->length += n;
    b->data[b->length] = '\0';
}

static inline void buffer_append(example_buffer *b, const char *text) { buffer_append_n(b, text, strlen(text)); }

static inline void buffer_printf(example_buffer *b, const char *format, ...) {
    char small[256];
    int n;
    va_list args;
    va_start(args, format);
    n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0) {
        b->failed = 1;
    } else if ((size_t)n < sizeof small) {
        buffer_append_n(b, small, (size_t)n);
    } else {
        char *big = (char *)malloc((size_t)n + 1);
        if (big == NULL) {
            b->failed = 1;
            return;
        }
        va_start(args, format);
        vsnprintf(big, (size_t)n + 1, format, args);
        va_end(args);
        buffer_append_n(b, big, (size_t)n);
        free(big);
    }
}

/* Appends `text` as a JSON string. */
static inline void buffer_append_json_string(example_buffer *b, const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    buffer_append(b, "\"");
    for (; *p; p++) {
        switch (*p) {
        case '"': buffer_append(b, "\\\""); break;
        case '\\': buffer_append(b, "\\\\"); break;
        case '\n': buffer_append(b, "\\n"); break;
        case '\r': buffer_append(b, "\\r"); break;
        case '\t': buffer_append(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                buffer_printf(b, "\\u%04x", (unsigned)*p);
            } else {
                buffer_append_n(b, (const char *)p, 1);
            }
        }
    }
    buffer_append(b, "\"");
}

/* The finished text (owned by the caller, free()), or NULL if memory ran out. */
static inline char *buffer_finish(example_buffer *b) {
    if (b->failed) {
        free(b->data);
        return NULL;
    }
    if (b->data == NULL) return strdup("");
    return b->data;
}

/* ------------------------------------------------------------------------------------------
 * A minimal JSON reader: finds members and array items in a JSON text and decodes strings.
 * ------------------------------------------------------------------------------------------ */

static inline const char *json_skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* The end of the JSON value starting at p (after leading space), or NULL if it is malformed. */
static inline const char *json_skip_value(const char *p) {
    p = json_skip_space(p);
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1] != '\0') p++;
        }
        return *p == '"' ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_skip_space(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = json_skip_value(p); /* the key */
                if (p == NULL) return NULL;
                p = json_skip_space(p);
                if (*p != ':') return NULL;
                p++;
            }
            p = json_skip_value(p);
            if (p == NULL) return NULL;
            p = json_skip_space(p);
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '\0') return NULL;
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    return p;
}

/* A copy of the raw JSON text of a span (free()). */
static inline char *json_copy_span(const char *begin, const char *end) {
    char *copy = (char *)malloc((size_t)(end - begin) + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, begin, (size_t)(end - begin));
    copy[end - begin] = '\0';
    return copy;
}

/* Reads 4 hex digits (stopping at the end of the text). */
static inline int json_hex4(const char *p, unsigned long *out) {
    int i;
    *out = 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        unsigned long digit;
        if (c >= '0' && c <= '9') digit = (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') digit = (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') digit = (unsigned long)(c - 'A' + 10);
        else return -1;
        *out = *out * 16 + digit;
    }
    return 0;
}

/* Decodes the JSON string at p into a new UTF-8 string (free()), or NULL if p is not a string. */
static inline char *json_decode_string(const char *p) {
    example_buffer out = {NULL, 0, 0, 0};
    p = json_skip_space(p);
    if (*p != '"') return NULL;
    for (p++; *p && *p != '"'; p++) {
        if (*p != '\\') {
            buffer_append_n(&out, p, 1);
            continue;
        }
        p++;
        switch (*p) {
        case '"': buffer_append(&out, "\""); break;
        case '\\': buffer_append(&out, "\\"); break;
        case '/': buffer_append(&out, "/"); break;
        case 'b': buffer_append(&out, "\b"); break;
        case 'f': buffer_append(&out, "\f"); break;
        case 'n': buffer_append(&out, "\n"); break;
        case 'r': buffer_append(&out, "\r"); break;
        case 't': buffer_append(&out, "\t"); break;
        case 'u': {
            unsigned long code, low;
            char utf8[4];
            size_t n;
            if (json_hex4(p + 1, &code) != 0) goto bad;
            p += 4;
            if (code >= 0xD800 && code <= 0xDBFF && p[1] == '\\' && p[2] == 'u' && json_hex4(p + 3, &low) == 0 &&
                low >= 0xDC00 && low <= 0xDFFF) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            if (code < 0x80) {
                utf8[0] = (char)code;
                n = 1;
            } else if (code < 0x800) {
                utf8[0] = (char)(0xC0 | (code >> 6));
                utf8[1] = (char)(0x80 | (code & 0x3F));
                n = 2;
            } else if (code < 0x10000) {
                utf8[0] = (char)(0xE0 | (code >> 12));
                utf8[1] = (char)(0x80 | ((code >> 6) & 0x3F));
                utf8[2] = (char)(0x80 | (code & 0x3F));
                n = 3;
            } else {
                utf8[0] = (char)(0xF0 | (code >> 18));
                utf8[1] = (char)(0x80 | ((code >> 12) & 0x3F));
                utf8[2] = (char)(0x80 | ((code >> 6) & 0x3F));
                utf8[3] = (char)(0x80 | (code & 0x3F));
                n = 4;
            }
            buffer_append_n(&out, utf8, n);
            break;
        }
        default: goto bad;
        }
    }
    if (*p != '"') goto bad;
    return buffer_finish(&out);
bad:
    free(out.data);
    return NULL;
}

/* The raw JSON text of member `name` of the object `json` (free()), or NULL if there is none. */
static inline char *json_member(const char *json, const char *name) {
    const char *p = json_skip_space(json);
    if (*p != '{') return NULL;
    p = json_skip_space(p + 1);
    if (*p == '}') return NULL;
    for (;;) {
        const char *key_end = json_skip_value(p), *value, *value_end;
        char *key;
        int same;
        if (key_end == NULL || *p != '"') return NULL;
        key = json_decode_string(p);
        if (key == NULL) return NULL;
        same = strcmp(key, name) == 0;
        free(key);
        p = json_skip_space(key_end);
        if (*p != ':') return NULL;
        value = json_skip_space(p + 1);
        value_end = json_skip_value(value);
        if (value_end == NULL) return NULL;
        if (same) return json_copy_span(value, value_end);
        p = json_skip_space(value_end);
        if (*p != ',') return NULL;
        p = json_skip_space(p + 1);
    }
}

/* The decoded string member `name` of the object `json` (free()), or NULL. */
static inline char *json_string_member(const char *json, const char *name) {
    char *raw = json_member(json, name);
    char *text = raw ? json_decode_string(raw) : NULL;
    free(raw);
    return text;
}

/* The raw JSON text of item `index` of the array `json` (free()), or NULL. */
static inline char *json_item(const char *json, size_t index) {
    const char *p = json_skip_space(json);
    size_t i = 0;
    if (*p != '[') return NULL;
    p = json_skip_space(p + 1);
    if (*p == ']') return NULL;
    for (;;) {
        const char *end = json_skip_value(p);
        if (end == NULL) return NULL;
        if (i == index) return json_copy_span(p, end);
        p = json_skip_space(end);
        if (*p != ',') return NULL;
        p = json_skip_space(p + 1);
        i++;
    }
}

/* The number of items of the array `json`, or -1. */
static inline long json_count(const char *json) {
    const char *p = json_skip_space(json);
    long count = 0;
    if (*p != '[') return -1;
    p = json_skip_space(p + 1);
    if (*p == ']') return 0;
    for (;;) {
        p = json_skip_value(p);
        if (p == NULL) return -1;
        count++;
        p = json_skip_space(p);
        if (*p == ']') return count;
        if (*p != ',') return -1;
        p = json_skip_space(p + 1);
    }
}

#endif /* HULYNET_EXAMPLE_UTIL_H */
