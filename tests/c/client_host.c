/*
 * A C host of the Krmx client, used by tests/c_host.rs.
 *
 * 1. The client API's error handling on its own: NULL arguments, bad URLs, wrong status, reserved
 *    types, bad JSON, buffers, wake, free(NULL).
 * 2. A real session against a Krmx server made in this same program (polled on its own thread,
 *    relaying every custom message to every linked user): connect, link, the exact JOIN/LINK
 *    events, a rejected link, send and receive, the user table, unlink, link again, leave,
 *    disconnect, CLOSE, and connecting again after CLOSE. Also a connect that fails.
 * 3. A hundred clients in one process: all link, all see each other and one broadcast, all close.
 * Prints "client-host-passed" and exits 0 when every check passed; otherwise the failed checks
 * go to stderr and it exits 2.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "krmx.h"

#include "check.h"

/* The next event of `client` must be `kind`, naming `username` (NULL: an event without one). */
#define EXPECT(client, kind, username) expect_event(client, kind, username, __LINE__)

static KrmxEvent expect_event(KrmxClient *client, KrmxEventKind kind, const char *username, int line) {
    KrmxEvent event;
    KrmxResult result = krmx_client_poll(client, &event, 10000); /* a guard against a hang */
    bool name_ok = username == NULL ? event.username == NULL
                                    : event.username != NULL && strcmp(event.username, username) == 0 &&
                                          event.username_len == strlen(username);
    if (result != KRMX_OK || event.kind != kind || !name_ok) {
        fprintf(stderr, "%s:%d: expected event %d %s, got %s kind %d %s (reason %s)\n", __FILE__, line,
                (int)kind, username ? username : "-", krmx_result_name(result), (int)event.kind,
                event.username ? event.username : "-", event.reason ? event.reason : "-");
        failures++;
    }
    return event;
}

