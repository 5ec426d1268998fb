/* A minimal TAP producer for unit tests. */
#pragma once
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;
#define ok(cond, ...)                                                                \
	do {                                                                         \
		int _c = !!(cond);                                                   \
		printf("%sok %d - ", _c ? "" : "not ", ++tap_n);                      \
		printf(__VA_ARGS__);                                                 \
		printf("\n");                                                        \
		if (!_c) {                                                           \
			tap_failed++;                                                \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                    \
	} while (0)
#define is_int(a, b, ...) do { long long _a = (a), _b = (b); ok(_a == _b, __VA_ARGS__); \
	if (_a != _b) printf("#   got %lld, expected %lld\n", _a, _b); } while (0)
#define is_str(a, b, ...) do { const char *_a = (a), *_b = (b); int _e = _a && _b && !strcmp(_a, _b); \
	ok(_e, __VA_ARGS__); if (!_e) printf("#   got '%s', expected '%s'\n", _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)
#define skip(n, why) do { for (int _i = 0; _i < (n); _i++) printf("ok %d - # SKIP %s\n", ++tap_n, why); } while (0)
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
