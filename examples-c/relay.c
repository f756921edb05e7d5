/*
 * relay.c: a Krmx relay, the server the benchmark (bench/compare.sh) measures as a C host.
 * Serves on ws://127.0.0.1:PORT (default 8082; 0 picks a free port), prints the port once, and
 * broadcasts every custom message unchanged to every linked user, its sender included.
 * Nothing else is printed, so the process does only what a relay must.
 *
 *   make -C examples-c && ./examples-c/relay 8082
 */
#include <stdio.h>
#include <stdlib.h>

#include "krmx.h"

int main(int argc, char **argv) {
    KrmxServer *server = NULL;
    KrmxEvent event;
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8082;

    if (argc > 2 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: relay [PORT]\n");
        return 2;
    }
    if (krmx_server_new(NULL, &server) != KRMX_OK ||
        krmx_server_listen(server, (uint16_t)port) != KRMX_OK) {
        fprintf(stderr, "cannot start: %s\n", krmx_last_error());
        krmx_server_free(server);
        return 1;
    }
    for (;;) {
        /* Wait as long as it takes: a relay only reacts. */
        if (krmx_server_poll(server, &event, -1) != KRMX_OK) continue;
        if (event.kind == KRMX_EVENT_LISTEN) {
            printf("listening on port %u\n", (unsigned)event.port);
            fflush(stdout);
        } else if (event.kind == KRMX_EVENT_MESSAGE) {
            if (krmx_server_broadcast(server, event.message_type, event.payload, NULL) != KRMX_OK)
                fprintf(stderr, "broadcast failed: %s\n", krmx_last_error());
        } else if (event.kind == KRMX_EVENT_CLOSE) {
            break;
        }
    }
    krmx_server_free(server);
    return 0;
}
