/*
 * radio_int.h: what radio.c (the dispatch) and the radio backends share —
 * the table of backend functions and the layouts of struct radio and struct
 * radio_link. Nothing outside provision/radio*.c includes this header.
 */
#ifndef PROVD_RADIO_INT_H
#define PROVD_RADIO_INT_H

#include <stdint.h>

#include "provision/provision.h"

/*
 * One backend. The dispatch allocates (zeroed) and frees struct radio and
 * struct radio_link; a backend hangs its own state off their be pointer and
 * releases it in close/link_close. The dispatch has already checked every
 * pointer argument and set out-parameters to NULL. A NULL entry means the
 * backend cannot do that (the public call returns ERR_UNSUPPORTED).
 *
 * Timeouts are in milliseconds; a negative timeout waits without limit.
 */
struct radio_ops {
	const char *name;

	/* Fills r->be. ERR_CONFIG for bad parameters, ERR_UNAVAILABLE when
	 * the radio cannot be used. On failure r->be must be left NULL. */
	int (*open)(struct radio *r, const struct radio_params *p);
	/* Releases r->be (stops listening). Links already handed out stay
	 * usable and are closed separately. */
	void (*close)(struct radio *r);

	int (*inquire)(struct radio *r, int timeout_ms, struct radio_device *out,
	    size_t max, size_t *n);
	/* On success fills l->be and l->peer. */
	int (*connect)(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
	    struct radio_link *l);
	int (*listen)(struct radio *r, const struct radio_device *self);
	/* On success fills l->be and l->peer. */
	int (*accept)(struct radio *r, int timeout_ms, struct radio_link *l);

	/* len > 0. Writes all of buf or fails. */
	int (*link_write)(struct radio_link *l, const void *buf, size_t len,
	    int timeout_ms);
	/* len > 0. Reads 1..len bytes; EOF is ERR_IO. (The dispatch builds
	 * radio_link_read, the exact read, on top of this.) */
	int (*link_read_some)(struct radio_link *l, void *buf, size_t len,
	    size_t *got, int timeout_ms);
	int (*link_fd)(const struct radio_link *l);
	int (*link_set_fault)(struct radio_link *l, size_t drop_after, int delay_ms);
	/* Releases l->be. */
	void (*link_close)(struct radio_link *l);
};

struct radio {
	const struct radio_ops *ops;
	void *be;			/* backend state */
};

struct radio_link {
	const struct radio_ops *ops;
	uint8_t peer[MAC_LEN];		/* set by the backend at connect/accept */
	void *be;			/* backend state */
};

/* The backends compiled in (one file each). */
extern const struct radio_ops radio_sim_ops;
extern const struct radio_ops radio_bluez_ops;

/*
 * Deadlines shared by the backends: radio_deadline_set turns a timeout into
 * an absolute monotonic time (0 for "no limit"); radio_deadline_left gives
 * the milliseconds left, rounded up, as poll() wants them: -1 for no limit,
 * 0 once the deadline has passed.
 */
uint64_t radio_deadline_set(int timeout_ms);
int radio_deadline_left(uint64_t deadline);

/*
 * Links that are plain non-blocking-capable sockets (sim, bluez): wait for
 * events until deadline (0, ERR_TIMEOUT, ERR_IO); read 1..len bytes (EOF and
 * resets are ERR_IO); write all len bytes (*sent: how many went out before a
 * failure).
 */
int radio_fd_wait(int fd, short events, uint64_t deadline);
int radio_fd_read_some(int fd, void *buf, size_t len, size_t *got, uint64_t deadline);
int radio_fd_write_all(int fd, const void *buf, size_t len, size_t *sent, uint64_t deadline);

/* Whether addr is an acceptable device address (unicast, not all zero). */
int radio_addr_ok(const uint8_t addr[MAC_LEN]);
/* Checks a device name: NUL-terminated within RADIO_NAME_MAX bytes (so at
 * most RADIO_NAME_MAX-1 bytes long) and printable UTF-8; "" is allowed.
 * Reads no further than name[RADIO_NAME_MAX-1]. Returns 0 or ERR_INVALID. */
int radio_name_check(const char *name);

#endif
