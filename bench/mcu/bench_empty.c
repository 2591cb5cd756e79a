/* bench_empty.c: bench/mcu's baseline: picolibc's start-up, stdio and semihosting alone,
 * subtracted from the other programs' sizes. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	FILE *f = fopen("env.json", "rb");
	printf("empty %d\n", f != NULL);
	if (f != NULL) {
		fclose(f);
	}
	exit(0);
}
