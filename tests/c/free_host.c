/*
 * A C host that frees handles in every state, used by tests/c_host.rs (built with AddressSanitizer,
 * LeakSanitizer and UndefinedBehaviorSanitizer).
 *
 * A client is freed while initializing, while connecting (to a port that refuses, and to a
 * blackhole: a socket that listens but never accepts, so the WebSocket handshake never ends),
 * connected, linking with the server's authentication pending, linked, waiting to reconnect, and
 * closed. A server is freed with linked users. After each free, once the scenario's other handles
 * are freed too, the process has exactly the threads and file descriptors it had before the
 * scenario: a free joins what its handle started, so nothing is left closing in the background.
 * The peers see each close (the server unlinks a freed client; clients of a freed server get
 * "closed by the peer (1001 going away)"), and a freed server's port is listened on again at once.
 *
 * Breaking the header's rules must not crash either: a client freed while another thread waits in
 * its poll, and one client freed by two threads at once.
 *
 * Prints "free-ms SCENARIO MS" for each free (for the report, not checked), then
 * "free-host-passed"; exits 2 with the failed checks on stderr otherwise.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "krmx.h"

#include "check.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Entries of a /proc directory, without "." and "..". */
static int entries(const char *path) {
    int count = 0;
    struct dirent *entry;
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] != '.') count++;
    closedir(dir);
    return count;
}

typedef struct {
    int threads;
    int fds;
} Resources;

static Resources resources(void) {
    Resources r;
    r.threads = entries("/proc/self/task");
    r.fds = entries("/proc/self/fd");
    return r;
}

static void expect_resources(const char *scenario, Resources before) {
    Resources after = resources();
    if (after.threads != before.threads || after.fds != before.fds) {
        fprintf(stderr, "%s: %d threads and %d fds after the frees, %d and %d before\n", scenario, after.threads,
                after.fds, before.threads, before.fds);
        failures++;
    }
}

/* ---- a server polled on this thread, its events kept for the checks ---- */

#define LOG_SIZE 64
static struct {
    KrmxEventKind kind;
    char username[40];
    uint64_t request_id;
} server_log[LOG_SIZE];
static int log_len = 0;

static void poll_server(KrmxServer *server, int timeout_ms) {
    KrmxEvent event;
    while (krmx_server_poll(server, &event, timeout_ms) == KRMX_OK) {
        if (log_len < LOG_SIZE) {
            server_log[log_len].kind = event.kind;
            snprintf(server_log[log_len].username, sizeof server_log[log_len].username, "%s",
                     event.username ? event.username : "");
            server_log[log_len].request_id = event.request_id;
            log_len++;
        }
        timeout_ms = 0;
    }
}

/* The oldest kept server event must be `kind` naming `username` (waiting for it); it is taken. */
#define EXPECT_SERVER(server, kind, username) expect_server(server, kind, username, __LINE__)

static uint64_t expect_server(KrmxServer *server, KrmxEventKind kind, const char *username, int line) {
    double deadline = now_ms() + 10000; /* a guard against a hang */
    uint64_t request_id;
    while (log_len == 0 && now_ms() < deadline) poll_server(server, 10);
    if (log_len == 0 || server_log[0].kind != kind || strcmp(server_log[0].username, username) != 0) {
        fprintf(stderr, "%s:%d: expected server event %d %s, got %d %s\n", __FILE__, line, (int)kind, username,
                log_len ? (int)server_log[0].kind : -1, log_len ? server_log[0].username : "(none)");
        failures++;
        return 0;
    }
    request_id = server_log[0].request_id;
    memmove(&server_log[0], &server_log[1], sizeof server_log[0] * (size_t)(log_len - 1));
    log_len--;
    return request_id;
}

/* Polls `server` (NULL: none) and `client` in turn until the client's next event; it must be `kind`. */
#define PUMP(server, client, kind) pump(server, client, kind, __LINE__)

