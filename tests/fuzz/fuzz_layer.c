/* libFuzzer target for the layer unpacker: any bytes as an uncompressed
 * layer, unpacked into a fresh directory.  Whatever the tar holds, nothing
 * may appear beside that directory (an escape traps), and the unpacker must
 * not crash, leak or hang.  With replay.c it runs the saved corpus
 * (tests/fuzz/corpus/layer) in every test run. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jumbo/oci.h"


static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char base[] = "/dev/shm/jb-fuzz-layer.XXXXXX";
	if (!mkdtemp(base))
		return 0;
	char root[64];
	snprintf(root, sizeof root, "%s/root", base);
	int fd = memfd_create("layer", MFD_CLOEXEC);
	int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && bfd >= 0 && write(fd, data, size) == (ssize_t)size && mkdir(root, 0755) == 0) {
		lseek(fd, 0, SEEK_SET);
		int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct jb_error e;
		char diff[JB_OCI_DIGEST_MAX];
		jb_oci_layer_unpack(fd, JB_OCI_TAR, dfd, diff, &(uint64_t){1ull << 30}, &e);
		close(dfd);
		if (count_entries(base) != 1)
			__builtin_trap(); /* something was written beside the layer root */
		jb_remove_tree(bfd, "root");
	}
	if (fd >= 0)
		close(fd);
	if (bfd >= 0)
		close(bfd);
	rmdir(base);
	return 0;
}
