/* testutil_registry.h: registry fixtures for the unit tests that link moat_registry
 * (tests/unit/testutil_registry.c; tests/CMakeLists.txt adds it to those tests only). */
#ifndef MOAT_TESTUTIL_REGISTRY_H
#define MOAT_TESTUTIL_REGISTRY_H

#include "moat/registry.h"

/* A release of version for device_type whose digest is 64 times fill, rolled out to pct
 * percent (-1: listed devices), security_version 1, size 10, issued_at 1, expires_at 2,
 * published_at 3; a test that needs other numbers sets them on the result. */
struct moat_release tu_release(const char *device_type, const char *version, char fill, int pct);

#endif
