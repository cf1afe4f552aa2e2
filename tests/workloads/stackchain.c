/*
 * The call-stack workload: main -> mmapcap_outer -> mmapcap_inner -> the C library's mmap
 * wrapper, N times (N from argv[1], default 100), each mapping unmapped again by main.
 *
 * Built twice by the end-to-end test (tests/tests/end_to_end/stacks.rs): with frame pointers
 * (-fno-omit-frame-pointer) and without (-fomit-frame-pointer), both -O2 -g so that the
 * functions are real frames (noinline, and work after each call so that no call is a tail call)
 * and the recorder can name them with file:line. The test deletes the binary after the recording
 * and checks that `mmap-analyze stacks --format folded` still names the whole chain.
 *
 * It sleeps 0.5 s before its calls: the recorder learns where the program and the dynamic
 * loader are mapped (the kernel maps them at exec, not by mmap calls) from the /proc/PID/maps
 * snapshot it takes right after the exec, and a process that is gone before that snapshot
 * leaves frames in those two files without a module (on a busy machine a 200-call run can end
 * within a millisecond). See docs/ANALYZE.md, "From where in the code".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Keeps the compiler from merging, cloning or tail-calling the functions below. */
volatile unsigned long mmapcap_sink;

__attribute__((noinline, noclone)) void *mmapcap_inner(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	mmapcap_sink += (unsigned long)p;
	return p;
}

__attribute__((noinline, noclone)) void *mmapcap_outer(size_t len)
{
	void *p = mmapcap_inner(len * 2);
	mmapcap_sink ^= len;
	return p;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
	usleep(500 * 1000);
	for (long i = 0; i < n; i++) {
		/* 13 pages, doubled by mmapcap_inner: a length the loader never maps. */
		void *p = mmapcap_outer(13 * 4096);
		munmap(p, 26 * 4096);
	}
	printf("%ld\n", n);
	return 0;
}
