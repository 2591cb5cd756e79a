/* backup.h: `moat backup` and `moat restore` (src/backup): a deployment as one archive.
 *
 * The archive is a gzip-compressed POSIX tar (libarchive). Its first member is the manifest,
 * MOAT_BACKUP_MANIFEST, text:
 *
 *   moat-backup 1
 *   d 0755 0 - pki
 *   f 0600 1234 <sha-256 hex> pki/ca.key
 *
 * one line per member after it (directories before what they hold), type d or f, mode
 * (octal), size, SHA-256 of the content, path. The members are the deployment directory's
 * regular files and directories, keys as they are on disk (ca.key and firmware keys stay
 * encrypted; issuer.key and device keys are as unencrypted as on disk: the archive is
 * 0600 and must be kept like the deployment), minus run/, log/, sockets and the registry's
 * files, plus registry.db as a copy taken by moat_registry_backup (online). Paths are
 * relative, made of components of [A-Za-z0-9._+@=-] other than "." and "..".
 *
 * Reading an archive is a parser of untrusted input: restore refuses (MOAT_EVERIFY, the
 * message naming the member) an archive whose first member is not the manifest, a member
 * missing from the manifest or listed but absent, a duplicate, an absolute path or "..",
 * anything but regular files and directories (symbolic and hard links, devices, fifos), a
 * size or SHA-256 that differs from the manifest, a member before its directory, and a
 * truncated or corrupt archive; nothing is left in the target then.
 */
#ifndef MOAT_BACKUP_H
#define MOAT_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "moat/deploy.h"
#include "moat/err.h"

#define MOAT_BACKUP_MANIFEST "moat-backup.manifest"
#define MOAT_BACKUP_MANIFEST_MAX (16u * 1024 * 1024) /* about 150,000 members */
#define MOAT_BACKUP_PATH_MAX 1024

struct moat_backup_stats {
	size_t files;	/* regular files, registry.db included, manifest not */
	size_t dirs;	/* directories */
	uint64_t bytes; /* their content, uncompressed */
};

/* What moat backup says of a deployment whose registry is on PostgreSQL. */
#define MOAT_BACKUP_PG_REFUSED                                                                  \
	"the registry is on PostgreSQL ([registry] url): back it up with pg_dump; moat backup " \
	"copies only a registry.db"

/* Writes a backup of d (opened with MOAT_DEPLOY_WRITE, so run/moat.lock is held and no
 * moat command or moatd changes it meanwhile; Mosquitto and moatd keep running) to path:
 * written to a temporary file beside it, fsynced, renamed over path, mode 0600. A file that
 * changes while it is read (hashed, then archived) fails the backup (MOAT_ESTATE); a
 * symbolic link in the deployment is refused (moat writes none). On failure nothing is left
 * at path or beside it. out may be NULL. A deployment whose registry is on PostgreSQL
 * ([registry] url) is refused (MOAT_EINVAL, naming pg_dump) before anything is written. */
MOAT_MUST_CHECK int moat_backup_write(struct moat_deploy *d, const char *path,
				      struct moat_backup_stats *out, struct moat_err *err);

/* Restores the archive at path into target, which must not exist or be an empty directory
 * (MOAT_EEXIST otherwise): extracted and checked in full into a new directory beside target,
 * opened as a deployment (its registry must be moat's), then renamed to target. Modes come
 * from the manifest without set-id or sticky bits, and every key (*.key, key.pem) is
 * 0600; files belong to the user running restore, and run as root the deployment's
 * ownership model (moat_deploy_own, creating moatd's account if it is the default and
 * missing) is applied. On any failure target is as it was. */
MOAT_MUST_CHECK int moat_backup_restore(const char *path, const char *target,
					struct moat_backup_stats *out, struct moat_err *err);

/* The checks of moat_backup_restore over an archive in memory, writing nothing: 0 when
 * restoring it would pass them. For the fuzz target and `moat restore --check`. */
MOAT_MUST_CHECK int moat_backup_check_memory(const void *data, size_t len,
					     struct moat_backup_stats *out, struct moat_err *err);

/* The same checks over the archive at path, writing nothing. */
MOAT_MUST_CHECK int moat_backup_check(const char *path, struct moat_backup_stats *out,
				      struct moat_err *err);

#endif
