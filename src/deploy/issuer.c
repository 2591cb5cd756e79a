/* issuer.c: issues a bulk provisioning's certificates on every core while the caller writes
 * files and registry rows in order.
 *
 * Key generation and signing are the CPU-bound part of provisioning and independent per
 * identity; the registry transaction and the file writes are sequential. Worker threads
 * claim indices in order and put results into a ring of ISSUER_WINDOW slots; the caller
 * takes them in order (issuer_take), so at most ISSUER_WINDOW issued keys are in memory.
 * The CA is only read (OpenSSL 3 allows concurrent signing with one EVP_PKEY). Serials are
 * random here and checked against the registry by the caller, which owns the connection. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy_internal.h"

#define ISSUER_WINDOW 512
#define ISSUER_MAX_THREADS 16

struct issuer_slot {
	struct moat_issued issued;
	struct moat_err err;
	int rc;
	bool ready;
};

struct issuer_pool {
	const struct moat_ca *ca;
	const struct moat_provision_req *reqs;
	size_t count;
	int64_t now;
	int64_t default_days;

	pthread_mutex_t lock;
	pthread_cond_t ready_cond; /* a slot became ready */
	pthread_cond_t space_cond; /* the caller took a slot */
	size_t next;               /* next index to claim */
	size_t taken;              /* indices below this were taken by the caller */
	bool abort;
	struct issuer_slot slots[ISSUER_WINDOW];

	pthread_t threads[ISSUER_MAX_THREADS];
	size_t nthreads;
};

static void issue_one(struct issuer_pool *p, size_t i, struct issuer_slot *out)
{
	const struct moat_provision_req *r = &p->reqs[i];
	int64_t days = r->days ? r->days : p->default_days;
	struct moat_issue_req req = {
		.cn = r->id,
		.role = r->role,
		.kind = MOAT_CERT_CLIENT,
		.key_type = r->key_type,
		.not_before = p->now - 300, /* tolerate small clock skew on devices */
		.not_after = p->now + days * 86400,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	moat_err_clear(&out->err);
	out->rc = moat_pki_random_serial(serial, hex, &out->err);
	if (out->rc == 0) {
		out->rc = moat_pki_issue(p->ca, &req, serial, &out->issued, &out->err);
	}
}

static void *worker(void *arg)
{
	struct issuer_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->abort && p->next < p->count && p->next >= p->taken + ISSUER_WINDOW) {
			pthread_cond_wait(&p->space_cond, &p->lock);
		}
		if (p->abort || p->next >= p->count) {
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
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int issuer_start(const struct moat_ca *ca, const struct moat_provision_req *reqs, size_t count,
		 int64_t now, int64_t default_days, struct issuer_pool **out,
		 struct moat_err *err)
{
	struct issuer_pool *p = calloc(1, sizeof(*p));
	if (!p) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	p->ca = ca;
	p->reqs = reqs;
	p->count = count;
	p->now = now;
	p->default_days = default_days;
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
	while (!slot->ready) {
		pthread_cond_wait(&p->ready_cond, &p->lock);
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
