/* device.c: `moat device`: identities with the device role (ident_ops.c does the work). */
#include <string.h>

#include "cli.h"
#include "ident_ops.h"

int device_main(int argc, char **argv)
{
	static const struct ident_scope scope = {.role = MOAT_ROLE_DEVICE, .group = "device"};
	static const char usage[] =
		"usage: moat device <subcommand> [options]\n\n"
		"  add ID [--type T] [--days N] [--key-type K]   a new device key and certificate\n"
		"  add ID --csr FILE [--type T] [--days N]       a certificate for the device's own key\n"
		"  add ID --enroll [--token-ttl 24h] [--claim-cn CN] [--type T]\n"
		"                                                it enrolls itself over EST: prints a\n"
		"                                                one-time token (--json: {id, token})\n"
		"  add --prefix P --count N [--type T]           N devices P-000001..., all or none\n"
		"  list [--json]                                 every device\n"
		"  show ID [--json]                              one device and its certificates\n"
		"  revoke ID [--reason R]                        revoke; pki/crl.pem is rewritten\n"
		"  renew ID [--days N] [--force]                 new key and certificate, old revoked;\n"
		"                                                --force: also after key-compromise\n"
		"  disable ID                                    refused by broker and moatd, kicked\n"
		"                                                if connected; not revoked\n"
		"  enable ID                                     accepted again, same certificate\n"
		"  delete ID [--reason R]                        revoke (default cessation-of-\n"
		"                                                operation), remove files and rows;\n"
		"                                                the CRL and a deletion record stay\n"
		"  tag ID TAG...  /  untag ID TAG...             a device's tags (moat group --where)\n"
		"  unban ID                                      lift a ban for flapping (reconnects)\n"
		"  export ID --out DIR [--format pem|p12|c-header|agent] [--password-file F] [--force]\n"
		"  export --all --out DIR [...]                  every active device, into DIR/ID/\n"
		"                                                (progress on a terminal)\n\n"
		"Export writes all its files or none, and refuses to overwrite one without --force.\n"
		"p12 is protected by the password in --password-file F, else $MOAT_EXPORT_PASSWORD\n"
		"(8 to 1024 characters); without one it fails before writing anything. c-header\n"
		"holds the broker's host and port and the rules a firmware must follow.\n"
		"--json prints each result as one JSON object (lists as an array).\n\n"
		"Certificates: CN = ID, OU = device, clientAuth, 730 days by default, key type from\n"
		"moat.conf ([pki] key_type, default ec-p256). Files: pki/identities/ID/.\n"
		"A deleted ID may be added again: it is a new identity with a new key; the old\n"
		"certificates stay revoked.\n";
	if (argc > 1 && (strcmp(argv[1], "tag") == 0 || strcmp(argv[1], "untag") == 0)) {
		return device_tag_main(argc - 1, argv + 1);
	}
	return ident_dispatch(&scope, argc, argv, usage);
}
