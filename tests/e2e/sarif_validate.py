#!/usr/bin/env python3
"""sarif_validate.py FILE...: validates each SARIF document against the vendored SARIF 2.1.0
JSON schema (tests/schema/sarif-schema-2.1.0.json, draft-04) with python3-jsonschema. Prints
every violation (its JSON path and message) and exits 1 when there is one; exits 2 when the
schema or jsonschema is missing. Before trusting itself it checks that the schema rejects a
document known to be invalid (a result without its message), so it cannot pass vacuously."""
import json
import os
import sys

try:
    from jsonschema import Draft4Validator
except ImportError:
    print("sarif_validate: python3-jsonschema not installed (scripts/bootstrap installs it)", file=sys.stderr)
    sys.exit(2)

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema", "sarif-schema-2.1.0.json")


def main(paths):
    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    Draft4Validator.check_schema(schema)
    validator = Draft4Validator(schema)
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "r"}]}]}
    if not list(validator.iter_errors(broken)):
        print("sarif_validate: the schema accepted a result without a message", file=sys.stderr)
        return 2
    bad = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            print(f"{path}: {where}: {e.message}")
            bad += 1
    if bad:
        print(f"sarif_validate: {bad} schema violation(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: sarif_validate.py FILE...", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
