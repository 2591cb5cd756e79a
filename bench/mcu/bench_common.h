/* bench_common.h: what bench/mcu's programs share: the 64 KiB image (one 1 KiB block,
 * 64 times: bench/mcu/run makes the same file to sign), an instruction counter (rv32:
 * minstret, exact under QEMU's -icount; Cortex-M3: SysTick under -icount, to within one
 * tick), and stack painting for the peak stack of one call. */
#ifndef MOAT_BENCH_MCU_COMMON_H
#define MOAT_BENCH_MCU_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BENCH_BLOCK 1024
#define BENCH_BLOCKS 64

static inline void bench_block(uint8_t *b)
{
	for (int i = 0; i < BENCH_BLOCK; i++) {
		b[i] = (uint8_t)(i * 31 + 7);
	}
}

static inline uint64_t bench_insns(void)
{
#if defined(__riscv)
	uint32_t lo, hi, again;
	do {
		/* csrr of minstreth (0xb82 = -1150) and minstret (0xb02 = -1278) spelled out: the
		 * toolchain's rv32imc has no Zicsr mnemonics */
		__asm__ volatile(".insn i 0x73, 2, %0, x0, -1150" : "=r"(hi));
		__asm__ volatile(".insn i 0x73, 2, %0, x0, -1278" : "=r"(lo));
		__asm__ volatile(".insn i 0x73, 2, %0, x0, -1150" : "=r"(again));
	} while (hi != again);
	return (uint64_t)hi << 32 | lo;
#elif defined(__ARM_ARCH_7M__)
	/* QEMU's lm3s6965evb has no cycle counter (no DWT). Under -icount shift=0 its virtual
	 * clock advances 1 ns per instruction, and SysTick counts the processor clock in that
	 * virtual time: instructions = ticks x instructions per tick, the ratio measured once
	 * on a loop of known length (subs + bne: 2 instructions an iteration). Resolution:
	 * one tick (80 instructions at the board's 12.5 MHz); calls must come less than 2^24
	 * ticks apart (the 24-bit counter wraps once at most between them). */
	static volatile uint32_t *const csr = (volatile uint32_t *)0xe000e010u;
	static volatile uint32_t *const rvr = (volatile uint32_t *)0xe000e014u;
	static volatile uint32_t *const cvr = (volatile uint32_t *)0xe000e018u;
	static uint64_t ticks;
	static uint32_t last;
	static uint64_t per_tick;
	if (per_tick == 0) {
		*rvr = 0xffffffu;
		*cvr = 0; /* reloads at the next tick */
		*csr = 5; /* enabled, processor clock, no interrupt */
		uint32_t n = 4000000u, t0 = *cvr, t1;
		__asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
		t1 = *cvr;
		uint32_t cal = (t0 - t1) & 0xffffffu;
		per_tick = cal ? (8000000u + cal / 2) / cal : 1;
		last = *cvr;
	}
	uint32_t now = *cvr;
	ticks += (last - now) & 0xffffffu;
	last = now;
	return ticks * per_tick;
#else
	return 0;
#endif
}

#define PAINT_BYTES (10 * 1024)
#define PAINT 0xa5

/* Fills the PAINT_BYTES below the caller's frame; bench_stack_peak says how deep a call
 * after it went. noinline: its own frame must be gone when the measured call runs. */
static __attribute__((noinline)) uintptr_t bench_paint(void)
{
	uintptr_t top = (uintptr_t)__builtin_frame_address(0) - 64;
	volatile uint8_t *p = (volatile uint8_t *)(top - PAINT_BYTES);
	for (size_t i = 0; i < PAINT_BYTES; i++) {
		p[i] = PAINT;
	}
	return top;
}

static inline unsigned bench_stack_peak(uintptr_t top)
{
	volatile const uint8_t *p = (volatile const uint8_t *)(top - PAINT_BYTES);
	size_t i = 0;
	while (i < PAINT_BYTES && p[i] == PAINT) {
		i++;
	}
	return (unsigned)(PAINT_BYTES - i);
}

static inline long bench_read(const char *path, void *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return -1;
	}
	size_t n = fread(buf, 1, size, f);
	fclose(f);
	return n == size ? -1 : (long)n;
}

#endif
