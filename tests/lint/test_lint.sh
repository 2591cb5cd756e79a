#!/usr/bin/env bash
# test_lint.sh: the two source checks of `make check` can fail. banned.py must flag a banned
# call in code but not one named in a comment or a string; format.sh must flag a file that
# .clang-format would change. Run on throwaway trees, never on the repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d /tmp/moat-lint.XXXXXX)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/src"
cat >"$t/src/a.c" <<'C'
/* strcpy(dst, src) is named in a comment */
static const char *s = "sprintf(buf, x)";
void f(char *d, const char *x)
{
	strcpy(d, x);
}
C
set +e
out=$(python3 "$here/banned.py" "$t")
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: banned.py exit $rc on a banned call: $out"; exit 1; }
[ "$(grep -c 'is banned' <<<"$out")" = 1 ] || { echo "FAIL: expected one hit: $out"; exit 1; }
grep -q 'src/a.c:5: strcpy() is banned' <<<"$out" || { echo "FAIL: wrong hit: $out"; exit 1; }
echo "ok - banned.py flags a call, not a comment or a string"

cp "$here/../../.clang-format" "$t/.clang-format"
printf 'int g(int a){return a+1;}\n' >"$t/src/b.c"
rm "$t/src/a.c"
set +e
out=$("$here/format.sh" "$t")
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: format.sh exit $rc on an unformatted file: $out"; exit 1; }
clang-format -i "$t/src/b.c"
"$here/format.sh" "$t" >/dev/null || { echo "FAIL: format.sh refuses a formatted file"; exit 1; }
echo "ok - format.sh flags an unformatted file and passes it once formatted"
