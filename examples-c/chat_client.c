/*
 * chat_client.c: an interactive Krmx chat client for chat_server.c.
 *   ./chat_client ws://127.0.0.1:8082 NAME
 * Every line typed is sent as a "chat" message; "/users" prints the user table; "/quit" or the
 * end of stdin disconnects. A lost connection is dialed again (reconnect on).
 * POSIX: stdin is watched with poll(), so that waiting for a line never holds up Krmx events.
 */
#define _POSIX_C_SOURCE 200809L /* poll, read */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "krmx.h"

/* Writes `text` as a JSON string (quotes, escapes) into `out`; false when it does not fit. */
static bool to_json_string(const char *text, char *out, size_t capacity) {
    size_t n = 0;
    out[n++] = '"';
    for (; *text; text++) {
        unsigned char c = (unsigned char)*text;
        if (n + 8 >= capacity) return false;
        if (c == '"' || c == '\\') n += (size_t)snprintf(out + n, capacity - n, "\\%c", c);
        else if (c < 0x20) n += (size_t)snprintf(out + n, capacity - n, "\\u%04x", c);
        else out[n++] = (char)c; /* UTF-8 passes through as it is (the library checks it) */
    }
    strcpy(out + n, "\"");
    return true;
}

/* Prints a "chat" payload of chat_server.c, {"from":"NAME","text":"..."}, as "<NAME> text".
 * The library writes payloads compact, with only " \ and control characters escaped (shown as
 * spaces here). Enough for chat: a real program would use a JSON library. */
static void print_chat(const char *p) {
    const char *text = strstr(p, "\",\"text\":\"");
    if (strncmp(p, "{\"from\":\"", 9) != 0 || text == NULL) return; /* names need no escaping */
    printf("<%.*s> ", (int)(text - p - 9), p + 9);
    for (p = text + 10; *p && *p != '"'; p++) {
        if (*p != '\\') {
            putchar(*p);
            continue;
        }
        if (p[1] == '\0' || (p[1] == 'u' && strlen(p) < 6)) break; /* cut short */
        p += p[1] == 'u' ? 5 : 1;                 /* the last digit of \u00XX, or the letter after \ */
        putchar(strchr("\"\\/", *p) ? *p : ' '); /* \" \\ \/ are themselves */
    }
    putchar('\n');
}

static void print_users(const KrmxClient *client) {
    size_t count = 0, i;
    char name[64]; /* 33 bytes hold any name of the default username rule */
    bool linked = false;
    krmx_client_user_count(client, &count);
    printf("users (%zu):\n", count);
    for (i = 0; i < count; i++)
        if (krmx_client_user(client, i, name, sizeof name, NULL, &linked) == KRMX_OK)
            printf("  %s (%s)\n", name, linked ? "online" : "offline");
}

/* Handles every whole line stdin holds: a chat line, /users or /quit. False on /quit or the end
 * of stdin. read(), not fgets(): stdio could buffer lines that poll() then would not see. */
static bool read_stdin(KrmxClient *client) {
    static char input[4096];
    static size_t len = 0;
    char json[8300], *line = input, *newline;
    ssize_t got = read(STDIN_FILENO, input + len, sizeof input - 1 - len);
    if (got <= 0) return false;
    len += (size_t)got;
    input[len] = '\0';
    while ((newline = strchr(line, '\n')) != NULL) {
        *newline = '\0';
        if (strcmp(line, "/quit") == 0) return false;
        if (strcmp(line, "/users") == 0) print_users(client);
        else if (line[0] && (!to_json_string(line, json, sizeof json) || krmx_send(client, "chat", json) != KRMX_OK))
            fprintf(stderr, "not sent: %s\n", krmx_last_error());
        line = newline + 1;
    }
    len -= (size_t)(line - input);
    if (len == sizeof input - 1) len = 0; /* a line too long for the buffer: dropped */
    memmove(input, line, len);            /* keep the start of an unfinished line */
    return true;
}

int main(int argc, char **argv) {
    KrmxClient *client = NULL;
    KrmxClientConfig config;
    KrmxClientStatus status;
    KrmxEvent event;
    bool reading = true; /* false after /quit or the end of stdin */
    if (argc != 3) {
        fprintf(stderr, "usage: %s ws://HOST:PORT NAME\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe */
    krmx_client_config_default(&config);
    config.reconnect = true; /* come back after a lost connection, re-linked as the same user */
    if (krmx_client_new(&config, &client) != KRMX_OK || krmx_client_connect(client, argv[1]) != KRMX_OK) {
        fprintf(stderr, "cannot connect: %s\n", krmx_last_error());
        krmx_client_free(client); /* free(NULL) is fine */
        return 1;
    }
    for (;;) {
        int wait_ms = 50;
        krmx_client_status(client, &status);
        /* Read stdin only while linked: lines typed earlier wait in the pipe, none is lost. */
        if (reading && status == KRMX_CLIENT_STATUS_LINKED) {
            struct pollfd fd = {STDIN_FILENO, POLLIN, 0};
            wait_ms = 0; /* the waiting happens in poll() instead */
            if (poll(&fd, 1, 50) > 0 && !read_stdin(client)) {
                reading = false;
                krmx_client_disconnect(client); /* CLOSE follows */
            }
        }
        /* Then take every event that is waiting (timeout 0 after the first). */
        while (krmx_client_poll(client, &event, wait_ms) == KRMX_OK) {
            wait_ms = 0;
            switch (event.kind) {
            case KRMX_EVENT_CONNECT: /* after a reconnect the library re-links by itself */
                krmx_client_status(client, &status);
                if (status == KRMX_CLIENT_STATUS_CONNECTED) krmx_client_link(client, argv[2], NULL);
                break;
            case KRMX_EVENT_ACCEPT: printf("linked as %s\n", argv[2]); break;
            case KRMX_EVENT_REJECT: /* the name is taken or invalid: give up */
                printf("rejected: %s\n", event.reason);
                krmx_client_disconnect(client);
                break;
            case KRMX_EVENT_JOIN: printf("* %s joined\n", event.username); break;
            case KRMX_EVENT_LINK: printf("* %s is online\n", event.username); break;
            case KRMX_EVENT_UNLINK: printf("* %s went offline\n", event.username); break;
            case KRMX_EVENT_LEAVE: printf("* %s left\n", event.username); break;
            case KRMX_EVENT_RECONNECTING: printf("* reconnecting (try %u): %s\n", event.attempt, event.reason); break;
            case KRMX_EVENT_RECONNECT: printf("* reconnected\n"); break;
            case KRMX_EVENT_MESSAGE:
                if (strcmp(event.message_type, "chat") == 0 && event.payload) print_chat(event.payload);
                break;
            case KRMX_EVENT_CLOSE:
                printf("closed: %s\n", event.reason);
                krmx_client_free(client);
                return reading ? 1 : 0; /* 0 when the user asked for it */
            default: break;
            }
        }
    }
}
