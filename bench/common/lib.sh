# bench/common/lib.sh: shell helpers the bench/<name>/run scripts share (sourced, not run).
# The caller defines die MESSAGE (prints and exits non-zero) before sourcing this.

# bench_find_moat SRC: sets $moat to the absolute path of the moat binary: $MOAT, else
# $MOAT_BUILD/moat, else SRC/build/moat; dies unless it exists with moat_broker.so next to it.
bench_find_moat() {
	local src=$1 cand
	moat=${MOAT:-}
	if [ -z "$moat" ]; then
		for cand in "${MOAT_BUILD:-}/moat" "$src/build/moat"; do
			[ -x "$cand" ] && moat=$cand && break
		done
	fi
	[ -n "$moat" ] && [ -x "$moat" ] || die "no moat binary (set MOAT)"
	moat=$(cd "$(dirname "$moat")" && pwd)/$(basename "$moat")
	[ -f "$(dirname "$moat")/moat_broker.so" ] || die "no moat_broker.so next to $moat"
}
