/* libFuzzer target for what jumbo reads from Marathon (GET /v2/apps/ID and
 * error answers: lib/sched/marathon_json.c).  Built with clang
 * -fsanitize=fuzzer when -Dfuzz=true; with replay.c it runs the saved corpus
 * (tests/fuzz/corpus/marathon) in every test run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../lib/sched/marathon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = json_loadb((const char *)data, size, 0, NULL);
	static const long statuses[] = {200, 404, 422};
	for (size_t i = 0; i < 3; i++) {
		struct mj_status st;
		if (mj_parse_app(o, statuses[i], &st) == 0) {
			/* every string is terminated within its field */
			if (strlen(st.host) >= sizeof st.host || strlen(st.address) >= sizeof st.address ||
			    strlen(st.message) >= sizeof st.message || st.port < 0 || st.port > 65535)
				__builtin_trap();
		}
		char m[300];
		mj_error(o, m, sizeof m);
		if (strlen(m) >= sizeof m)
			__builtin_trap();
	}
	json_decref(o);
	return 0;
}
