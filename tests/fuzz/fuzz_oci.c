/* libFuzzer target for the OCI document decoders (manifests, indexes,
 * configs: what registries and image archives hand us).  Built with clang
 * -fsanitize=fuzzer when -Dfuzz=true; with replay.c it runs the saved corpus
 * (tests/fuzz/corpus/oci) in every test run. */
#include <stddef.h>
#include <stdint.h>

#include "jumbo/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jb_oci_manifest m;
	struct jb_error e;
	if (jb_oci_manifest_parse((const char *)data, size, NULL, &m, &e) == 0) {
		for (size_t i = 0; i < m.nlayers; i++)
			if (jb_oci_digest_check(m.layers[i].digest) < 0)
				__builtin_trap(); /* the parser checked every digest */
		jb_oci_index_find(&m, "linux", "amd64", NULL);
		jb_oci_manifest_free(&m);
	}
	struct jb_oci_config c;
	if (jb_oci_config_parse((const char *)data, size, &c, &e) == 0) {
		for (size_t i = 0; i < c.ndiff_ids; i++)
			if (jb_oci_digest_check(c.diff_ids[i]) < 0)
				__builtin_trap();
		jb_oci_config_free(&c);
	}
	return 0;
}
