/*
 * game_loop.c: a headless game loop at a fixed 30 ticks per second, keeping a counter in sync
 * with every other game_loop linked to the same chat_server.c.
 *   ./game_loop ws://127.0.0.1:8082 NAME ADDS TOTAL
 *
 * Once linked it adds 1 to the shared counter ADDS times, one add per tick, by sending
 * {"type":"counter/add","payload":1}. The server relays every add to every linked user (the
 * sender too), and gives a user that links the current total first ("counter/set"). A game loop
 * changes its counter only by what it receives, never by what it sends: every copy sees the same
 * adds in the same order, so all converge. When the counter reaches TOTAL it prints
 * "counter TOTAL", disconnects and exits 0; after 60 seconds it gives up and exits 1.
 * POSIX: clock_nanosleep() keeps the ticks regular.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, clock_nanosleep */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "krmx.h"

#define TICKS_PER_SECOND 30
#define MAX_TICKS (60 * TICKS_PER_SECOND)

/* Sleeps until `next` plus one tick, and moves `next` on: ticks do not drift with the work. */
static void sleep_until_next_tick(struct timespec *next) {
    next->tv_nsec += 1000000000L / TICKS_PER_SECOND;
    if (next->tv_nsec >= 1000000000L) {
        next->tv_sec++;
        next->tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR) continue;
}

/* Disconnects, and polls until CLOSE says the connection is gone; then frees the client. */
static void disconnect_and_free(KrmxClient *client) {
    KrmxEvent event;
    int waited;
    if (krmx_client_disconnect(client) == KRMX_OK)
        for (waited = 0; waited < 100; waited++) /* at most 10 s, a guard against a hang */
            if (krmx_client_poll(client, &event, 100) == KRMX_OK && event.kind == KRMX_EVENT_CLOSE) break;
    krmx_client_free(client);
}

int main(int argc, char **argv) {
    KrmxClient *client = NULL;
    KrmxClientStatus status;
    KrmxEvent event;
    KrmxResult result;
    struct timespec next;
    long long counter = 0, total;
    int adds, sent = 0, tick;
    if (argc != 5) {
        fprintf(stderr, "usage: %s ws://HOST:PORT NAME ADDS TOTAL\n", argv[0]);
        return 2;
    }
    adds = atoi(argv[3]);
    total = atoll(argv[4]);
    /* NULL config: the defaults (no reconnect). */
    if (krmx_client_new(NULL, &client) != KRMX_OK || krmx_client_connect(client, argv[1]) != KRMX_OK) {
        fprintf(stderr, "cannot connect: %s\n", krmx_last_error());
        krmx_client_free(client);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (tick = 0; tick < MAX_TICKS; tick++) {
        /* 1. Network: take every event that came since the last tick, never waiting (timeout 0). */
        while ((result = krmx_client_poll(client, &event, 0)) == KRMX_OK) {
            switch (event.kind) {
            case KRMX_EVENT_CONNECT: krmx_client_link(client, argv[2], NULL); break;
            case KRMX_EVENT_MESSAGE: /* payloads are JSON text: here plain integers */
                if (event.payload && strcmp(event.message_type, "counter/set") == 0)
                    counter = atoll(event.payload);
                else if (event.payload && strcmp(event.message_type, "counter/add") == 0)
                    counter += atoll(event.payload);
                break;
            case KRMX_EVENT_REJECT: /* the name is taken or invalid */
            case KRMX_EVENT_CLOSE:  /* the server is gone */
                fprintf(stderr, "%s: %s\n", event.kind == KRMX_EVENT_REJECT ? "rejected" : "closed", event.reason);
                krmx_client_free(client);
                return 1;
            default: break;
            }
        }
        if (result != KRMX_NO_EVENT) {
            fprintf(stderr, "poll failed: %s\n", krmx_last_error());
            break;
        }
        /* 2. Game logic: one add per tick while linked and adds are left. */
        krmx_client_status(client, &status);
        if (status == KRMX_CLIENT_STATUS_LINKED && sent < adds) {
            if (krmx_send(client, "counter/add", "1") == KRMX_OK) sent++;
            else fprintf(stderr, "send failed: %s\n", krmx_last_error());
        }
        if (sent == adds && counter == total) break; /* in sync with everyone: done */
        /* 3. Wait for the next tick. */
        sleep_until_next_tick(&next);
    }
    printf("counter %lld\n", counter);
    if (counter != total) fprintf(stderr, "gave up: the counter is %lld, not %lld\n", counter, total);
    disconnect_and_free(client);
    return counter == total ? 0 : 1;
}
