/* The control channel: length-prefixed frames over a non-blocking TLS
 * connection, read and written by one thread only (an SSL object is not
 * shared between threads). */
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "xfer-internal.h"

int ctl_init(struct ctl *c, SSL *ssl, int fd)
{
	memset(c, 0, sizeof *c);
	c->ssl = ssl;
	c->fd = fd;
	c->out.limit = 64u << 20;
	c->in = malloc(JB_WIRE_MAX_FRAME + 4);
	if (!c->in)
		return -ENOMEM;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return 0;
}

void ctl_close(struct ctl *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	jb_buf_free(&c->out);
	c->ssl = NULL;
	c->fd = -1;
	c->in = NULL;
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Write what the socket takes now: 1 when everything queued is out, 0 when
 * some is left (*want: the poll event to wait for), <0 on error.  TLS is set
 * up for partial writes and a moving buffer (tls.c), so a write left pending
 * is retried with the same bytes wherever they have moved to. */
static int out_some(struct ctl *c, short *want, struct jb_error *err)
{
	if (c->out.oom)
		return jb_err(err, ENOMEM, "control message queue overflow");
	while (c->out_off < c->out.len) {
		size_t put = 0;
		if (SSL_write_ex(c->ssl, c->out.p + c->out_off, c->out.len - c->out_off, &put)) {
			c->out_off += put;
			continue;
		}
		int e = SSL_get_error(c->ssl, 0);
		ERR_clear_error();
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
			return jb_err(err, ECONNRESET, "%s: control connection lost", c->peer);
		*want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		if (c->out_off >= (1u << 20)) { /* drop what is out, keep the queue small */
			memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
			c->out.len -= c->out_off;
			c->out_off = 0;
		}
		return 0;
	}
	c->out.len = c->out_off = 0;
	return 1;
}

static int flush_within(struct ctl *c, int timeout_ms, struct jb_error *err)
{
	for (;;) {
		short want = 0;
		int r = out_some(c, &want, err);
		if (r)
			return r < 0 ? r : 0;
		if (wait_fd(c->fd, want, timeout_ms) <= 0)
			return jb_err(err, ETIMEDOUT, "%s: control connection stalled", c->peer);
	}
}

int ctl_flush(struct ctl *c, struct jb_error *err) { return flush_within(c, 60000, err); }

int ctl_send(struct ctl *c, struct jb_error *err)
{
	short want;
	int r = out_some(c, &want, err);
	return r < 0 ? r : 0;
}

/* Try to decode one complete frame from the input buffer. */
static int have_frame(struct ctl *c, struct jb_error *err)
{
	if (c->inlen - c->start < 4)
		return 0;
	const uint8_t *p = c->in + c->start;
	uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (n > JB_WIRE_MAX_FRAME)
		return jb_err(err, E2BIG, "%s: frame of %u bytes exceeds the limit of %u", c->peer, n,
			      JB_WIRE_MAX_FRAME);
	if (n == 0)
		return jb_err(err, EBADMSG, "%s: empty frame", c->peer);
	if (c->inlen - c->start < 4 + (size_t)n)
		return 0;
	int r = jb_wire_decode(p + 4, n, &c->msg);
	if (r < 0)
		return jb_err(err, EBADMSG, "%s: malformed frame (type %u, %u bytes)", c->peer, p[4], n);
	c->consumed = 4 + (size_t)n;
	if (c->msg.type == JB_MSG_ERROR) {
		c->peer_error = true;
		return jb_err(err, c->msg.u.error.code ? c->msg.u.error.code : EIO, "%s: %s", c->peer,
			      c->msg.u.error.text);
	}
	return 1;
}

int ctl_recv(struct ctl *c, int timeout_ms, int extra_fd, struct jb_error *err)
{
	/* The last message's bytes are dropped by moving a start offset, not the
	 * data: a TLS record holds hundreds of small frames (NEED, FILE_DONE). */
	c->start += c->consumed;
	c->consumed = 0;
	double deadline = jb_now() + timeout_ms / 1000.0;
	for (;;) {
		int r = have_frame(c, err);
		if (r)
			return r;
		if (c->start) { /* room for the rest of the frame: compact */
			memmove(c->in, c->in + c->start, c->inlen - c->start);
			c->inlen -= c->start;
			c->start = 0;
		}
		size_t got = 0;
		if (SSL_read_ex(c->ssl, c->in + c->inlen, JB_WIRE_MAX_FRAME + 4 - c->inlen, &got)) {
			c->inlen += got;
			continue;
		}
		int e = SSL_get_error(c->ssl, 0);
		ERR_clear_error();
		if (e == SSL_ERROR_ZERO_RETURN || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)) {
			if (c->inlen)
				return jb_err(err, EPIPE, "%s: connection closed inside a frame (truncated)", c->peer);
			return jb_err(err, EPIPE, "%s: control connection closed", c->peer);
		}
		/* queued frames go out while we wait (ctl_send) */
		short wev = 0;
		if (c->out_off < c->out.len && (r = out_some(c, &wev, err)) < 0)
			return r;
		int left = (int)((deadline - jb_now()) * 1000);
		if (left <= 0)
			return 0;
		struct pollfd p[2] = {{.fd = c->fd, .events = (short)((e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN) | wev)},
				      {.fd = extra_fd, .events = POLLIN}};
		int pr = poll(p, extra_fd >= 0 ? 2 : 1, left);
		if (pr < 0 && errno != EINTR)
			return jb_err(err, errno, "poll: %s", strerror(errno));
		if (pr > 0 && extra_fd >= 0 && (p[1].revents & POLLIN) && !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			return 0;
	}
}

/* The ERROR is out: close our side, and read what the peer still sends
 * until it closes too (or 2 s pass).  Closing a socket with unread data
 * resets the connection, and the peer would lose the ERROR itself: it is
 * usually still busy sending when the error comes. */
static void linger(struct ctl *c)
{
	SSL_shutdown(c->ssl); /* close_notify; non-blocking, it does not wait for the peer's */
	ERR_clear_error();
	shutdown(c->fd, SHUT_WR);
	double until = jb_now() + 2;
	uint8_t junk[16384];
	for (;;) {
		int left = (int)((until - jb_now()) * 1000);
		if (left <= 0 || wait_fd(c->fd, POLLIN, left) <= 0)
			break;
		ssize_t n = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

int ctl_send_error(struct ctl *c, int code, const char *text)
{
	/* Frames the socket has not taken yet are dropped, but one TLS write
	 * may be half done: those bytes go first (a few seconds at most), so
	 * the ERROR lands on a frame boundary. */
	if (c->out_off < c->out.len && !c->out.oom && flush_within(c, 5000, NULL) < 0)
		return -EIO;
	c->out.len = c->out_off = 0;
	c->out.oom = false;
	size_t m = jb_frame_begin(&c->out, JB_MSG_ERROR);
	jb_buf_u16(&c->out, (uint16_t)(code < 0 ? -code : code));
	char t[JB_WIRE_MAX_MSG + 1];
	snprintf(t, sizeof t, "%s", text);
	jb_buf_str(&c->out, t);
	jb_frame_end(&c->out, m);
	int r = ctl_flush(c, NULL);
	if (r == 0)
		linger(c);
	return r;
}
