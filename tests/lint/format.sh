#!/usr/bin/env bash
# format.sh: every C file the repository tracks is laid out as .clang-format says. Prints
# clang-format's findings (file:line) and fails when there is any; `make format` fixes them.
set -uo pipefail
root=${1:?usage: format.sh SOURCE_DIR}
cd "$root" || exit 2
command -v clang-format >/dev/null || { echo "format.sh: clang-format not installed (scripts/bootstrap installs it)" >&2; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files '*.c' '*.h')
else
	mapfile -t files < <(find . -path ./build\* -prune -o -name '*.[ch]' -print | sort)
fi
[ ${#files[@]} -gt 0 ] || { echo "format.sh: no C files found in $root" >&2; exit 1; }
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1)
rc=$?
n=$(grep -c 'error:' <<<"$out" || true)
if [ $rc -ne 0 ]; then
	grep 'error:' <<<"$out" | head -40
	echo "format: ${#files[@]} files, $n lines differ from .clang-format (run: make format)"
	exit 1
fi
echo "format: ${#files[@]} files, all formatted"
