/* replay_main.c: runs a libFuzzer harness over every file of a corpus directory, so the
 * committed corpora are replayed in every build (normal and ASan/UBSan) without libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the harness on the file's bytes (at most 1 MiB) in a buffer of exactly that size, so
 * ASan sees reads past the end; sized from stat, not a 1 MiB buffer per file, which made
 * the replay of a few thousand files spend most of its time in mmap under ASan. */
static int run_file(const char *path, off_t size)
{
	size_t want = size > (1 << 20) ? (size_t)1 << 20 : (size_t)size;
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	uint8_t *exact = malloc(want ? want : 1);
	if (!exact) {
		fclose(f);
		return -1;
	}
	size_t n = fread(exact, 1, want, f);
	fclose(f);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	size_t count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.') {
			continue;
		}
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name) >=
		    (int)sizeof(path)) {
			continue;
		}
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			continue;
		}
		if (run_file(path, st.st_size) != 0) {
			closedir(d);
			return 1;
		}
		count++;
	}
	closedir(d);
	if (count == 0) {
		fprintf(stderr, "%s: empty corpus\n", argv[1]);
		return 1;
	}
	printf("replayed %zu inputs from %s\n", count, argv[1]);
	return 0;
}
