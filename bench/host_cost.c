/*
 * host_cost.c: what draining events through the C API costs (scenario "host" of bench/compare.sh;
 * src/bin/krmx-bench/host.rs is the same through the Rust API, so the two compare).
 * One process holds a server and N clients. Phase server: every client sends K messages, the I/O
 * threads queue them (a settle pause), then this thread drains the N*K message events with
 * krmx_server_poll. Phase client: the server broadcasts K messages, then this thread drains the
 * N*K events round-robin with krmx_client_poll. Prints one JSON line.
 *
 *   cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -Iinclude bench/host_cost.c \
 *      target/release/libkrmx.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o host_cost
 *   ./host_cost [N [K]]            (default 10 clients, 20000 messages each)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "krmx.h"

#define MAX_CLIENTS 256

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void settle(void) {
    /* Long enough for the I/O threads to read every queued message before the drain is timed. */
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
}

static int fail(const char *what) {
    fprintf(stderr, "host_cost: %s: %s\n", what, krmx_last_error());
    return 1;
}

/* Polls the server and every client (events discarded) for about `ms` milliseconds. */
static void pump(KrmxServer *server, KrmxClient **clients, int n, int ms) {
    KrmxEvent event;
    for (int round = 0; round < ms; round++) {
        while (krmx_server_poll(server, &event, 1) == KRMX_OK) {}
        for (int i = 0; i < n; i++)
            while (krmx_client_poll(clients[i], &event, 0) == KRMX_OK) {}
    }
}

static int all_linked(KrmxClient **clients, int n) {
    for (int i = 0; i < n; i++) {
        KrmxClientStatus status;
        size_t count = 0;
        krmx_client_status(clients[i], &status);
        krmx_client_user_count(clients[i], &count);
        if (status != KRMX_CLIENT_STATUS_LINKED || count != (size_t)n) return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long k = argc > 2 ? atol(argv[2]) : 20000;
    KrmxServer *server = NULL;
    KrmxClient *clients[MAX_CLIENTS] = {0};
    int asked[MAX_CLIENTS] = {0};
    KrmxEvent event;
    char url[64], name[32], payload[96];
    uint16_t port = 0;
    int rc = 1;

    if (n < 1 || n > MAX_CLIENTS || k < 1) {
        fprintf(stderr, "usage: host_cost [CLIENTS (1..%d) [MESSAGES]]\n", MAX_CLIENTS);
        return 2;
    }
    if (krmx_server_new(NULL, &server) != KRMX_OK || krmx_server_listen(server, 0) != KRMX_OK ||
        krmx_server_port(server, &port) != KRMX_OK)
        return fail("server");
    snprintf(url, sizeof url, "ws://127.0.0.1:%u", (unsigned)port);
    for (int i = 0; i < n; i++)
        if (krmx_client_new(NULL, &clients[i]) != KRMX_OK || krmx_client_connect(clients[i], url) != KRMX_OK) {
            rc = fail("client");
            goto done;
        }
    for (int round = 0; !all_linked(clients, n); round++) {
        if (round > 30000) {
            fprintf(stderr, "host_cost: clients did not all link in time\n");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            KrmxClientStatus status;
            krmx_client_status(clients[i], &status);
            if (status == KRMX_CLIENT_STATUS_CONNECTED && !asked[i]) {
                asked[i] = 1;
                snprintf(name, sizeof name, "h%d", i);
                if (krmx_client_link(clients[i], name, NULL) != KRMX_OK) {
                    rc = fail("link");
                    goto done;
                }
            }
        }
        pump(server, clients, n, 1);
    }

    long expected = (long)n * k;
    for (int i = 0; i < n; i++)
        for (long seq = 0; seq < k; seq++) {
            snprintf(payload, sizeof payload, "\"~h%d~%ld~0~\"", i, seq);
            if (krmx_send(clients[i], "bench/m", payload) != KRMX_OK) {
                rc = fail("send");
                goto done;
            }
        }
    settle();
    double start = now_s();
    long drained = 0;
    while (drained < expected) {
        if (krmx_server_poll(server, &event, 0) != KRMX_OK && krmx_server_poll(server, &event, 5000) != KRMX_OK) {
            fprintf(stderr, "host_cost: server: only %ld of %ld messages arrived\n", drained, expected);
            goto done;
        }
        if (event.kind == KRMX_EVENT_MESSAGE) drained++;
    }
    double server_time = now_s() - start;

    for (long seq = 0; seq < k; seq++) {
        snprintf(payload, sizeof payload, "\"~server~%ld~0~\"", seq);
        if (krmx_server_broadcast(server, "bench/m", payload, NULL) != KRMX_OK) {
            rc = fail("broadcast");
            goto done;
        }
    }
    settle();
    long per_client[MAX_CLIENTS] = {0};
    int idle_rounds = 0;
    drained = 0;
    start = now_s();
    while (drained < expected) {
        long before = drained;
        for (int i = 0; i < n; i++)
            if (per_client[i] < k && krmx_client_poll(clients[i], &event, 0) == KRMX_OK &&
                event.kind == KRMX_EVENT_MESSAGE) {
                per_client[i]++;
                drained++;
            }
        idle_rounds = drained == before ? idle_rounds + 1 : 0;
        if (idle_rounds > 0) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            if (idle_rounds > 5000) {
                fprintf(stderr, "host_cost: clients: only %ld of %ld messages arrived\n", drained, expected);
                goto done;
            }
        }
    }
    double client_time = now_s() - start;
    printf("{\"scenario\":\"host\",\"host\":\"c\",\"clients\":%d,\"count\":%ld,\"events\":%ld,"
           "\"server_poll\":{\"events_per_s\":%.0f,\"ns_per_event\":%.1f},"
           "\"client_poll\":{\"events_per_s\":%.0f,\"ns_per_event\":%.1f}}\n",
           n, k, expected, (double)expected / server_time, server_time * 1e9 / (double)expected,
           (double)expected / client_time, client_time * 1e9 / (double)expected);
    rc = 0;
done:
    for (int i = 0; i < n; i++) krmx_client_free(clients[i]);
    krmx_server_free(server);
    return rc;
}