static KrmxEvent pump(KrmxServer *server, KrmxClient *client, KrmxEventKind kind, int line) {
    KrmxEvent event;
    double deadline = now_ms() + 10000; /* a guard against a hang */
    KrmxResult result = KRMX_NO_EVENT;
    while (now_ms() < deadline) {
        if (server != NULL) poll_server(server, 0);
        result = krmx_client_poll(client, &event, 5);
        if (result != KRMX_NO_EVENT) break;
    }
    if (result != KRMX_OK || event.kind != kind) {
        fprintf(stderr, "%s:%d: expected client event %d, got %s kind %d (reason %s)\n", __FILE__, line, (int)kind,
                krmx_result_name(result), result == KRMX_OK ? (int)event.kind : -1,
                result == KRMX_OK && event.reason ? event.reason : "-");
        failures++;
    }
    return event;
}

static KrmxServer *listening_server(bool authenticate, uint16_t port, char *url, size_t url_size) {
    KrmxServerConfig config;
    KrmxServer *server = NULL;
    CHECK(krmx_server_config_default(&config), KRMX_OK);
    config.authenticate = authenticate;
    config.ping_interval_ms = 0;
    CHECK(krmx_server_new(&config, &server), KRMX_OK);
    CHECK(krmx_server_listen(server, port), KRMX_OK);
    CHECK(krmx_server_port(server, &port), KRMX_OK);
    snprintf(url, url_size, "ws://127.0.0.1:%u", (unsigned)port);
    poll_server(server, 0);
    EXPECT_SERVER(server, KRMX_EVENT_LISTEN, "");
    return server;
}

static KrmxClient *new_client(bool reconnect) {
    KrmxClientConfig config;
    KrmxClient *client = NULL;
    CHECK(krmx_client_config_default(&config), KRMX_OK);
    config.reconnect = reconnect;
    /* A minute: the client is surely still waiting when it is freed. */
    config.reconnect_min_delay_ms = 60000;
    config.reconnect_max_delay_ms = 60000;
    CHECK(krmx_client_new(&config, &client), KRMX_OK);
    return client;
}

/* Connects and links; `known` users were linked to the server before. */
static void connect_and_link(KrmxServer *server, KrmxClient *client, const char *url, const char *username,
                             int known) {
    int i;
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_CONNECT);
    CHECK(krmx_client_link(client, username, NULL), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_ACCEPT);
    for (i = 0; i <= known; i++) { /* every user so far, this one last */
        PUMP(server, client, KRMX_EVENT_JOIN);
        PUMP(server, client, KRMX_EVENT_LINK);
    }
    ASSERT(status_of(client) == KRMX_CLIENT_STATUS_LINKED);
}

/* Frees `client`, which must be in `status`, and reports how long the free took. */
static void free_client(const char *scenario, KrmxClient *client, KrmxClientStatus status) {
    double start;
    ASSERT(status_of(client) == status);
    start = now_ms();
    CHECK(krmx_client_free(client), KRMX_OK);
    printf("free-ms client-%s %.1f\n", scenario, now_ms() - start);
    CHECK(krmx_client_free(client), KRMX_ERR_INVALID_HANDLE);
}

static void free_server(const char *scenario, KrmxServer *server) {
    double start = now_ms();
    CHECK(krmx_server_free(server), KRMX_OK);
    printf("free-ms server-%s %.1f\n", scenario, now_ms() - start);
    log_len = 0;
}

/* ---- the scenarios; each frees all it made ---- */

static void client_initializing(void) {
    free_client("initializing", new_client(false), KRMX_CLIENT_STATUS_INITIALIZING);
}

static void client_connecting(const char *url) {
    KrmxClient *client = new_client(false);
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    free_client("connecting", client, KRMX_CLIENT_STATUS_CONNECTING);
}

static void client_connected(void) {
    char url[64];
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_CONNECT);
    free_client("connected", client, KRMX_CLIENT_STATUS_CONNECTED);
    free_server("no-users", server);
}

static void client_linking_with_auth_pending(void) {
    char url[64];
    KrmxServer *server = listening_server(true, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_CONNECT);
    CHECK(krmx_client_link(client, "alice", "secret"), KRMX_OK);
    EXPECT_SERVER(server, KRMX_EVENT_AUTHENTICATE, "alice");
    free_client("linking", client, KRMX_CLIENT_STATUS_LINKING);
    free_server("auth-pending", server);
}

