/* backup_internal.h: what the writer (write.c) and the reader (read.c) of a backup share. */
#ifndef MOAT_BACKUP_INTERNAL_H
#define MOAT_BACKUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "moat/backup.h"

#define BACKUP_MAGIC "moat-backup 1"
#define BACKUP_BLOCK 65536 /* bytes read or written at a time */

/* true when path is relative, at most MOAT_BACKUP_PATH_MAX - 1 bytes, and each of its
 * components is 1 to 255 characters of [A-Za-z0-9._+@=-] other than "." and "..". */
bool backup_path_ok(const char *path);

/* true when the last component of path names a key (*.key, key.pem): restored 0600. */
bool backup_is_key(const char *path);

#endif
