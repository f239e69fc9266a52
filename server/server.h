/*
 * server: the provd daemon's HTTP side — libmicrohttpd with a routing table,
 * one error table, API-token authentication, and the REST routes over the
 * ca/ and db/ libraries. The daemon itself never holds the CA key: it talks
 * to the signer process.
 */
#ifndef PROVD_SERVER_H
#define PROVD_SERVER_H

#include "common/common.h"

struct server;

/*
 * Starts the HTTP service described by cfg: connects to the database,
 * starts the signer process (self: path of the provd executable, conf: the
 * configuration path handed to it) and the issuance writer, then listens.
 * The caller keeps cfg alive until server_stop().
 */
int server_start(const struct config *cfg, const char *self, const char *conf,
    struct server **out);
/* Stops listening, finishes requests in flight, stops the signer. NULL ok. */
void server_stop(struct server *s);
/* The TCP port actually bound (useful when cfg->port is 0). */
int server_port(const struct server *s);

#endif
