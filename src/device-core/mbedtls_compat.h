/* mbedtls_compat.h: the mbedTLS 3.x names port_mbedtls.c uses, mapped onto 2.28 when that
 * is what is installed (Debian 12). Nothing else differs for the calls the port makes. */
#ifndef MDEV_MBEDTLS_COMPAT_H
#define MDEV_MBEDTLS_COMPAT_H

#include <mbedtls/version.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/sha256.h>

#if MBEDTLS_VERSION_MAJOR < 3
#define mbedtls_sha256_starts mbedtls_sha256_starts_ret
#define mbedtls_sha256_update mbedtls_sha256_update_ret
#define mbedtls_sha256_finish mbedtls_sha256_finish_ret
#define mbedtls_sha256 mbedtls_sha256_ret
#endif

#endif
