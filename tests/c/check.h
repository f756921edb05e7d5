/* What the C test hosts share: CHECK a call's result and ASSERT a condition, counting failures
 * (each prints where and why) so that a test reports every failure, not only the first; and a
 * client's status. */
#ifndef KRMX_TEST_CHECK_H
#define KRMX_TEST_CHECK_H

#include <stdio.h>

#include "krmx.h"

static int failures = 0;

#define CHECK(expr, expected)                                                                      \
    do {                                                                                           \
        KrmxResult got_ = (expr);                                                                  \
        if (got_ != (expected)) {                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #expr, \
                    krmx_result_name(got_), krmx_result_name(expected), krmx_last_error());        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define ASSERT(condition)                                                                          \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #condition);                \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* A client's status (a failed call counts as a failure and reads as -1). Inline, so that a host
 * without clients does not warn about it. */
static inline KrmxClientStatus status_of(const KrmxClient *client) {
    KrmxClientStatus status = (KrmxClientStatus)-1;
    CHECK(krmx_client_status(client, &status), KRMX_OK);
    return status;
}

#endif
