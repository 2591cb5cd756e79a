#!/usr/bin/env bash
# build.sh ARCH OUT SRC: cross-builds moat-device's MCU programs for ARCH (cortex-m3 or
# rv32imc) into OUT: mbedTLS (Debian's source, fetched by scripts/fetch-mbedtls, with
# tests/mcu/mbedtls_config.h; 2.28, or 3.x with MOAT_MBEDTLS_V3=1), the library with its mbedTLS port, mcu_test.elf, and
# bench/mcu's programs. picolibc with semihosting; the memory map of the QEMU board
# (lm3s6965evb: 256 KB flash, 64 KB RAM; virt: the same sizes at its RAM base).
# build.sh --link-flags ARCH: prints the flags it links ARCH's programs with (bench/mcu/run).
set -euo pipefail
link_flags_only=
if [ "${1:-}" = --link-flags ]; then
	link_flags_only=1
	shift
	set -- "$1" "" ""
fi
arch=$1 out=$2 src=$3
case "$arch" in
cortex-m3)
	cc=arm-none-eabi-gcc
	flags=(-mcpu=cortex-m3 -mthumb)
	mem=(-Wl,--defsym=__flash=0 -Wl,--defsym=__flash_size=256K
	     -Wl,--defsym=__ram=0x20000000 -Wl,--defsym=__ram_size=64K) ;;
rv32imc)
	cc=riscv64-unknown-elf-gcc
	# Smaller code, same checks (docs/BENCHMARKS.md): -msave-restore makes prologues and
	# epilogues call libgcc's shared register save/restore routines; -malign-data=natural
	# stops padding strings and tables to 4 bytes.
	flags=(-march=rv32imc -mabi=ilp32 -mcmodel=medany -msave-restore -malign-data=natural)
	mem=(-Wl,--defsym=__flash=0x80000000 -Wl,--defsym=__flash_size=256K
	     -Wl,--defsym=__ram=0x80400000 -Wl,--defsym=__ram_size=64K) ;;
*) echo "build.sh: unknown arch '$arch'" >&2; exit 2 ;;
esac
ldflags=("${mem[@]}" -Wl,--defsym=__stack_size=12K -Wl,--gc-sections)
if [ -n "$link_flags_only" ]; then
	echo --specs=picolibc.specs --oslib=semihost "${flags[@]}" -Os "${ldflags[@]}"
	exit 0
fi
if [ -n "${MOAT_MBEDTLS_V3:-}" ]; then # mbedTLS 3.x, ESP-IDF 5's series (mcu/cortex-m3-mbedtls3)
	mbed=${MOAT_MBEDTLS3_SRC:-$src/.deps/mbedtls3}
	[ -f "$mbed/include/mbedtls/build_info.h" ] || "$src/scripts/fetch-mbedtls" --v3
else
	mbed=${MOAT_MBEDTLS_SRC:-$src/.deps/mbedtls}
	[ -f "$mbed/include/mbedtls/ecdsa.h" ] || "$src/scripts/fetch-mbedtls"
fi
jsmn_inc=$(dirname "$(echo '#include <jsmn.h>' | cpp -H -o /dev/null 2>&1 | sed -n 's/^\. //p' | head -n1)")
[ -f "$jsmn_inc/jsmn.h" ] || { echo "build.sh: jsmn.h (libjsmn-dev) not found" >&2; exit 1; }
command -v ccache >/dev/null && cc="ccache $cc"
mkdir -p "$out/obj"
# jsmn's one header goes into a directory of its own: never the host's whole /usr/include.
mkdir -p "$out/jsmn" && cp "$jsmn_inc/jsmn.h" "$out/jsmn/jsmn.h"
common=(--specs=picolibc.specs --oslib=semihost "${flags[@]}" -Os -g -std=c99
	-ffunction-sections -fdata-sections -Wall -Wextra -Werror
	-DMBEDTLS_CONFIG_FILE='<mbedtls_config.h>' -I"$src/tests/mcu" -I"$mbed/include"
	-I"$src/src/device-core/include" -I"$out/jsmn")
built=()
objs() { # objs NAME FILE...: compiles into $out/obj/NAME-*.o; the objects in built[]
	local name=$1 f o
	shift
	built=()
	for f in "$@"; do
		o="$out/obj/$name-$(basename "$f" .c).o"
		if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ "$src/tests/mcu/mbedtls_config.h" -nt "$o" ] ||
			[ "$src/bench/mcu/bench_common.h" -nt "$o" ] ||
			[ "$src/src/device-core/include/moat_device.h" -nt "$o" ]; then
			$cc "${common[@]}" "${extra[@]}" -c "$f" -o "$o"
		fi
		built+=("$o")
	done
}
extra=(-Wno-unused-parameter)
mbed_files=(asn1parse asn1write base64 bignum ecp ecp_curves ecdsa sha256 platform platform_util
	memory_buffer_alloc constant_time md oid pk pk_wrap pkparse rsa)
if [ -f "$mbed/library/bignum_core.c" ]; then # mbedTLS 3.x (ESP-IDF 5's): the same modules, split
	mbed_files+=(bignum_core ecp_curves_new pk_ecc rsa_alt_helpers)
else
	mbed_files+=(rsa_internal)
fi
mbed_paths=()
for f in "${mbed_files[@]}"; do mbed_paths+=("$mbed/library/$f.c"); done
objs mbedtls "${mbed_paths[@]}"
mbed_objs=("${built[@]}")
ar=${cc##* }; ar=${ar%-gcc}-ar
rm -f "$out/libmbedcrypto.a" "$out/libmdev.a"
$ar rcs "$out/libmbedcrypto.a" "${mbed_objs[@]}"
extra=(-Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wundef)
objs mdev "$src"/src/device-core/{verify,semver,ab,msg,mjson,port_mbedtls}.c
mdev_objs=("${built[@]}")
$ar rcs "$out/libmdev.a" "${mdev_objs[@]}"
extra=()
objs test "$src/tests/mcu/mcu_test.c"
test_objs=("${built[@]}")
$cc "${common[@]}" "${ldflags[@]}" -o "$out/mcu_test.elf" "${test_objs[@]}" "$out/libmdev.a" "$out/libmbedcrypto.a"
for b in "$src"/bench/mcu/bench_*.c; do
	[ -f "$b" ] || continue
	n=$(basename "$b" .c)
	objs bench "$b"
	bobjs=("${built[@]}")
	$cc "${common[@]}" "${ldflags[@]}" -o "$out/$n.elf" "${bobjs[@]}" "$out/libmdev.a" "$out/libmbedcrypto.a"
done
