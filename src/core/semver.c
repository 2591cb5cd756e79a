/* semver.c: semantic versions (semver.org 2.0) with moat's error messages. The rules are
 * moat-device's (src/device-core/semver.c), so "newer than what runs" means the same thing
 * on a microcontroller, in moat-boot and in `moat fw verify`. */
#include <string.h>

#include "moat/manifest.h"

int moat_semver_check(const char *v, struct moat_err *err)
{
	if (!v || !*v) {
		return moat_err_set(err, MOAT_EINVAL, "version is empty");
	}
	if (strnlen(v, MOAT_FW_VERSION_MAX_LEN + 1) > MOAT_FW_VERSION_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "version is longer than %d characters",
				    MOAT_FW_VERSION_MAX_LEN);
	}
	if (!mdev_semver_valid(v)) {
		return moat_err_set(
			err, MOAT_EINVAL,
			"version '%s' is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])",
			v);
	}
	return 0;
}

int moat_semver_compare(const char *a, const char *b, int *out_cmp, struct moat_err *err)
{
	int rc = moat_semver_check(a, err);
	if (rc == 0) {
		rc = moat_semver_check(b, err);
	}
	if (rc == 0 && mdev_semver_compare(a, b, out_cmp) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "versions cannot be compared");
	}
	return rc;
}
