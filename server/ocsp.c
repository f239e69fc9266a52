/*
 * ocsp.c: the OCSP responder (RFC 6960) — not written yet: the routes
 * answer 404 and nothing starts.
 */
#include "server/server_int.h"

int
ocsp_start(struct server *s)
{
	s->ocsp = NULL;
	return 0;
}

void
ocsp_stop(struct server *s)
{
	(void)s;
}

void
ocsp_invalidate(struct server *s, const char *serial_hex)
{
	(void)s;
	(void)serial_hex;
}

void
route_ocsp_get(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_NOT_FOUND, "No OCSP responder here yet.");
}

void
route_ocsp_post(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_NOT_FOUND, "No OCSP responder here yet.");
}
