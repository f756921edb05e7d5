/*
 * chat_server.c: a Krmx chat server.
 *
 *   ./chat_server [PORT]          (default 8082; 0 picks a free port)
 *
 * Every custom message "chat" with a JSON string as payload is relayed to every linked user
 * (the sender too) as {"type":"chat","payload":{"from":USER,"text":...}}.
 * It also keeps the shared counter of game_loop.c: every "counter/add" with an integer payload is
 * relayed as is to every linked user, and a user that links gets the current total first as
 * "counter/set". Because a host sees the server's events strictly in order, that total holds
 * exactly the adds that were relayed before this user could receive them: no add is lost or
 * counted twice, however late a user links.
 *
 * Stops cleanly on Ctrl-C (SIGINT) or SIGTERM: every user is told, then it exits 0.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "krmx.h"

/*
 * A signal handler may only do async-signal-safe things, and krmx_server_wake() is not one (it
 * takes locks). So the handler only sets this flag, and the main loop polls with a short timeout
 * (100 ms) and checks the flag between polls: at most 100 ms to notice, no CPU spent meanwhile.
 * This works whichever thread the signal lands on (the library's I/O threads included).
 * (A program that must react at once can instead block the signals, and have a thread wait for
 * them with sigwait() and call krmx_server_wake(): that runs on a normal thread, so it is safe.)
 */
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

/* Prints why the last call failed; the program goes on. */
static void report(const char *what, KrmxResult result) {
    if (result != KRMX_OK) fprintf(stderr, "%s failed: %s (%s)\n", what, krmx_result_name(result), krmx_last_error());
}

int main(int argc, char **argv) {
    KrmxServer *server = NULL;
    KrmxEvent event;
    KrmxResult result;
    struct sigaction action;
    long long counter = 0; /* the shared counter of game_loop.c */
    char json[8192];
    int port = argc > 1 ? atoi(argv[1]) : 8082;

    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe */

    /* NULL config: the defaults (127.0.0.1, any path, new users welcome). */
    if (port < 0 || port > 65535 || krmx_server_new(NULL, &server) != KRMX_OK ||
        krmx_server_listen(server, (uint16_t)port) != KRMX_OK) {
        fprintf(stderr, "cannot listen on port %d: %s\n", port, krmx_last_error());
        krmx_server_free(server); /* free(NULL) is fine */
        return 1;
    }
    for (;;) {
        if (stop_requested) {
            stop_requested = 0;
            /* Every user leaves (and is told so), then the sockets close: CLOSE follows. */
            report("krmx_server_close", krmx_server_close(server));
        }
        /* Wait up to 100 ms for the next event (a game loop would pass 0 once per frame). */
        result = krmx_server_poll(server, &event, 100);
        if (result == KRMX_NO_EVENT) continue;
        if (result != KRMX_OK) {
            report("krmx_server_poll", result);
            break;
        }
        switch (event.kind) {
        case KRMX_EVENT_LISTEN: printf("listening on port %u\n", (unsigned)event.port); break;
        case KRMX_EVENT_JOIN: printf("%s joined\n", event.username); break;
        case KRMX_EVENT_LINK:
            printf("%s linked\n", event.username);
            snprintf(json, sizeof json, "%lld", counter);
            report("krmx_server_send", krmx_server_send(server, event.username, "counter/set", json));
            break;
        case KRMX_EVENT_UNLINK: printf("%s unlinked\n", event.username); break;
        case KRMX_EVENT_LEAVE: printf("%s left\n", event.username); break;
        case KRMX_EVENT_MESSAGE:
            /* The payload is compact JSON text (NULL when there is none). A string starts with ". */
            if (strcmp(event.message_type, "chat") == 0 && event.payload && event.payload[0] == '"' &&
                event.payload_len < sizeof json - 64) {
                /* Usernames never need escaping (letters, digits and . - @ _ only), and the
                 * payload is already valid JSON, so it can be pasted in as it is. */
                snprintf(json, sizeof json, "{\"from\":\"%s\",\"text\":%s}", event.username, event.payload);
                printf("<%s> %s\n", event.username, event.payload);
                report("krmx_server_broadcast", krmx_server_broadcast(server, "chat", json, NULL));
            } else if (strcmp(event.message_type, "counter/add") == 0 && event.payload) {
                char *end = NULL;
                long long add = strtoll(event.payload, &end, 10);
                if (end == event.payload || *end != '\0') break; /* not an integer: ignored */
                counter += add;
                report("krmx_server_broadcast", krmx_server_broadcast(server, "counter/add", event.payload, NULL));
            }
            break;
        case KRMX_EVENT_CLOSE:
            printf("closed\n");
            krmx_server_free(server);
            return 0;
        default: break;
        }
    }
    krmx_server_free(server);
    return 1;
}
