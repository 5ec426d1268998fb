/* Unit tests: sockets get dead-peer detection at both ends; the gate;
 * signatures against a pinned certificate. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jumbo/config.h"
#include "jumbo/net.h"
#include "tap.h"

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

static void check_keepalive(int fd, const char *who)
{
	is_int(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 1, "%s: TCP_NODELAY on", who);
	is_int(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1, "%s: SO_KEEPALIVE on", who);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), JB_SOCK_KEEPIDLE, "%s: TCP_KEEPIDLE %d s", who,
	       JB_SOCK_KEEPIDLE);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), JB_SOCK_KEEPINTVL, "%s: TCP_KEEPINTVL %d s", who,
	       JB_SOCK_KEEPINTVL);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), JB_SOCK_KEEPCNT, "%s: TCP_KEEPCNT %d", who, JB_SOCK_KEEPCNT);
	is_int(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), JB_SOCK_USER_TIMEOUT_MS, "%s: TCP_USER_TIMEOUT %d ms", who,
	       JB_SOCK_USER_TIMEOUT_MS);
}

/* The gate: in order, per address, the oldest out when full, deadlines. */
static void test_gate(void)
{
	struct jb_gate g;
	struct jb_gate_entry e[6] = {0}, *out = (struct jb_gate_entry *)1;
	struct sockaddr_in a = {.sin_family = AF_INET};
	jb_gate_init(&g, 4, 2, 10);
	for (int i = 0; i < 6; i++) {
		a.sin_addr.s_addr = htonl(0x7f000001u + (i < 3 ? 0 : (uint32_t)i)); /* 127.0.0.1 thrice, then others */
		jb_addr_from((struct sockaddr *)&a, &e[i].addr);
	}
	char host[64];
	jb_addr_format(&e[0].addr, host, sizeof host);
	is_str(host, "127.0.0.1", "an IPv4 address as IPv6-mapped, printed as IPv4");
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct jb_addr x;
	jb_addr_from((struct sockaddr *)&a6, &x);
	jb_addr_format(&x, host, sizeof host);
	is_str(host, "::1", "and an IPv6 one");
	is_int(jb_gate_enter(&g, &e[0], 1.0, &out), 0, "first in");
	ok(!out && g.n == 1 && e[0].in, "nobody taken out, one in");
	is_int(jb_gate_enter(&g, &e[1], 2.0, &out), 0, "second from the same address in");
	is_int(jb_gate_enter(&g, &e[2], 3.0, &out), -EMFILE, "a third from it: refused (2 per address)");
	ok(!e[2].in && g.n == 2, "and not in");
	is_int(jb_gate_count(&g, &e[0].addr), 2, "two from 127.0.0.1");
	jb_gate_enter(&g, &e[3], 4.0, &out);
	jb_gate_enter(&g, &e[4], 5.0, &out);
	ok(g.n == 4 && !out, "four in: full");
	is_int(jb_gate_enter(&g, &e[5], 6.0, &out), 0, "a fifth while full comes in");
	ok(out == &e[0] && !e[0].in && g.n == 4, "taking the place of the one waiting longest");
	jb_gate_leave(&g, &e[3]);
	jb_gate_leave(&g, &e[3]);
	ok(g.n == 3 && !e[3].in, "one leaves (twice: nothing more)");
	ok(!jb_gate_expired(&g, 11.9), "at 11.9 s nobody is past 10 s");
	ok(jb_gate_expired(&g, 12.0) == &e[1] && !jb_gate_expired(&g, 12.0), "at 12 s the one in at 2 s is");
	ok(jb_gate_expired(&g, 100) == &e[4] && jb_gate_expired(&g, 100) == &e[5] && !jb_gate_expired(&g, 100) &&
	   g.n == 0 && !g.head && !g.tail, "then the others, oldest first, and the gate is empty");
	is_int(jb_gate_enter(&g, &e[1], 200, &out), 0, "an entry can come in again");
	ok(g.head == &e[1] && g.tail == &e[1] && e[1].since == 200, "as the newest");
}

/* Signatures: made with one site's key, checked against its pinned
 * certificate; any other message, domain, key or certificate refused. */
