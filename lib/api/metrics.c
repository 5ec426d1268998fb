/* GET /metrics: the site's counters in Prometheus' text format (0.0.4):
 * transfer sessions and bytes, durable transfers by state and the
 * throughput of each running one, jobs by state. */
#include <stdio.h>

#include "api-internal.h"

static void counter(FILE *f, const char *name, const char *help, unsigned long long v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, v);
}

static void transfers(FILE *f, struct jb_transfers *t)
{
	unsigned tc[JB_XFER_NSTATES];
	uint64_t moving;
	jb_transfers_counts(t, tc, &moving);
	fprintf(f, "# HELP jumbo_transfers Durable transfers by state.\n# TYPE jumbo_transfers gauge\n");
	for (int i = 0; i < JB_XFER_NSTATES; i++)
		fprintf(f, "jumbo_transfers{state=\"%s\"} %u\n", jb_transfer_state_name((enum jb_transfer_state)i), tc[i]);
	fprintf(f, "# HELP jumbo_transfer_bytes_in_flight Bytes the running durable transfers have moved.\n"
		   "# TYPE jumbo_transfer_bytes_in_flight gauge\njumbo_transfer_bytes_in_flight %llu\n",
		(unsigned long long)moving);
	/* each running transfer's throughput, and the retries of all */
	struct jb_transfer *v = NULL;
	size_t n = 0;
	unsigned long long retries = 0;
	jb_transfers_list(t, &v, &n, NULL); /* none listed when the database fails */
	fprintf(f, "# HELP jumbo_transfer_gbps Throughput of each running durable transfer.\n"
		   "# TYPE jumbo_transfer_gbps gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct jb_transfer *x = &v[i];
		retries += x->attempts > 1 ? (unsigned long long)(x->attempts - 1) : 0;
		if (x->active && x->done_seconds > 0)
			fprintf(f, "jumbo_transfer_gbps{id=\"%s\",peer=\"%s\"} %.4f\n", x->id, x->peer ? x->peer : "",
				(double)x->done_bytes * 8 / x->done_seconds / 1e9);
	}
	jb_transfer_list_free(v, n);
	counter(f, "jumbo_transfer_retries_total", "Attempts of durable transfers after their first.", retries);
}

/* Connections closed before they had shown what they are: the transfer
 * port's by reason, the API's (no request in time, pushed out) */
static void closed(FILE *f, const struct jb_server_stats *st, const struct api_guard *g)
{
	fprintf(f, "# HELP jumbo_handshakes Connections to the transfer port in their handshake now.\n"
		   "# TYPE jumbo_handshakes gauge\njumbo_handshakes %llu\n",
		(unsigned long long)st->handshakes);
	fprintf(f, "# HELP jumbo_connections_closed_total Connections to the transfer port closed before their "
		   "HELLO or JOIN, by reason.\n# TYPE jumbo_connections_closed_total counter\n");
	for (int i = 0; i < JB_CLOSED_NREASONS; i++)
		fprintf(f, "jumbo_connections_closed_total{reason=\"%s\"} %llu\n",
			jb_closed_reason_name((enum jb_closed_reason)i), (unsigned long long)st->closed[i]);
	uint64_t late, pushed;
	api_guard_stats(g, &late, &pushed);
	fprintf(f, "# HELP jumbo_api_connections_closed_total API connections closed before their request was whole, "
		   "by reason.\n# TYPE jumbo_api_connections_closed_total counter\n"
		   "jumbo_api_connections_closed_total{reason=\"request_timeout\"} %llu\n"
		   "jumbo_api_connections_closed_total{reason=\"pushed_out\"} %llu\n",
		(unsigned long long)late, (unsigned long long)pushed);
}

char *api_metrics(struct jb_server *srv, const struct api_guard *g, struct jb_transfers *t, struct jb_jobs *j)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	if (!f)
		return NULL;
	struct jb_server_stats st;
	jb_server_stats(srv, &st);
	counter(f, "jumbo_sessions_total", "Transfer sessions run.", st.sessions);
	counter(f, "jumbo_refused_total", "Connections refused (unknown peers).", st.refused);
	counter(f, "jumbo_bytes_received_total", "Verified payload bytes received.", st.bytes_in);
	counter(f, "jumbo_bytes_sent_total", "Payload bytes sent.", st.bytes_out);
	fprintf(f, "# HELP jumbo_streams_active Data streams of the sessions running now.\n"
		   "# TYPE jumbo_streams_active gauge\njumbo_streams_active %llu\n",
		(unsigned long long)st.streams_active);
	counter(f, "jumbo_blocks_resent_total", "Blocks that failed their digest and were sent again.", st.blocks_bad);
	counter(f, "jumbo_partials_expired_total", "Stale partial files removed (max_partial_age).", st.expired_partials);
	counter(f, "jumbo_journal_records_expired_total", "Journal records dropped (max_partial_age, max_journal_age).",
		st.expired_records);
	fprintf(f, "# HELP jumbo_relay_transfers Transfers passing through this relay now.\n"
		   "# TYPE jumbo_relay_transfers gauge\njumbo_relay_transfers %llu\n"
		   "# HELP jumbo_relay_staged_bytes Bytes those transfers hold in staging now.\n"
		   "# TYPE jumbo_relay_staged_bytes gauge\njumbo_relay_staged_bytes %llu\n",
		(unsigned long long)st.relay_active, (unsigned long long)st.relay_staged);
	counter(f, "jumbo_relay_transfers_total", "Transfers relayed through this site.", st.relay_total);
	counter(f, "jumbo_relay_bytes_forwarded_total", "Payload bytes relayed on to next hops.", st.relay_forwarded);
	counter(f, "jumbo_relay_retries_total", "Attempts at a next hop after a relayed transfer's first.", st.relay_retries);
	counter(f, "jumbo_receipts_signed_total", "Custody receipts this site signed (as a relay or a destination).",
		st.receipts_signed);
	closed(f, &st, g);
	if (t)
		transfers(f, t);
	if (j) {
		unsigned counts[JB_JOB_NSTATES];
		jb_jobs_counts(j, counts);
		fprintf(f, "# HELP jumbo_jobs Jobs by state.\n# TYPE jumbo_jobs gauge\n");
		for (int i = 0; i < JB_JOB_NSTATES; i++)
			fprintf(f, "jumbo_jobs{state=\"%s\"} %u\n", jb_job_state_name((enum jb_job_state)i), counts[i]);
	}
	if (fclose(f) != 0) {
		free(body);
		return NULL;
	}
	return body;
}
