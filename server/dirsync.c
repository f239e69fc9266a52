/*
 * dirsync.c: the directory worker — not written yet: nothing drains the
 * outbox.
 */
#include "server/server_int.h"

int
dirsync_start(struct server *s)
{
	s->dirsync = NULL;
	return 0;
}

void
dirsync_stop(struct server *s)
{
	(void)s;
}

void
dirsync_kick(struct server *s)
{
	(void)s;
}

void
route_directory_resync(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNAVAILABLE, "No directory worker here yet.");
}

void
route_directory_status(struct server *s, struct req *rq)
{
	(void)s;
	req_reply_error(rq, ERR_UNAVAILABLE, "No directory worker here yet.");
}
