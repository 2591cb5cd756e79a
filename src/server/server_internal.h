/* server_internal.h: shared by the files of src/server only; not part of any contract.
 * Where a release's files live in the deployment: publish.c writes them, httpd.c serves
 * them (firmware/releases/<type>/<version>/{image.bin,envelope.json}).
 */
#ifndef MOAT_SERVER_INTERNAL_H
#define MOAT_SERVER_INTERNAL_H

#define MOAT_RELEASES_DIR "firmware/releases"
#define MOAT_RELEASE_IMAGE_FILE "image.bin"
#define MOAT_RELEASE_ENVELOPE_FILE "envelope.json"

#endif
