/* A one-line progress bar on a terminal: bytes, percentage, rate, ETA. */
#include <string.h>
#include <unistd.h>

#include "jumbo.h"

void progress_draw(const struct jb_progress *p, void *ud)
{
	struct progress_bar *b = ud;
	if (!b->enabled)
		return;
	char done[32], total[32], eta[32] = "--:--";
	jb_format_bytes(p->bytes_done, done, sizeof done);
	jb_format_bytes(p->bytes_total, total, sizeof total);
	double rate = p->seconds > 0 ? p->bytes_done * 8.0 / p->seconds : 0;
	double pct = p->bytes_total ? 100.0 * p->bytes_done / p->bytes_total : 100;
	if (rate > 0 && p->bytes_total >= p->bytes_done) {
		double left = (p->bytes_total - p->bytes_done) * 8.0 / rate;
		snprintf(eta, sizeof eta, "%d:%02d", (int)left / 60, (int)left % 60);
	}
	int width = 24, fill = (int)(pct / 100 * width);
	char bar[32];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\r%-20.20s [%s] %5.1f%% %s/%s %7.2f Gbit/s ETA %s  files %llu/%llu%s\033[K", b->label, bar, pct,
		done, total, rate / 1e9, p->files_known ? eta : "--:--", (unsigned long long)p->files_done,
		(unsigned long long)p->files_total, p->files_known ? "" : "+");
	fflush(stderr);
}

void progress_finish(struct progress_bar *b)
{
	if (b->enabled)
		fputs("\r\033[K", stderr);
}
