/*
 * A C host of the Krmx server, used by tests/c_host.rs.
 *
 * First it checks the C API's error handling on its own (NULL arguments, wrong status, buffers,
 * result names); any failure exits with status 2. Then it serves on a free port and prints one
 * line per event on stdout, and reacts to these custom messages from clients:
 *   test/echo       sends the same payload back to the sender as test/echoed
 *   test/broadcast  broadcasts the payload as test/broadcasted to everyone but the sender
 *   test/kick       kicks the user named by the (string) payload
 *   test/users      prints the user table as a line "users name:linked,name:unlinked"
 *   test/close      closes the server
 * On KRMX_EVENT_CLOSE it frees the server and exits 0.
 */
#include <stdio.h>
#include <string.h>

#include "krmx.h"

#include "check.h"

static void check_api_misuse(void) {
    KrmxServer *server = NULL;
    KrmxEvent event;
    KrmxServerConfig config;
    size_t count = 99;
    uint16_t port = 0;
    char name[4];
    size_t name_len = 0;
    KrmxServerStatus status;
    unsigned char not_a_handle[256] = {0};

    CHECK(krmx_server_new(NULL, NULL), KRMX_ERR_NULL_ARGUMENT);
    if (strstr(krmx_last_error(), "out must not be NULL") == NULL) {
        fprintf(stderr, "unexpected last error: %s\n", krmx_last_error());
        failures++;
    }
    CHECK(krmx_server_config_default(NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_server_config_default(&config), KRMX_OK);
    if (!config.accept_new_users || config.authenticate || config.auth_timeout_ms != 10000 ||
        config.ping_interval_ms != 15000 || config.max_message_bytes != 1048576) {
        fprintf(stderr, "unexpected config defaults\n");
        failures++;
    }
    config.protocol_version = "";
    CHECK(krmx_server_new(&config, &server), KRMX_ERR_INVALID_ARGUMENT);
    if (server != NULL) {
        fprintf(stderr, "a failed new must leave *out NULL\n");
        failures++;
    }
    config.protocol_version = "\xff\xfe";
    CHECK(krmx_server_new(&config, &server), KRMX_ERR_INVALID_UTF8);
    CHECK(krmx_server_free(NULL), KRMX_OK);
    CHECK(krmx_server_poll(NULL, &event, 0), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_server_listen((KrmxServer *)(void *)not_a_handle, 0), KRMX_ERR_INVALID_HANDLE);

    CHECK(krmx_server_new(NULL, &server), KRMX_OK);
    CHECK(krmx_server_status(server, &status), KRMX_OK);
    if (status != KRMX_SERVER_STATUS_INITIALIZING) {
        fprintf(stderr, "a new server must be initializing\n");
        failures++;
    }
    CHECK(krmx_server_poll(server, NULL, 0), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_server_poll(server, &event, 0), KRMX_NO_EVENT);
    if (event.kind != KRMX_EVENT_NONE) {
        fprintf(stderr, "a poll without event must set KRMX_EVENT_NONE\n");
        failures++;
    }
    CHECK(krmx_server_port(server, &port), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_send(server, "simon", "a/b", NULL), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_broadcast(server, "a/b", NULL, NULL), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_join(server, "simon"), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_close(server), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_listen(server, 0), KRMX_OK);
    CHECK(krmx_server_listen(server, 0), KRMX_ERR_WRONG_STATUS);
    CHECK(krmx_server_join(server, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_server_join(server, "9lives"), KRMX_ERR_INVALID_USERNAME);
    CHECK(krmx_server_join(server, "simon"), KRMX_OK);
    CHECK(krmx_server_join(server, "simon"), KRMX_ERR_USER_EXISTS);
    CHECK(krmx_server_send(server, "simon", "a/b", NULL), KRMX_ERR_USER_NOT_LINKED);
    CHECK(krmx_server_send(server, "nobody", "a/b", NULL), KRMX_ERR_UNKNOWN_USER);
    CHECK(krmx_server_send(server, "simon", NULL, NULL), KRMX_ERR_NULL_ARGUMENT);
    CHECK(krmx_server_broadcast(server, "krmx/joined", NULL, NULL), KRMX_ERR_RESERVED_TYPE);
    CHECK(krmx_server_broadcast(server, "a/b", "{not json", NULL), KRMX_ERR_INVALID_JSON);
    CHECK(krmx_server_broadcast(server, "a/b", "{\"x\":[1,2]}", "simon"), KRMX_OK);
    CHECK(krmx_server_unlink(server, "simon"), KRMX_ERR_USER_NOT_LINKED);
    CHECK(krmx_server_authenticate(server, 42, true, NULL), KRMX_ERR_UNKNOWN_REQUEST);
    CHECK(krmx_server_user_count(server, &count), KRMX_OK);
    if (count != 1) {
        fprintf(stderr, "expected 1 user, got %zu\n", count);
        failures++;
    }
    CHECK(krmx_server_user(server, 0, name, sizeof name, &name_len, NULL), KRMX_ERR_BUFFER_TOO_SMALL);
    if (name_len != 5) {
        fprintf(stderr, "the needed length must be written, got %zu\n", name_len);
        failures++;
    }
    CHECK(krmx_server_user(server, 1, name, sizeof name, &name_len, NULL), KRMX_ERR_INVALID_ARGUMENT);
    CHECK(krmx_server_kick(server, "simon"), KRMX_OK);
    CHECK(krmx_server_kick(server, "simon"), KRMX_ERR_UNKNOWN_USER);
    /* Events so far: listen, join simon, leave simon. */
    CHECK(krmx_server_poll(server, &event, 0), KRMX_OK);
    if (event.kind != KRMX_EVENT_LISTEN || event.port == 0) failures++;
    CHECK(krmx_server_poll(server, &event, 0), KRMX_OK);
    if (event.kind != KRMX_EVENT_JOIN || strcmp(event.username, "simon") != 0 || event.username_len != 5) failures++;
    CHECK(krmx_server_poll(server, &event, 0), KRMX_OK);
    if (event.kind != KRMX_EVENT_LEAVE || strcmp(event.username, "simon") != 0) failures++;
    CHECK(krmx_server_close(server), KRMX_OK);
    CHECK(krmx_server_poll(server, &event, 5000), KRMX_OK);
    if (event.kind != KRMX_EVENT_CLOSE) {
        fprintf(stderr, "expected close, got kind %d\n", (int)event.kind);
        failures++;
    }
    CHECK(krmx_server_free(server), KRMX_OK);
}

static void print_users(KrmxServer *server) {
    size_t count = 0;
    size_t i;
    CHECK(krmx_server_user_count(server, &count), KRMX_OK);
    printf("users");
    for (i = 0; i < count; i++) {
        char name[33];
        bool linked = false;
        CHECK(krmx_server_user(server, i, name, sizeof name, NULL, &linked), KRMX_OK);
        printf("%s%s:%s", i == 0 ? " " : ",", name, linked ? "linked" : "unlinked");
    }
    printf("\n");
}

/* The payload of test/kick is a JSON string such as "simon": strip the quotes. */
static void kick_named(KrmxServer *server, const char *payload) {
    char name[64];
    size_t len = payload == NULL ? 0 : strlen(payload);
    if (len < 2 || len - 2 >= sizeof name) return;
    memcpy(name, payload + 1, len - 2);
    name[len - 2] = '\0';
    CHECK(krmx_server_kick(server, name), KRMX_OK);
}

static int serve(void) {
    KrmxServerConfig config;
    KrmxServer *server = NULL;
    KrmxEvent event;
    KrmxResult result;
    krmx_server_config_default(&config);
    config.ping_interval_ms = 0;
    CHECK(krmx_server_new(&config, &server), KRMX_OK);
    CHECK(krmx_server_listen(server, 0), KRMX_OK);
    for (;;) {
        result = krmx_server_poll(server, &event, 1000);
        if (result == KRMX_NO_EVENT) continue;
        if (result != KRMX_OK) {
            fprintf(stderr, "poll failed: %s %s\n", krmx_result_name(result), krmx_last_error());
            return 1;
        }
        switch (event.kind) {
        case KRMX_EVENT_LISTEN: printf("listen %u\n", (unsigned)event.port); break;
        case KRMX_EVENT_JOIN: printf("join %s\n", event.username); break;
        case KRMX_EVENT_LINK: printf("link %s\n", event.username); break;
        case KRMX_EVENT_UNLINK: printf("unlink %s\n", event.username); break;
        case KRMX_EVENT_LEAVE: printf("leave %s\n", event.username); break;
        case KRMX_EVENT_MESSAGE:
            printf("message %s %s %s\n", event.username, event.message_type,
                   event.payload ? event.payload : "(none)");
            if (strcmp(event.message_type, "test/echo") == 0) {
                CHECK(krmx_server_send(server, event.username, "test/echoed", event.payload), KRMX_OK);
            } else if (strcmp(event.message_type, "test/broadcast") == 0) {
                CHECK(krmx_server_broadcast(server, "test/broadcasted", event.payload, event.username), KRMX_OK);
            } else if (strcmp(event.message_type, "test/kick") == 0) {
                kick_named(server, event.payload);
            } else if (strcmp(event.message_type, "test/users") == 0) {
                print_users(server);
            } else if (strcmp(event.message_type, "test/close") == 0) {
                CHECK(krmx_server_close(server), KRMX_OK);
            }
            break;
        case KRMX_EVENT_CLOSE:
            printf("close\n");
            fflush(stdout);
            CHECK(krmx_server_free(server), KRMX_OK);
            return failures == 0 ? 0 : 2;
        default: printf("unexpected event %d\n", (int)event.kind); break;
        }
        fflush(stdout);
    }
}

int main(void) {
    check_api_misuse();
    if (failures > 0) {
        fprintf(stderr, "%d API check(s) failed\n", failures);
        return 2;
    }
    printf("api-checks-passed\n");
    fflush(stdout);
    return serve();
}
