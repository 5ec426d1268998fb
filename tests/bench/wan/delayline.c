/* delayline: a WAN emulator in user space, for kernels without sch_netem.
 *
 *   delayline --queue N --delay MS [--loss FRACTION] [--mtu BYTES] [--seed S]
 *
 * Packets sent to NFQUEUE N (iptables -j NFQUEUE --queue-num N) are held for
 * the one-way delay and then released, in arrival order, by batch verdicts;
 * a packet is dropped with the configured probability.  Only metadata and
 * the first 64 bytes (headers) cross into user space: the kernel keeps the
 * packet, and GSO
 * packets stay whole (NFQA_CFG_F_GSO), so a 64 KiB super-packet costs one
 * queue entry.  Loss: a GSO packet of k segments of the given MTU is dropped
 * whole with probability 1 - (1 - p)^k, so loss events (what TCP's congestion
 * control reacts to) happen at the configured rate per wire packet; each
 * event loses all k segments, where independent losses would lose one.
 *
 * SIGUSR1 prints counters to stderr; SIGTERM/SIGINT release every held packet
 * and exit.  With --stats-file, counters are also written there on exit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define BATCH_NS 50000u

struct held {
	uint32_t id;
	uint64_t due_ns;
};

static struct {
	struct mnl_socket *nl;
	uint32_t queue;
	uint64_t delay_ns;
	double loss;
	unsigned mss;
	uint64_t rng;
	/* FIFO of held packets: a ring that grows */
	struct held *ring;
	size_t cap, head, len;
	/* counters */
	uint64_t packets, segments, bytes, dropped, dropped_segments, batches, max_held;
	const char *stats_file;
} dl;

static volatile sig_atomic_t stop, report;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report = 1;
	else
		stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* xorshift64*: a reproducible stream for --seed */
static double uniform(void)
{
	dl.rng ^= dl.rng >> 12;
	dl.rng ^= dl.rng << 25;
	dl.rng ^= dl.rng >> 27;
	return (double)((dl.rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static void die(const char *what)
{
	fprintf(stderr, "delayline: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void send_msg(struct nlmsghdr *nlh)
{
	while (mnl_socket_sendto(dl.nl, nlh, nlh->nlmsg_len) < 0) {
		if (errno == EINTR)
			continue;
		die("netlink send");
	}
}

static void verdict(uint32_t id, int v, bool batch)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, (int)dl.queue);
	nfq_nlmsg_verdict_put(nlh, (int)id, v);
	send_msg(nlh);
}

static void push(uint32_t id, uint64_t due)
{
	if (dl.len == dl.cap) {
		size_t nc = dl.cap ? dl.cap * 2 : 4096;
		struct held *n = malloc(nc * sizeof *n);
		if (!n)
			die("malloc");
		for (size_t i = 0; i < dl.len; i++)
			n[i] = dl.ring[(dl.head + i) % dl.cap];
		free(dl.ring);
		dl.ring = n;
		dl.cap = nc;
		dl.head = 0;
	}
	dl.ring[(dl.head + dl.len) % dl.cap] = (struct held){id, due};
	dl.len++;
	if (dl.len > dl.max_held)
		dl.max_held = dl.len;
}

/* Accept, with one batch verdict, every held packet due by now (or all). */
static void release(uint64_t now, bool all)
{
	uint32_t last = 0;
	bool any = false;
	while (dl.len && (all || dl.ring[dl.head].due_ns <= now)) {
		last = dl.ring[dl.head].id;
		any = true;
		dl.head = (dl.head + 1) % dl.cap;
		dl.len--;
	}
	if (any) {
		verdict(last, NF_ACCEPT, true);
		dl.batches++;
	}
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	(void)data;
	struct nlattr *attr[NFQA_MAX + 1] = {0};
	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	uint32_t id = ntohl(ph->packet_id);
	uint32_t len = attr[NFQA_CAP_LEN] ? ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) : 0;
	if (!len && attr[NFQA_PAYLOAD])
		len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	unsigned segs = len > dl.mss + 100 ? (len + dl.mss - 1) / dl.mss : 1;
	dl.packets++;
	dl.segments += segs;
	dl.bytes += len;
	if (dl.loss > 0 && uniform() < 1 - pow(1 - dl.loss, segs)) {
		dl.dropped++;
		dl.dropped_segments += segs;
		verdict(id, NF_DROP, false);
		return MNL_CB_OK;
	}
	push(id, now_ns() + dl.delay_ns);
	return MNL_CB_OK;
}

static void config(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)dl.queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	send_msg(nlh);
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, (int)dl.queue);
	/* 64 bytes of headers, no payload: enough for the kernel to report the
	 * packet's full length (NFQA_CAP_LEN), which COPY_META leaves out */
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 64);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
	/* a 150 ms path at 10 Gbit/s holds ~190 MB: room for that in packets */
	mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(1u << 20));
	send_msg(nlh);
}

