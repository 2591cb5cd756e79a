/* mbedtls_config.h: the minimal mbedTLS configuration moat-device's MCU builds use
 * (MBEDTLS_CONFIG_FILE): ECDSA P-256 verification, SHA-256, ASN.1 and base64, with
 * bignums allocated from a static arena (MEMORY_BUFFER_ALLOC) rather than a heap. RSA,
 * PK parsing, OID and MD are here only for bench/mcu's anchor (mbedtls_pk_verify with an
 * RSA-2048 PKCS#1 v1.5 key); the linker drops them from builds that do not call them.
 * The same file for mbedTLS 2.28 (Debian 12's source) and 3.6 (ESP-IDF 5's series; built
 * by tests/mcu/build.sh when MOAT_MBEDTLS_SRC names its tree): these names did not change.
 * It is included as <mbedtls_config.h>: 3.x has a file of that name next to build_info.h,
 * which a quoted include would find first. */
#ifndef MOAT_MCU_MBEDTLS_CONFIG_H
#define MOAT_MCU_MBEDTLS_CONFIG_H

#define MBEDTLS_HAVE_ASM
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C

#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_NO_INTERNAL_RNG
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_WINDOW_SIZE 4
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_BASE64_C
#define MBEDTLS_MPI_WINDOW_SIZE 2
#define MBEDTLS_MPI_MAX_SIZE 512

/* bench/mcu's anchor only */
#define MBEDTLS_MD_C
#define MBEDTLS_OID_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15

/* 2.28 leaves the check to a custom configuration; 3.x's build_info.h runs it itself, after
 * its own adjustments (including it here would check too early). */
#if !defined(MBEDTLS_VERSION_MAJOR) || MBEDTLS_VERSION_MAJOR < 3
#include "mbedtls/check_config.h"
#endif

#endif
