/* locate.c: where the moatd executable is, for `moat up`, which runs it beside the broker
 * under its supervisor. moatd sits beside the moat binary, in an installed moat and in a
 * build tree alike; $MOAT_MOATD overrides that.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "moat/server.h"
#include "moat/supervise.h"

int moat_server_moatd_path(char *buf, size_t size, struct moat_err *err)
{
	const char *env = getenv(MOAT_MOATD_ENV);
	if (env && env[0]) {
		if (access(env, X_OK) != 0) {
			return moat_err_errno(err, MOAT_ENOENT, errno, "moatd not found: $%s=%s",
					      MOAT_MOATD_ENV, env);
		}
		return moat_path_join(buf, size, err, "%s", env);
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		return moat_err_errno(err, MOAT_ENOENT, errno, "/proc/self/exe");
	}
	self[n] = '\0';
	const char *dir = dirname(self);
	int rc = moat_path_join(buf, size, err, "%s/moatd", dir);
	if (rc != 0) {
		return rc;
	}
	if (access(buf, X_OK) == 0) {
		return 0;
	}
	int e = errno;
	rc = moat_err_set(err, MOAT_ENOENT,
			  "moatd not found: %s: %s (it is installed beside moat; $%s names another)",
			  buf, strerror(e), MOAT_MOATD_ENV);
	buf[0] = '\0';
	return rc;
}

int moat_server_sup_add(struct moat_sup *sup, const char *dir, struct moat_err *err)
{
	char bin[PATH_MAX];
	char log[PATH_MAX];
	char pid[PATH_MAX];
	int rc;
	if ((rc = moat_server_moatd_path(bin, sizeof(bin), err)) != 0) {
		return rc;
	}
	if ((rc = moat_path_join(log, sizeof(log), err, "%s/%s", dir, MOAT_MOATD_LOG_FILE)) != 0 ||
	    (rc = moat_path_join(pid, sizeof(pid), err, "%s/%s", dir, MOAT_MOATD_PID_FILE)) != 0) {
		return rc;
	}
	char *const argv[] = {bin, "--dir", (char *)dir, "--log", log, NULL};
	return moat_sup_add(sup, "moatd", argv, pid, err);
}