static void print_stats(FILE *out)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(out,
		"{\"packets\": %llu, \"segments\": %llu, \"bytes\": %llu, \"dropped\": %llu, \"dropped_segments\": %llu, "
		"\"batches\": %llu, \"max_held\": %llu, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f}\n",
		(unsigned long long)dl.packets, (unsigned long long)dl.segments, (unsigned long long)dl.bytes,
		(unsigned long long)dl.dropped, (unsigned long long)dl.dropped_segments,
		(unsigned long long)dl.batches, (unsigned long long)dl.max_held,
		ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	fflush(out);
}

static void usage(FILE *out)
{
	fputs("usage: delayline --queue N --delay MS [--loss FRACTION] [--mtu BYTES] [--seed S] [--stats-file F]\n"
	      "Holds packets of NFQUEUE N for MS milliseconds (one way) and drops a FRACTION of them.\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"queue", required_argument, NULL, 'q'}, {"delay", required_argument, NULL, 'd'},
		{"loss", required_argument, NULL, 'l'},  {"mtu", required_argument, NULL, 'm'},
		{"seed", required_argument, NULL, 's'},  {"stats-file", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},        {0},
	};
	double delay_ms = -1;
	unsigned mtu = 1500;
	dl.rng = 0x9E3779B97F4A7C15ull;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "q:d:l:m:s:f:h", opts, NULL)) != -1) {
		errno = 0;
		switch (c) {
		case 'q': dl.queue = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'd': delay_ms = strtod(optarg, &end); break;
		case 'l': dl.loss = strtod(optarg, &end); break;
		case 'm': mtu = (unsigned)strtoul(optarg, &end, 10); break;
		case 's': dl.rng = strtoull(optarg, &end, 10) | 1; break;
		case 'f': dl.stats_file = optarg; end = optarg + strlen(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (errno || *end) {
			fprintf(stderr, "delayline: bad value '%s' for -%c\n", optarg, c);
			return 2;
		}
	}
	if (delay_ms < 0 || delay_ms > 10000 || dl.loss < 0 || dl.loss >= 1 || mtu < 576 || mtu > 65535) {
		usage(stderr);
		fputs("delayline: --delay 0..10000 ms is required; --loss must be in [0, 1); --mtu 576..65535\n", stderr);
		return 2;
	}
	dl.delay_ns = (uint64_t)(delay_ms * 1e6);
	dl.mss = mtu - 40;

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	if (!(dl.nl = mnl_socket_open(NETLINK_NETFILTER)))
		die("netlink socket");
	if (mnl_socket_bind(dl.nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("netlink bind");
	int fd = mnl_socket_get_fd(dl.nl), one = 1, sz = 64 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
	config();
	fprintf(stderr, "delayline: queue %u, %.3f ms one way, loss %g, mtu %u\n", dl.queue, delay_ms, dl.loss, mtu);

	size_t bufsz = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
	char *buf = malloc(bufsz);
	if (!buf)
		die("malloc");
	sigset_t none;
	sigemptyset(&none);
	uint64_t last_release = 0;
	while (!stop) {
		if (report) {
			report = 0;
			print_stats(stderr);
		}
		/* Release at most every BATCH_NS: fewer, larger batch verdicts, for at
		 * most 50 us of extra delay. */
		uint64_t now = now_ns();
		if (now - last_release >= BATCH_NS) {
			release(now, false);
			last_release = now;
		}
		struct timespec ts, *tp = NULL;
		if (dl.len) {
			uint64_t due = dl.ring[dl.head].due_ns;
			if (due < last_release + BATCH_NS)
				due = last_release + BATCH_NS;
			uint64_t wait = due > now ? due - now : 0;
			ts = (struct timespec){.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
			tp = &ts;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = ppoll(&p, 1, tp, &none);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (!r)
			continue;
		/* drain what is queued, but come back to release due packets */
		for (int k = 0; k < 256; k++) {
			ssize_t n = recv(fd, buf, bufsz, MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				if (errno == ENOBUFS)
					continue;
				die("netlink recv");
			}
			if (mnl_cb_run(buf, (size_t)n, 0, 0, on_packet, NULL) < 0 && errno != EINTR)
				die("netlink message");
		}
	}
	release(0, true);
	print_stats(stderr);
	if (dl.stats_file) {
		FILE *f = fopen(dl.stats_file, "w");
		if (f) {
			print_stats(f);
			fclose(f);
		}
	}
	mnl_socket_close(dl.nl);
	free(buf);
	free(dl.ring);
	return 0;
}
