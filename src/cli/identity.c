/* identity.c: `moat identity`: service and operator identities (and any identity for
 * list/show/revoke/renew/export/disable/enable/delete); ident_ops.c does the work. */
#include "cli.h"
#include "ident_ops.h"

int identity_main(int argc, char **argv)
{
	static const struct ident_scope scope = {.role = -1, .group = "identity"};
	static const char usage[] =
		"usage: moat identity <subcommand> [options]\n\n"
		"  add NAME --role service|operator [--days N] [--key-type K | --csr FILE]\n"
		"  list [--role R] [--json]\n"
		"  show NAME [--json]\n"
		"  revoke NAME [--reason R]\n"
		"  renew NAME [--days N] [--force]   (--force: also after key-compromise)\n"
		"  disable NAME | enable NAME        refused without revocation / accepted again\n"
		"  delete NAME [--reason R]          revoke, remove files and rows; the CRL keeps it\n"
		"  unban NAME\n"
		"  export NAME --out DIR [--format pem|p12|c-header|agent] [--password-file F] [--force]\n"
		"  export --all --out DIR [...]      every active identity, into DIR/NAME/\n\n"
		"Export writes all its files or none, refuses to overwrite one without --force; p12\n"
		"takes its password from --password-file F, else $MOAT_EXPORT_PASSWORD.\n\n"
		"Services (the backend) read every device's messages and send commands; operators are\n"
		"administrators (moat cmd). Same CA as devices, a different role in the certificate.\n";
	return ident_dispatch(&scope, argc, argv, usage);
}