static void client_linked(void) {
    char url[64];
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    connect_and_link(server, client, url, "alice", 0);
    EXPECT_SERVER(server, KRMX_EVENT_JOIN, "alice");
    EXPECT_SERVER(server, KRMX_EVENT_LINK, "alice");
    free_client("linked", client, KRMX_CLIENT_STATUS_LINKED);
    /* The server sees the connection go. */
    EXPECT_SERVER(server, KRMX_EVENT_UNLINK, "alice");
    free_server("after-unlink", server);
}

static void client_waiting_to_reconnect(void) {
    char url[64];
    KrmxEvent event;
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(true);
    connect_and_link(server, client, url, "alice", 0);
    free_server("one-user", server);
    event = PUMP(NULL, client, KRMX_EVENT_RECONNECTING);
    ASSERT(event.attempt == 1 && event.delay_ms >= 30000);
    free_client("reconnect-wait", client, KRMX_CLIENT_STATUS_CONNECTING);
}

static void client_closed(void) {
    char url[64];
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    connect_and_link(server, client, url, "alice", 0);
    CHECK(krmx_client_disconnect(client), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_CLOSE);
    free_client("closed", client, KRMX_CLIENT_STATUS_CLOSED);
    free_server("after-close", server);
}

/* ---- a free racing other threads (breaking the header's rule, which must not crash) ---- */

static void *poll_until_refused(void *client) {
    static KrmxResult last;
    KrmxEvent event;
    do last = krmx_client_poll((KrmxClient *)client, &event, -1);
    while (last == KRMX_OK);
    return &last;
}

/* One thread waits in krmx_client_poll(-1) on a linked client while this one frees it: the poll
 * returns KRMX_NO_EVENT (or, between two polls, the next one is refused), and the handle goes
 * when it does: once that thread is joined, its resources are back. */
static void client_freed_while_polled(void) {
    char url[64];
    pthread_t thread;
    void *result = NULL;
    struct timespec pause = {0, 50 * 1000 * 1000};
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    connect_and_link(server, client, url, "alice", 0);
    if (pthread_create(&thread, NULL, poll_until_refused, client) != 0) {
        failures++;
        return;
    }
    nanosleep(&pause, NULL);
    free_client("while-polled", client, KRMX_CLIENT_STATUS_LINKED);
    pthread_join(thread, &result);
    ASSERT(*(KrmxResult *)result == KRMX_NO_EVENT || *(KrmxResult *)result == KRMX_ERR_INVALID_HANDLE);
    EXPECT_SERVER(server, KRMX_EVENT_JOIN, "alice");
    EXPECT_SERVER(server, KRMX_EVENT_LINK, "alice");
    EXPECT_SERVER(server, KRMX_EVENT_UNLINK, "alice");
    free_server("after-racing-free", server);
}

static pthread_barrier_t both_ready;

typedef struct {
    KrmxClient *client;
    KrmxResult result;
} FreeAttempt;

static void *free_after_barrier(void *attempt) {
    FreeAttempt *a = (FreeAttempt *)attempt;
    pthread_barrier_wait(&both_ready);
    a->result = krmx_client_free(a->client);
    return NULL;
}

/* Two threads free one connected client at the same moment: one free does it, the other is refused. */
static void client_freed_twice_at_once(void) {
    char url[64];
    pthread_t threads[2];
    FreeAttempt attempts[2];
    int i;
    KrmxServer *server = listening_server(false, 0, url, sizeof url);
    KrmxClient *client = new_client(false);
    CHECK(krmx_client_connect(client, url), KRMX_OK);
    PUMP(server, client, KRMX_EVENT_CONNECT);
    pthread_barrier_init(&both_ready, NULL, 2);
    for (i = 0; i < 2; i++) {
        attempts[i].client = client;
        attempts[i].result = (KrmxResult)-1;
        if (pthread_create(&threads[i], NULL, free_after_barrier, &attempts[i]) != 0) failures++;
    }
    for (i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&both_ready);
    ASSERT((attempts[0].result == KRMX_OK && attempts[1].result == KRMX_ERR_INVALID_HANDLE) ||
           (attempts[0].result == KRMX_ERR_INVALID_HANDLE && attempts[1].result == KRMX_OK));
    free_server("after-double-free", server);
}

