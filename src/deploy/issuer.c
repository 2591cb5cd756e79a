/* issuer.c: issues and stages a bulk provisioning's identities on every core while the
 * caller inserts registry rows in order.
 *
 * Key generation, signing and writing an identity's staging files are independent per
 * identity (file creation, mostly ext4 inode allocation, costs as much as the crypto); the
 * registry transaction is sequential. Worker threads claim indices in order, stage
 * <staging>/<id>/ and put the certificate into a ring of ISSUER_WINDOW slots; the caller
 * takes them in order (issuer_take). Private keys are wiped as soon as they are written.
 * The CA is only read (OpenSSL 3 allows concurrent signing with one EVP_PKEY). Serials are
 * random here and checked against the registry by the caller, which owns the connection. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

/* Defined here, the lowest file that reads it: issuer workers and provision.c's loop
 * stop when it is set. */
volatile int moat_deploy_interrupted;

#define ISSUER_WINDOW 512
#define ISSUER_MAX_THREADS 16

struct issuer_slot {
	struct moat_issued issued;
	struct moat_err err;
	int rc;
	bool ready;
};

struct issuer_pool {
	struct issuer_job job;

	pthread_mutex_t lock;
	pthread_cond_t ready_cond; /* a slot became ready */
	pthread_cond_t space_cond; /* the caller took a slot */
	size_t next;		   /* next index to claim */
	size_t taken;		   /* indices below this were taken by the caller */
	bool abort;
	struct issuer_slot slots[ISSUER_WINDOW];

	pthread_t threads[ISSUER_MAX_THREADS];
	size_t nthreads;
	size_t exited; /* workers that left their loop (done, aborted or interrupted) */
};

static void issue_one(struct issuer_pool *p, size_t i, struct issuer_slot *out)
{
	const struct moat_provision_req *r = &p->job.reqs[i];
	int64_t not_after = 0;
	moat_err_clear(&out->err);
	out->rc = deploy_not_after(p->job.ca, p->job.now, r->days, p->job.default_days, r->id,
				   &not_after, &out->err);
	if (out->rc != 0) {
		return;
	}
	struct moat_issue_req req = {
		.cn = r->id,
		.role = r->role,
		.kind = MOAT_CERT_CLIENT,
		.key_type = r->key_type,
		.not_before = p->job.now - 300, /* tolerate small clock skew on devices */
		.not_after = not_after,
		.key = r->csr ? r->csr->key : NULL,
		.key_public_only = r->csr != NULL,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	out->rc = moat_pki_random_serial(serial, hex, &out->err);
	if (out->rc == 0) {
		out->rc = moat_pki_issue(p->job.ca, &req, serial, &out->issued, &out->err);
	}
	char dir[PATH_MAX];
	if (out->rc == 0 && (out->rc = moat_path_join(dir, sizeof(dir), &out->err, "%s/%s",
						      p->job.staging, r->id)) == 0) {
		out->rc = deploy_stage_identity(dir, &out->issued, p->job.chain, p->job.chain_len,
						p->job.ca_path, &out->err);
	}
	/* the key is on disk now (or the item failed): do not keep it in memory */
	if (out->issued.key_pem) {
		OPENSSL_cleanse(out->issued.key_pem, out->issued.key_pem_len);
		free(out->issued.key_pem);
		out->issued.key_pem = NULL;
		out->issued.key_pem_len = 0;
	}
	EVP_PKEY_free(out->issued.key);
	out->issued.key = NULL;
}

static void *worker(void *arg)
{
	struct issuer_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->abort && p->next < p->job.count && p->next >= p->taken + ISSUER_WINDOW) {
			pthread_cond_wait(&p->space_cond, &p->lock);
		}
		if (p->abort || p->next >= p->job.count || moat_deploy_interrupted) {
			break;
		}
		size_t i = p->next++;
		struct issuer_slot *slot = &p->slots[i % ISSUER_WINDOW];
		pthread_mutex_unlock(&p->lock);

		struct issuer_slot result = {0};
		issue_one(p, i, &result);

		pthread_mutex_lock(&p->lock);
		*slot = result;
		slot->ready = true;
		pthread_cond_broadcast(&p->ready_cond);
	}
	/* a caller waiting for an index nobody will claim (interrupt) must wake up */
	p->exited++;
	pthread_cond_broadcast(&p->ready_cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int issuer_start(const struct issuer_job *job, struct issuer_pool **out, struct moat_err *err)
{
	struct issuer_pool *p = calloc(1, sizeof(*p));
	if (!p) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	p->job = *job;
	size_t count = job->count;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->ready_cond, NULL);
	pthread_cond_init(&p->space_cond, NULL);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cores < 1 ? 1 : (size_t)cores;
	if (want > ISSUER_MAX_THREADS) {
		want = ISSUER_MAX_THREADS;
	}
	if (want > count) {
		want = count;
	}
	for (size_t t = 0; t < want; t++) {
		if (pthread_create(&p->threads[t], NULL, worker, p) != 0) {
			break;
		}
		p->nthreads++;
	}
	if (p->nthreads == 0) {
		issuer_stop(p);
		return moat_err_set(err, MOAT_ENOMEM, "cannot start issuing threads");
	}
	*out = p;
	return 0;
}

int issuer_take(struct issuer_pool *p, size_t i, struct moat_issued *out, struct moat_err *err)
{
	struct issuer_slot *slot = &p->slots[i % ISSUER_WINDOW];
	pthread_mutex_lock(&p->lock);
	while (!slot->ready && p->exited < p->nthreads) {
		pthread_cond_wait(&p->ready_cond, &p->lock);
	}
	if (!slot->ready) {
		/* every worker stopped before reaching i: only an interrupt does that */
		pthread_mutex_unlock(&p->lock);
		return moat_err_set(err, MOAT_EINTR, "interrupted; nothing was added");
	}
	int rc = slot->rc;
	if (rc == 0) {
		*out = slot->issued;
	} else if (err) {
		*err = slot->err;
	}
	memset(slot, 0, sizeof(*slot));
	p->taken = i + 1;
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void issuer_stop(struct issuer_pool *p)
{
	if (!p) {
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->abort = true;
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	for (size_t t = 0; t < p->nthreads; t++) {
		pthread_join(p->threads[t], NULL);
	}
	for (size_t s = 0; s < ISSUER_WINDOW; s++) {
		moat_pki_issued_free(&p->slots[s].issued); /* wipes keys not taken */
	}
	pthread_cond_destroy(&p->space_cond);
	pthread_cond_destroy(&p->ready_cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
