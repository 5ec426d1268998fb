/* A job's network of its own, joined to the host by a veth pair. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs-internal.h"

/* ---- a network of its own, joined to the host (veth) ----
 * The namespace /var/run/netns/jb-ID holds one end of a veth pair, eth0,
 * with 10.213.X.Y+2/30; the host's end, jbID, has +1.  No NAT and no
 * forwarding are set up: the host (a notebook's proxy) reaches the job,
 * the job reaches the host's address on the pair and the site's address
 * for jobs (JB_SITE_ADDRESS, on the host's loopback: where a notebook finds
 * the JupyterHub API), and nothing beyond; the host forwards nothing that
 * comes in on the pair, even with forwarding on elsewhere. */

#define VETH_POOL 0x0ad50000u /* 10.213.0.0/16 */
#define VETH_LOCK "/run/jumbo-veth.lock"

static int run_ip(const char *const *argv)
{
	pid_t p = fork();
	if (p == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The host's firewall for jobs' networks (iptables, nf_tables or legacy):
 * what comes in on a pair (jb+) is accepted when it answers the host (the
 * proxy's connections to a notebook) or goes to the site address for jobs
 * on one of [site] job_ports; anything else is refused (a TCP reset, else
 * dropped), so a job reaches no other service of the host, even one bound
 * to 0.0.0.0.  Made again before each pair (another program may have
 * flushed it); under VETH_LOCK. */
#define FW_CHAIN "JUMBO-JOBS"
static int net_firewall(const struct jb_jobs *j, struct jb_error *err)
{
	char ports[16 * 6 + 1] = "";
	size_t o = 0;
	for (int i = 0; i < j->c->njob_ports; i++)
		o += (size_t)snprintf(ports + o, sizeof ports - o, "%s%u", i ? "," : "", j->c->job_ports[i]);
	const char *const mk[] = {"iptables", "-w", "-N", FW_CHAIN, NULL};
	run_ip(mk); /* there already: fine */
	const char *const steps[][16] = {
		{"iptables", "-w", "-F", FW_CHAIN, NULL},
		{"iptables", "-w", "-A", FW_CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT", NULL},
		{"iptables", "-w", "-A", FW_CHAIN, "-d", JB_SITE_ADDRESS "/32", "-p", "tcp", "-m", "multiport", "--dports",
		 ports, "-j", "ACCEPT", NULL},
		{"iptables", "-w", "-A", FW_CHAIN, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset", NULL},
		{"iptables", "-w", "-A", FW_CHAIN, "-j", "DROP", NULL},
	};
	for (size_t i = 0; i < JB_ARRAY_SIZE(steps); i++) {
		if (i == 2 && !ports[0])
			continue;
		if (run_ip(steps[i]) < 0)
			return jb_err(err, EIO, "the job's network: 'iptables %s %s' failed (is iptables installed?)",
				      steps[i][2], FW_CHAIN);
	}
	const char *const check[] = {"iptables", "-w", "-C", "INPUT", "-i", "jb+", "-j", FW_CHAIN, NULL};
	const char *const jump[] = {"iptables", "-w", "-I", "INPUT", "1", "-i", "jb+", "-j", FW_CHAIN, NULL};
	if (run_ip(check) < 0 && run_ip(jump) < 0)
		return jb_err(err, EIO, "the job's network: 'iptables -I INPUT -i jb+ -j %s' failed", FW_CHAIN);
	return 0;
}

void jobs_net_teardown(const char *id)
{
	char ns[32];
	snprintf(ns, sizeof ns, "jb-%s", id);
	const char *del[] = {"ip", "netns", "delete", ns, NULL};
	run_ip(del); /* the veth pair goes with it */
}

int jobs_net_setup(struct jb_jobs *j, const char *id, struct jb_job_spec *sp, struct jb_error *err)
{
	/* the lowest /30 that no job of this site and no interface of the host
	 * has (another jumbod on the host allocates from the same pool), chosen
	 * and set up under a host-wide lock */
	bool used[16384] = {false};
	sqlite3_stmt *st;
	int lk = open(VETH_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lk < 0 || flock(lk, LOCK_EX) < 0) {
		int e = errno;
		if (lk >= 0)
			close(lk);
		return jb_err(err, e, "the job's network: %s: %s", VETH_LOCK, strerror(e));
	}
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT address FROM job WHERE state IN (0, 1) AND address IS NOT NULL", -1, &st,
			       NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			unsigned a, b, c, d;
			if (sscanf((const char *)sqlite3_column_text(st, 0), "%u.%u.%u.%u", &a, &b, &c, &d) == 4)
				used[((c << 8) | d) / 4 % 16384] = true;
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	struct ifaddrs *ifs = NULL;
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
				uint32_t a = ntohl(((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr);
				if ((a & 0xffff0000u) == VETH_POOL)
					used[(a & 0xffffu) / 4] = true;
			}
		freeifaddrs(ifs);
	}
	int fr = net_firewall(j, err);
	if (fr < 0) {
		close(lk);
		return fr;
	}
	unsigned idx = 1;
	while (idx < 16384 && used[idx])
		idx++;
	if (idx >= 16384) {
		close(lk);
		return jb_err(err, EADDRNOTAVAIL, "no address left for a job's network");
	}
	uint32_t base = VETH_POOL + idx * 4;
	char host[24], addr[24], ns[32], hostdev[20], cidr[32], hcidr[32], fwd[96];
	snprintf(host, sizeof host, "10.213.%u.%u", (base >> 8) & 255, (base + 1) & 255);
	snprintf(addr, sizeof addr, "10.213.%u.%u", (base >> 8) & 255, (base + 2) & 255);
	snprintf(cidr, sizeof cidr, "%s/30", addr);
	snprintf(hcidr, sizeof hcidr, "%s/30", host);
	pthread_mutex_lock(&j->lock);
	int r = sched_exec(j->db, err, "UPDATE job SET address=? WHERE id=?", "ss", addr, id);
	pthread_mutex_unlock(&j->lock);
	if (r < 0) { /* a notebook nobody can find: the job fails, saying why */
		close(lk);
		return r;
	}
	snprintf(ns, sizeof ns, "jb-%s", id);
	snprintf(hostdev, sizeof hostdev, "jb%s", id);
	const char *const steps[][12] = {
		{"ip", "addr", "replace", JB_SITE_ADDRESS "/32", "dev", "lo", NULL},
		{"ip", "netns", "add", ns, NULL},
		{"ip", "link", "add", hostdev, "type", "veth", "peer", "name", "eth0", "netns", ns, NULL},
		{"ip", "addr", "add", hcidr, "dev", hostdev, NULL},
		{"ip", "link", "set", hostdev, "up", NULL},
		{"ip", "-n", ns, "addr", "add", cidr, "dev", "eth0", NULL},
		{"ip", "-n", ns, "link", "set", "eth0", "up", NULL},
		{"ip", "-n", ns, "link", "set", "lo", "up", NULL},
		{"ip", "-n", ns, "route", "add", JB_SITE_ADDRESS "/32", "via", host, NULL},
	};
	for (size_t i = 0; i < JB_ARRAY_SIZE(steps); i++)
		if (run_ip(steps[i]) < 0) {
			jobs_net_teardown(id);
			close(lk);
			return jb_err(err, EIO, "the job's network: 'ip %s %s %s' failed (is iproute2 installed?)", steps[i][1],
				      steps[i][2], steps[i][3]);
		}
	/* nothing from the job goes beyond the host, and the pair has no IPv6
	 * (a link-local address would reach the host's services on [::]) */
	static const char *const knobs[][3] = {{"ipv4", "forwarding", "0"}, {"ipv6", "disable_ipv6", "1"}};
	for (size_t i = 0; i < JB_ARRAY_SIZE(knobs); i++) {
		char rel[80];
		snprintf(rel, sizeof rel, "%s/conf/%s/%s", knobs[i][0], hostdev, knobs[i][1]);
		snprintf(fwd, sizeof fwd, "/proc/sys/net/%s", rel);
		int ff = open(fwd, O_WRONLY | O_CLOEXEC);
		bool done = ff >= 0 && write(ff, knobs[i][2], 1) == 1;
		int e = errno;
		if (ff >= 0)
			close(ff);
		if (!done && !(i == 1 && e == ENOENT)) { /* a kernel without IPv6 has no knob */
			jobs_net_teardown(id);
			close(lk);
			return jb_err(err, EIO, "the job's network: cannot set %s on the host's end", rel);
		}
	}
	close(lk); /* the host's end has its address: the next allocation sees it */
	snprintf(sp->netns, sizeof sp->netns, "/var/run/netns/%s", ns);
	snprintf(sp->address, sizeof sp->address, "%s", addr);
	jb_log(JB_LOG_INFO, "job %s: its network: %s, the host at %s", id, addr, host);
	return 0;
}

