#!/usr/bin/env python3
"""banned.py: fails when C code in the tree calls a function the project bans (STYLE:
strcpy, strcat, sprintf, vsprintf, gets, atoi, atol, strtok — unbounded or unchecked).
Comments and string literals are blanked first, so a comment may name them; a call in code
may not. Usage: banned.py ROOT; prints one line per call, exits 1 when there is any."""
import os
import re
import sys

BANNED = re.compile(r"\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)\s*\(")
TOKENS = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def blank(m):
    # Keep newlines so line numbers stay right.
    return re.sub(r"[^\n]", " ", m.group(0))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    hits = 0
    files = 0
    for top in ("src", "include", "tests", "bench"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in sorted(names):
                if not n.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, n)
                files += 1
                with open(path, encoding="utf-8", errors="replace") as f:
                    code = TOKENS.sub(blank, f.read())
                for i, line in enumerate(code.split("\n"), 1):
                    for m in BANNED.finditer(line):
                        print(f"{os.path.relpath(path, root)}:{i}: {m.group(1)}() is banned")
                        hits += 1
    if files == 0:
        print(f"banned.py: no C files under {root}", file=sys.stderr)
        return 2
    print(f"banned: {files} files read, {hits} banned calls")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