#define USERS 3

static void server_with_linked_users(void) {
    char url[64], again_url[64];
    const char *names[USERS] = {"alice", "bob", "carol"};
    KrmxClient *clients[USERS];
    KrmxServer *server = listening_server(false, 0, url, sizeof url), *again;
    KrmxEvent event;
    uint16_t port = 0;
    int i;
    CHECK(krmx_server_port(server, &port), KRMX_OK);
    for (i = 0; i < USERS; i++) {
        clients[i] = new_client(false);
        connect_and_link(server, clients[i], url, names[i], i);
    }
    free_server("linked-users", server);
    /* The port is free at once, and every client got its close frame before the free returned. */
    again = listening_server(false, port, again_url, sizeof again_url);
    ASSERT(strcmp(url, again_url) == 0);
    for (i = 0; i < USERS; i++) {
        int later;
        for (later = i + 1; later < USERS; later++) {
            PUMP(NULL, clients[i], KRMX_EVENT_JOIN);
            PUMP(NULL, clients[i], KRMX_EVENT_LINK);
        }
        event = PUMP(NULL, clients[i], KRMX_EVENT_CLOSE);
        ASSERT(event.reason != NULL && strcmp(event.reason, "closed by the peer (1001 going away)") == 0);
        free_client("after-server-free", clients[i], KRMX_CLIENT_STATUS_CLOSED);
    }
    free_server("relisten", again);
}

typedef void (*Scenario)(void);

static void run(const char *name, Scenario scenario, Resources baseline) {
    int before = failures;
    scenario();
    expect_resources(name, baseline);
    if (failures > before) fprintf(stderr, "scenario %s failed\n", name);
}

static const char *refused_url;
static const char *blackhole_url;
static void connecting_refused(void) { client_connecting(refused_url); }
static void connecting_blackhole(void) { client_connecting(blackhole_url); }

int main(void) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    int blackhole = socket(AF_INET, SOCK_STREAM, 0);
    char refused[64], hole[64];
    KrmxServer *probe = NULL;
    uint16_t port = 0;
    Resources baseline;
    int round;

    /* A port nothing listens on (it was free a moment ago). */
    CHECK(krmx_server_new(NULL, &probe), KRMX_OK);
    CHECK(krmx_server_listen(probe, 0), KRMX_OK);
    CHECK(krmx_server_port(probe, &port), KRMX_OK);
    CHECK(krmx_server_free(probe), KRMX_OK);
    snprintf(refused, sizeof refused, "ws://127.0.0.1:%u", (unsigned)port);
    refused_url = refused;

    /* A blackhole: the kernel completes TCP handshakes into the backlog, nobody ever answers. */
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (blackhole < 0 || bind(blackhole, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(blackhole, 8) != 0 || getsockname(blackhole, (struct sockaddr *)&address, &length) != 0) {
        perror("blackhole");
        return 2;
    }
    snprintf(hole, sizeof hole, "ws://127.0.0.1:%u", (unsigned)ntohs(address.sin_port));
    blackhole_url = hole;

    /* The first scenario starts the shared I/O runtime, whose threads stay: count after it. */
    client_linked();
    baseline = resources();
    for (round = 0; round < 3 && failures == 0; round++) {
        run("initializing", client_initializing, baseline);
        run("connecting-refused", connecting_refused, baseline);
        run("connecting-blackhole", connecting_blackhole, baseline);
        run("connected", client_connected, baseline);
        run("linking", client_linking_with_auth_pending, baseline);
        run("linked", client_linked, baseline);
        run("reconnect-wait", client_waiting_to_reconnect, baseline);
        run("closed", client_closed, baseline);
        run("server-with-users", server_with_linked_users, baseline);
        run("freed-while-polled", client_freed_while_polled, baseline);
        run("freed-twice-at-once", client_freed_twice_at_once, baseline);
    }
    close(blackhole);

    if (failures > 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 2;
    }
    printf("free-host-passed\n");
    return 0;
}
