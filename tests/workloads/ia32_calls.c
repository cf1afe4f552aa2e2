/* ia32 system calls whose numbers are the x86_64 numbers of the mmap family: 9 link, 10 unlink,
 * 11 execve, 12 chdir and 25 stime there (x86_64: mmap, mprotect, munmap, brk, mremap). Each
 * fails with EFAULT. Built with -m32 it is a 32-bit process; built for x86_64 it makes them with
 * `int $0x80` from a 64-bit process, and then one real mmap through `syscall`, which must be
 * recorded. No libc: `cc -nostdlib -static` builds it for either. */
#define ROUNDS 50

static long ia32_1(long nr, long a)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a) : "memory");
	return r;
}

static long ia32_2(long nr, long a, long b)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b) : "memory");
	return r;
}

void _start(void)
{
	for (int i = 0; i < ROUNDS; i++) {
		ia32_2(9, 1, 1);
		ia32_1(10, 1);
		ia32_2(11, 1, 1);
		ia32_1(12, 1);
		ia32_1(25, 1);
	}
#ifdef __x86_64__
	/* mmap(NULL, 12288, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) */
	register long r10 __asm__("r10") = 0x22;
	register long r8 __asm__("r8") = -1;
	register long r9 __asm__("r9") = 0;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(9L), "D"(0L), "S"(12288L), "d"(1L), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	(void)ret;
	__asm__ volatile("syscall" : : "a"(231L), "D"(0L) : "rcx", "r11", "memory");
#else
	ia32_1(1, 0);
#endif
	for (;;) {
	}
}