static void test_sign(void)
{
	char a[] = "/tmp/jbsign.XXXXXX";
	ok(mkdtemp(a) != NULL, "temp dir");
	char da[4200], db[4200];
	snprintf(da, sizeof da, "%s/a", a);
	snprintf(db, sizeof db, "%s/b", a);
	struct jb_error err = {0};
	uint8_t fpa[32], fpb[32];
	ok(jb_identity_generate(da, "alpha", fpa, &err) == 0 && jb_identity_generate(db, "beta", fpb, &err) == 0,
	   "two identities");
	struct jb_signer *sa = NULL, *sb = NULL;
	ok(jb_signer_open(da, &sa, &err) == 0 && jb_signer_open(db, &sb, &err) == 0, "their signers (%s)", err.msg);
	if (!sa || !sb)
		return;
	ok(!memcmp(jb_signer_fingerprint(sa), fpa, 32), "the signer's fingerprint is the identity's");
	size_t ca, cb;
	const uint8_t *certa = jb_signer_cert(sa, &ca), *certb = jb_signer_cert(sb, &cb);
	static const char msg[] = "incoming/run7/a.h5 1073741824 sha256t:00ff";
	uint8_t sig[JB_SIG_LEN], sig2[JB_SIG_LEN];
	ok(jb_sign(sa, "jumbo seal 1", msg, sizeof msg - 1, sig, &err) == 0, "alpha signs a seal");
	is_int(jb_sig_verify(certa, ca, fpa, "jumbo seal 1", msg, sizeof msg - 1, sig, &err), 0,
	       "it checks against alpha's pinned certificate");
	char bad[sizeof msg];
	memcpy(bad, msg, sizeof msg);
	bad[5] ^= 1;
	is_int(jb_sig_verify(certa, ca, fpa, "jumbo seal 1", bad, sizeof msg - 1, sig, &err), -EPERM,
	       "one bit of the message changed: refused");
	ok(strstr(err.msg, "signature does not match") != NULL, "saying so: %s", err.msg);
	is_int(jb_sig_verify(certa, ca, fpa, "jumbo receipt 1", msg, sizeof msg - 1, sig, &err), -EPERM,
	       "the same bytes under another domain: refused");
	memcpy(sig2, sig, sizeof sig);
	sig2[63] ^= 0x80;
	is_int(jb_sig_verify(certa, ca, fpa, "jumbo seal 1", msg, sizeof msg - 1, sig2, &err), -EPERM,
	       "a signature with one bit changed: refused");
	/* a relay (beta) signs what it altered and hands its own certificate */
	ok(jb_sign(sb, "jumbo seal 1", bad, sizeof msg - 1, sig2, &err) == 0, "beta signs the altered message");
	is_int(jb_sig_verify(certb, cb, fpa, "jumbo seal 1", bad, sizeof msg - 1, sig2, &err), -EPERM,
	       "with its own certificate, against alpha's pin: refused");
	ok(strstr(err.msg, "not the pinned one") != NULL, "naming the certificate: %s", err.msg);
	is_int(jb_sig_verify(certa, ca, fpa, "jumbo seal 1", bad, sizeof msg - 1, sig2, &err), -EPERM,
	       "with alpha's certificate: refused");
	uint8_t junk[64] = {0x30, 0x82, 0xff, 0xff};
	is_int(jb_sig_verify(junk, sizeof junk, fpa, "jumbo seal 1", msg, sizeof msg - 1, sig, &err), -EBADMSG,
	       "bytes that are no certificate: refused, no crash");
	uint8_t *longer = malloc(ca + 1);
	memcpy(longer, certa, ca);
	longer[ca] = 0;
	is_int(jb_sig_verify(longer, ca + 1, fpa, "jumbo seal 1", msg, sizeof msg - 1, sig, &err), -EBADMSG,
	       "a certificate with a byte after it: refused");
	free(longer);
	is_int(jb_sig_verify(certa, ca - 1, fpa, "jumbo seal 1", msg, sizeof msg - 1, sig, &err), -EBADMSG,
	       "one cut short: refused");
	is_int(jb_sign(sa, "jumbo seal 1", msg, JB_SIGNED_MAX + 1, sig, &err), -E2BIG, "a message over the bound: refused");
	struct jb_signer *none = NULL;
	ok(jb_signer_open(a, &none, &err) < 0 && strstr(err.msg, "key.pem"), "no identity: %s", err.msg);
	jb_signer_free(sa);
	jb_signer_free(sb);
	char cmd[4300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", a);
	ok(system(cmd) == 0, "cleanup");
}

int main(void)
{
	test_gate();
	test_sign();
	struct jb_error err = {0};
	is_int(JB_SOCK_KEEPIDLE, 30, "keepalive starts after 30 s idle");
	is_int(JB_SOCK_KEEPINTVL * JB_SOCK_KEEPCNT, 30, "and gives up after 3 probes 10 s apart");
	is_int(JB_SOCK_USER_TIMEOUT_MS, 60000, "unacknowledged data fails a send after 60 s");

	int lfd = jb_sock_listen("127.0.0.1:0", 4, &err);
	ok(lfd >= 0, "listen on loopback: %s", lfd >= 0 ? "ok" : err.msg);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", jb_sock_local_port(lfd));
	int cfd = jb_sock_connect(addr, &err);
	ok(cfd >= 0, "connect to %s", addr);
	/* a fresh socket has none of it: the options below are ours */
	is_int(get_int(lfd, SOL_SOCKET, SO_KEEPALIVE), 0, "the listening socket has no keepalive of its own");
	check_keepalive(cfd, "jb_sock_connect");

	int afd = accept(lfd, NULL, NULL);
	ok(afd >= 0, "accept");
	is_int(jb_sock_setup(afd), 0, "jb_sock_setup on an accepted socket");
	check_keepalive(afd, "accepted");

	int sp[2];
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	ok(jb_sock_setup(sp[0]) < 0, "not TCP: a negative errno, no crash");
	close(sp[0]);
	close(sp[1]);
	close(afd);
	close(cfd);
	close(lfd);
	return tap_done();
}
