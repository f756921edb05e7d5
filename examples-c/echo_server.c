/*
 * echo_server.c: the smallest useful Krmx host. Serves on ws://127.0.0.1:8082, prints who comes
 * and goes, and answers every custom message by broadcasting it to every linked user as
 * "chat/said" with {"from": <sender>, "said": <payload>}.
 *
 *   make -C examples-c && ./examples-c/echo_server
 */
#include <stdio.h>
#include <string.h>

#include "krmx.h"

int main(void) {
    KrmxServer *server = NULL;
    KrmxEvent event;
    char payload[4096];

    if (krmx_server_new(NULL, &server) != KRMX_OK || krmx_server_listen(server, 8082) != KRMX_OK) {
        fprintf(stderr, "cannot start: %s\n", krmx_last_error());
        krmx_server_free(server);
        return 1;
    }
    for (;;) {
        /* Wait up to 100 ms for the next event; a game loop would pass 0 once per frame. */
        if (krmx_server_poll(server, &event, 100) != KRMX_OK) continue;
        switch (event.kind) {
        case KRMX_EVENT_LISTEN: printf("listening on port %u\n", (unsigned)event.port); break;
        case KRMX_EVENT_JOIN: printf("%s joined\n", event.username); break;
        case KRMX_EVENT_LINK: printf("%s linked\n", event.username); break;
        case KRMX_EVENT_UNLINK: printf("%s unlinked\n", event.username); break;
        case KRMX_EVENT_LEAVE: printf("%s left\n", event.username); break;
        case KRMX_EVENT_MESSAGE:
            /* Usernames never need escaping (letters, digits and . - @ _ only). */
            snprintf(payload, sizeof payload, "{\"from\":\"%s\",\"said\":%s}", event.username,
                     event.payload ? event.payload : "null");
            if (krmx_server_broadcast(server, "chat/said", payload, NULL) != KRMX_OK)
                fprintf(stderr, "broadcast failed: %s\n", krmx_last_error());
            break;
        default: break;
        }
        fflush(stdout);
    }
}
