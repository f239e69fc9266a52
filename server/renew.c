/*
 * renew.c: certificate renewal. A device proves itself with its current
 * certificate and gets a new one for a new key; the old one is superseded.
 */
#include "server/server_int.h"

int
server_cert_verify(struct server *s, X509 *x, struct db_cert *c, char *why, size_t whylen)
{
	(void)s;
	(void)x;
	(void)c;
	snprintf(why, whylen, "Certificate authentication is not available yet.");
	return ERR_UNSUPPORTED;
}

void
route_renew(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNSUPPORTED, NULL);
}

void
route_renew_status(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNSUPPORTED, NULL);
}

void
route_device_renew_request(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNSUPPORTED, NULL);
}

void
route_group_validity(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNSUPPORTED, NULL);
}