static void check_api_misuse(void) {
    KrmxClient *client = NULL;
    KrmxClientConfig config;
    KrmxEvent event;
    KrmxClientStatus status;
    size_t count = 99, len = 0;
    char name[8];
    unsigned char not_a_handle[256] = {0};

    CHECK(krmx_client_config_default(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_config_default(&config), KRMX_OK);
    ASSERT(config.protocol_version == NULL && !config.reconnect && config.reconnect_min_delay_ms == 250 &&
           config.reconnect_max_delay_ms == 10000 && config.reconnect_max_attempts == 0 &&
           config.liveness_timeout_ms == 10000 && config.connect_timeout_ms == 10000 &&
           config.max_message_bytes == 1048576 && config.max_queued_bytes == 1048576 &&
           config.event_queue_bytes == 16777216);
    CHECK(krmx_client_new(NULL, NULL), KRMX_ERR_NULL_ARGUMENT);
    ASSERT(strstr(krmx_last_error(), "out") != NULL);
    config.protocol_version = "";
    CHECK(krmx_client_new(&config, &client), KRMX_ERR_INVALID_ARGUMENT);
    ASSERT(client == NULL);
    config.protocol_version = "\xff\xfe";
    CHECK(krmx_client_new(&config, &client), KRMX_ERR_INVALID_UTF8);
    config.protocol_version = NULL;
    config.reconnect = true;
    config.reconnect_min_delay_ms = 5000;
    config.reconnect_max_delay_ms = 100;
    CHECK(krmx_client_new(&config, &client), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_client_config_default(&config), KRMX_OK);
    config.max_message_bytes = 0;
    CHECK(krmx_client_new(&config, &client), KRMX_ERR_INVALID_ARGUMENT);
    ASSERT(client == NULL);
    CHECK(krmx_client_free(NULL), KRMX_OK);

    /* NULL handles and foreign pointers. */
    CHECK(krmx_client_connect(NULL, "ws://127.0.0.1:1/"), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_link(NULL, "simon", NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_unlink(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_leave(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_send(NULL, "a/b", NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_poll(NULL, &event, 0), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_wake(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_status(NULL, &status), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_user_count(NULL, &count), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_disconnect(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_poll((KrmxClient *)(void *)not_a_handle, &event, 0), KRMX_ERR_INVALID_HANDLE);
    CHECK(krmx_client_free((KrmxClient *)(void *)not_a_handle), KRMX_ERR_INVALID_HANDLE);

    CHECK(krmx_client_new(NULL, &client), KRMX_OK);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_INITIALIZING);
    CHECK(krmx_client_status(client, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_poll(client, NULL, 0), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_poll(client, &event, 0), KRMX_NO_EVENT);
    ASSERT(event.kind == KRMX_EVENT_NONE);
    /* A wake makes the next poll return at once, even one that would wait forever. */
    CHECK(krmx_client_wake(client), KRMX_OK);
    CHECK(krmx_client_poll(client, &event, -1), KRMX_NO_EVENT);

    /* URLs. */
    CHECK(krmx_client_connect(client, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_connect(client, "not a url"), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_client_connect(client, "http://127.0.0.1:8082/"), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_client_connect(client, "wss://127.0.0.1:8082/"), KRMX_ERR_INVALID_ARGUMENT);
    ASSERT(strstr(krmx_last_error(), "wss") != NULL);
    CHECK(krmx_client_connect(client, "ws://127.0.0.1:8082/\xff"), KRMX_ERR_INVALID_UTF8);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_INITIALIZING);

    /* Everything that needs a connection or a link. */
    CHECK(krmx_client_link(client, "simon", NULL), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_client_unlink(client), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_client_leave(client), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_client_disconnect(client), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_send(client, "chat/say", "\"hi\""), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_send(client, "chat/say", NULL), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_send(client, "krmx/link", NULL), KRMX_ERR_RESERVED_TYPE);
    CHECK(krmx_send(client, "chat/say", "{not json"), KRMX_ERR_INVALID_JSON);
    CHECK(krmx_send(client, "chat/say", "\"\xff\""), KRMX_ERR_INVALID_UTF8);
    CHECK(krmx_send(client, NULL, NULL), KRMX_ERR_NULL_ARGUMENT);

    /* The user table of a client that is not linked is empty. */
    CHECK(krmx_client_user_count(client, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_user_count(client, &count), KRMX_OK);
    ASSERT(count == 0);
    CHECK(krmx_client_user(client, 0, name, sizeof name, &len, NULL), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_client_username(client, name, sizeof name, &len), KRMX_ERR_WRONG_STATUS);
    ASSERT(strcmp(krmx_result_name(KRMX_ERR_RESERVED_TYPE), "KRMX_ERR_RESERVED_TYPE") == 0);
    CHECK(krmx_client_free(client), KRMX_OK);
}

/* ---- the server: its own thread, relaying every custom message to every linked user ---- */

static KrmxServer *server = NULL;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static bool stop_requested = false;

static bool should_stop(void) {
    bool stop;
    pthread_mutex_lock(&stop_lock);
    stop = stop_requested;
    pthread_mutex_unlock(&stop_lock);
    return stop;
}

/* Failures seen by the server thread (not `failures`: the main thread owns that one). */
static int server_failures = 0;

static void server_check(const char *what, KrmxResult result, KrmxResult expected) {
    if (result != expected) {
        fprintf(stderr, "server: %s returned %s (%s)\n", what, krmx_result_name(result), krmx_last_error());
        server_failures++;
    }
}

static void *serve(void *unused) {
    KrmxEvent event;
    bool closing = false;
    (void)unused;
    for (;;) {
        /* No timeout: krmx_server_wake (from the main thread) ends the wait when it is time to stop.
         * The flag is checked after every return, not only after KRMX_NO_EVENT: a poll that takes
         * the wake-up may still return an event that arrived with it. */
        KrmxResult result = krmx_server_poll(server, &event, -1);
        if (!closing && should_stop()) {
            server_check("krmx_server_close", krmx_server_close(server), KRMX_OK);
            closing = true;
        }
        if (result == KRMX_NO_EVENT) continue;
        server_check("krmx_server_poll", result, KRMX_OK);
        if (result != KRMX_OK || event.kind == KRMX_EVENT_CLOSE) return NULL;
        if (event.kind == KRMX_EVENT_MESSAGE)
            server_check("krmx_server_broadcast",
                         krmx_server_broadcast(server, event.message_type, event.payload, NULL), KRMX_OK);
    }
}

/* ---- one session, event by event ---- */

static void connect_and_link(KrmxClient *client, const char *url, const char *username) {
    char name[64];
    size_t len = 0;
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_CONNECTING);
    CHECK(krmx_client_connect(client, url), KRMX_ERR_WRONG_STATUS);
    EXPECT(client, KRMX_EVENT_CONNECT, NULL);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_CONNECTED);
    CHECK(krmx_send(client, "chat/say", "\"too early\""), KRMX_ERR_WRONG_STATUS); /* not linked */
    CHECK(krmx_client_link(client, NULL, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_link(client, username, NULL), KRMX_OK);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_LINKING);
    CHECK(krmx_client_username(client, name, sizeof name, &len), KRMX_OK);
    ASSERT(strcmp(name, username) == 0 && len == strlen(username));
    EXPECT(client, KRMX_EVENT_ACCEPT, NULL);
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_LINKED);
}

static void check_user(const KrmxClient *client, size_t index, const char *username, bool is_linked) {
    char name[64];
    size_t len = 0;
    bool linked = !is_linked;
    CHECK(krmx_client_user(client, index, name, sizeof name, &len, &linked), KRMX_OK);
    if (strcmp(name, username) != 0 || len != strlen(username) || linked != is_linked) {
        fprintf(stderr, "user %zu: expected %s %d, got %s %d\n", index, username, is_linked, name, linked);
        failures++;
    }
}

static size_t user_count(const KrmxClient *client) {
    size_t count = 99;
    CHECK(krmx_client_user_count(client, &count), KRMX_OK);
    return count;
}

static void expect_message(KrmxClient *client, const char *type, const char *payload) {
    KrmxEvent event = EXPECT(client, KRMX_EVENT_MESSAGE, NULL);
    ASSERT(event.message_type != NULL && strcmp(event.message_type, type) == 0 &&
           event.message_type_len == strlen(type));
    if (payload == NULL) ASSERT(event.payload == NULL && event.payload_len == 0);
    else ASSERT(event.payload != NULL && strcmp(event.payload, payload) == 0 && event.payload_len == strlen(payload));
}

static void expect_close(KrmxClient *client, const char *reason) {
    KrmxEvent event = EXPECT(client, KRMX_EVENT_CLOSE, NULL);
    ASSERT(event.reason != NULL && event.reason_len == strlen(event.reason));
    if (reason != NULL && (event.reason == NULL || strcmp(event.reason, reason) != 0)) {
        fprintf(stderr, "close reason: expected %s, got %s\n", reason, event.reason ? event.reason : "NULL");
        failures++;
    }
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_CLOSED);
}

static void session(const char *url, const char *unreachable_url) {
    KrmxClient *alice = NULL, *bob = NULL, *carol = NULL, *dave = NULL;
    KrmxEvent event;
    char name[3];
    size_t len = 0;

    /* A server that cannot be reached: CLOSE with a reason, never retried. */
    CHECK(krmx_client_new(NULL, &dave), KRMX_OK);
    CHECK(krmx_client_connect(dave, unreachable_url), KRMX_OK);
    expect_close(dave, NULL);
    CHECK(krmx_client_free(dave), KRMX_OK);

    CHECK(krmx_client_new(NULL, &alice), KRMX_OK);
    connect_and_link(alice, url, "alice");
    EXPECT(alice, KRMX_EVENT_JOIN, "alice");
    EXPECT(alice, KRMX_EVENT_LINK, "alice");
    ASSERT(user_count(alice) == 1);

    CHECK(krmx_client_new(NULL, &bob), KRMX_OK);
    connect_and_link(bob, url, "bob");
    EXPECT(bob, KRMX_EVENT_JOIN, "alice");
    EXPECT(bob, KRMX_EVENT_LINK, "alice");
    EXPECT(bob, KRMX_EVENT_JOIN, "bob");
    EXPECT(bob, KRMX_EVENT_LINK, "bob");
    EXPECT(alice, KRMX_EVENT_JOIN, "bob");
    EXPECT(alice, KRMX_EVENT_LINK, "bob");

    /* Names already linked, or against the username rule, are rejected with the server's reason. */
    CHECK(krmx_client_new(NULL, &carol), KRMX_OK);
    CHECK(krmx_client_connect(carol, url), KRMX_OK);
    EXPECT(carol, KRMX_EVENT_CONNECT, NULL);
    CHECK(krmx_client_link(carol, "alice", NULL), KRMX_OK);
    event = EXPECT(carol, KRMX_EVENT_REJECT, NULL);
    ASSERT(event.reason != NULL && strcmp(event.reason, "user alice is already linked to a connection") == 0);
    ASSERT(status_of(carol) == KRMX_CLIENT_STATUS_CONNECTED);
    CHECK(krmx_client_link(carol, "9lives", NULL), KRMX_OK);
    event = EXPECT(carol, KRMX_EVENT_REJECT, NULL);
    ASSERT(event.reason != NULL && strcmp(event.reason, "invalid username") == 0);
    CHECK(krmx_client_disconnect(carol), KRMX_OK);
    expect_close(carol, "disconnected by the client");
    CHECK(krmx_client_free(carol), KRMX_OK);

    /* Send; the server relays to every linked user, the sender too. */
    CHECK(krmx_send(alice, "chat/say", "{ \"n\": 1, \"s\": \"\xc3\xa9\" }"), KRMX_OK);
    expect_message(alice, "chat/say", "{\"n\":1,\"s\":\"\xc3\xa9\"}");
    expect_message(bob, "chat/say", "{\"n\":1,\"s\":\"\xc3\xa9\"}");
    CHECK(krmx_send(bob, "chat/ping", NULL), KRMX_OK);
    expect_message(alice, "chat/ping", NULL);
    expect_message(bob, "chat/ping", NULL);

    /* The user table, in join order. */
    ASSERT(user_count(alice) == 2 && user_count(bob) == 2);
    check_user(alice, 0, "alice", true);
    check_user(alice, 1, "bob", true);
    check_user(bob, 0, "alice", true);
    CHECK(krmx_client_user(alice, 2, name, sizeof name, &len, NULL), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_client_user(alice, 0, NULL, 0, &len, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_client_user(alice, 0, name, sizeof name, &len, NULL), KRMX_ERR_BUFFER_TOO_SMALL);
    ASSERT(len == 5);
    CHECK(krmx_client_username(alice, name, sizeof name, &len), KRMX_ERR_BUFFER_TOO_SMALL);
    ASSERT(len == 5);

    /* Unlink: the connection stays, the user stays known to the others. */
    CHECK(krmx_client_unlink(bob), KRMX_OK);
    ASSERT(status_of(bob) == KRMX_CLIENT_STATUS_UNLINKING);
    EXPECT(bob, KRMX_EVENT_UNLINK, "bob");
    ASSERT(status_of(bob) == KRMX_CLIENT_STATUS_CONNECTED && user_count(bob) == 0);
    CHECK(krmx_send(bob, "chat/say", "1"), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_client_unlink(bob), KRMX_ERR_WRONG_STATUS);
    EXPECT(alice, KRMX_EVENT_UNLINK, "bob");
    check_user(alice, 1, "bob", false);

    /* Link again on the same connection: the table comes back. */
    CHECK(krmx_client_link(bob, "bob", NULL), KRMX_OK);
    EXPECT(bob, KRMX_EVENT_ACCEPT, NULL);
    EXPECT(bob, KRMX_EVENT_JOIN, "alice");
    EXPECT(bob, KRMX_EVENT_LINK, "alice");
    EXPECT(bob, KRMX_EVENT_JOIN, "bob");
    EXPECT(bob, KRMX_EVENT_LINK, "bob");
    EXPECT(alice, KRMX_EVENT_LINK, "bob");
    check_user(alice, 1, "bob", true);

    /* Leave: the server forgets bob. */
    CHECK(krmx_client_leave(bob), KRMX_OK);
    EXPECT(bob, KRMX_EVENT_UNLINK, "bob");
    EXPECT(bob, KRMX_EVENT_LEAVE, "bob");
    EXPECT(alice, KRMX_EVENT_UNLINK, "bob");
    EXPECT(alice, KRMX_EVENT_LEAVE, "bob");
    ASSERT(user_count(alice) == 1 && user_count(bob) == 0);
    CHECK(krmx_client_disconnect(bob), KRMX_OK);
    ASSERT(status_of(bob) == KRMX_CLIENT_STATUS_CLOSING);
    CHECK(krmx_client_disconnect(bob), KRMX_ERR_WRONG_STATUS);
    expect_close(bob, "disconnected by the client");
    CHECK(krmx_client_disconnect(bob), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_client_free(bob), KRMX_OK);

    /* Disconnect while linked, then connect again with the same handle: alice is still known. */
    CHECK(krmx_client_disconnect(alice), KRMX_OK);
    expect_close(alice, "disconnected by the client");
    ASSERT(user_count(alice) == 0);
    CHECK(krmx_client_connect(alice, url), KRMX_OK);
    EXPECT(alice, KRMX_EVENT_CONNECT, NULL);
    CHECK(krmx_client_link(alice, "alice", NULL), KRMX_OK);
    EXPECT(alice, KRMX_EVENT_ACCEPT, NULL);
    EXPECT(alice, KRMX_EVENT_JOIN, "alice");
    EXPECT(alice, KRMX_EVENT_LINK, "alice");
    CHECK(krmx_client_poll(alice, &event, 0), KRMX_NO_EVENT);
    /* Freed while linked: the connection closes on the I/O thread; nothing may leak. */
    CHECK(krmx_client_free(alice), KRMX_OK);
}

/* ---- a hundred clients in one process ---- */

#define CROWD 100

static void crowd(const char *url) {
    KrmxClient *clients[CROWD];
    bool accepted[CROWD] = {false}, got_message[CROWD] = {false}, closed[CROWD] = {false};
    int phase, i, done = 0, rounds;
    char name[16];
    struct timespec nap = {0, 1000000}; /* 1 ms */

    for (i = 0; i < CROWD; i++) {
        clients[i] = NULL;
        CHECK(krmx_client_new(NULL, &clients[i]), KRMX_OK);
        CHECK(krmx_client_connect(clients[i], url), KRMX_OK);
    }
    /* Phase 0: all link and see all; 1: all receive one broadcast; 2: all close. */
    for (phase = 0; phase < 3 && failures == 0; phase++) {
        if (phase == 1) CHECK(krmx_send(clients[0], "chat/all", "42"), KRMX_OK);
        if (phase == 2)
            for (i = 0; i < CROWD; i++) CHECK(krmx_client_disconnect(clients[i]), KRMX_OK);
        /* At most 60 s (60000 naps) as a guard against a hang; it takes far less. */
        for (rounds = 0, done = 0; done < CROWD && rounds < 60000 && failures == 0; rounds++) {
            bool any = false;
            for (i = 0, done = 0; i < CROWD; i++) {
                KrmxEvent event;
                KrmxResult result;
                while ((result = krmx_client_poll(clients[i], &event, 0)) == KRMX_OK) {
                    any = true;
                    if (event.kind == KRMX_EVENT_CONNECT) {
                        snprintf(name, sizeof name, "bot%d", i);
                        CHECK(krmx_client_link(clients[i], name, NULL), KRMX_OK);
                    } else if (event.kind == KRMX_EVENT_ACCEPT) {
                        accepted[i] = true;
                    } else if (event.kind == KRMX_EVENT_MESSAGE) {
                        ASSERT(strcmp(event.message_type, "chat/all") == 0 && strcmp(event.payload, "42") == 0);
                        got_message[i] = true;
                    } else if (event.kind == KRMX_EVENT_CLOSE) {
                        closed[i] = true;
                    } else if (event.kind == KRMX_EVENT_REJECT || event.kind == KRMX_EVENT_RECONNECTING) {
                        fprintf(stderr, "bot%d: unexpected event %d: %s\n", i, (int)event.kind, event.reason);
                        failures++;
                    }
                }
                CHECK(result, KRMX_NO_EVENT);
                /* alice of the session is still known (unlinked): CROWD + 1 users. */
                if (phase == 0) done += accepted[i] && user_count(clients[i]) == CROWD + 1;
                if (phase == 1) done += got_message[i];
                if (phase == 2) done += closed[i];
            }
            if (!any) nanosleep(&nap, NULL);
        }
        if (done < CROWD) {
            fprintf(stderr, "crowd phase %d: only %d of %d clients done\n", phase, done, CROWD);
            failures++;
        }
    }
    for (i = 0; i < CROWD; i++) CHECK(krmx_client_free(clients[i]), KRMX_OK);
}

int main(void) {
    pthread_t thread;
    uint16_t port = 0;
    char url[64], unreachable_url[64];
    KrmxServerConfig config;
    KrmxServer *unused = NULL;

    check_api_misuse();
    if (failures > 0) {
        fprintf(stderr, "%d API check(s) failed\n", failures);
        return 2;
    }

    /* A port that was just free: listen on it, then free that server. */
    CHECK(krmx_server_new(NULL, &unused), KRMX_OK);
    CHECK(krmx_server_listen(unused, 0), KRMX_OK);
    CHECK(krmx_server_port(unused, &port), KRMX_OK);
    CHECK(krmx_server_free(unused), KRMX_OK);
    snprintf(unreachable_url, sizeof unreachable_url, "ws://127.0.0.1:%u/", (unsigned)port);

    krmx_server_config_default(&config);
    CHECK(krmx_server_new(&config, &server), KRMX_OK);
    CHECK(krmx_server_listen(server, 0), KRMX_OK);
    CHECK(krmx_server_port(server, &port), KRMX_OK);
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)port);
    if (failures > 0 || pthread_create(&thread, NULL, serve, NULL) != 0) return 2;

    session(url, unreachable_url);
    if (failures == 0) crowd(url);

    pthread_mutex_lock(&stop_lock);
    stop_requested = true;
    pthread_mutex_unlock(&stop_lock);
    CHECK(krmx_server_wake(server), KRMX_OK);
    pthread_join(thread, NULL);
    CHECK(krmx_server_free(server), KRMX_OK);
    failures += server_failures;

    if (failures > 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 2;
    }
    printf("client-host-passed\n");
    return 0;
}
