"""Compare two benchmark JSON files number by number: ``python -m tools.diff_benchmark BEFORE AFTER``.

Keys that record the run rather than the result (dates, timings, thread counts) are ignored. Exits 1
and lists each differing path when any number or key differs; a refactor must print "identical".
"""
from __future__ import annotations

import json
import sys

RUN_KEYS = {"date", "seconds", "threads", "cpu_count"}


def diff(a, b, path="") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'before' if k in a else 'after'}" for k in set(a) ^ set(b)
               if k not in RUN_KEYS]
        for k in sorted(set(a) & set(b)):
            if k not in RUN_KEYS:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b or (a != a and b != b) else [f"{path}: {a!r} != {b!r}"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m tools.diff_benchmark BEFORE.json AFTER.json", file=sys.stderr)
        return 2
    before, after = (json.loads(open(p).read()) for p in argv)
    out = diff(before, after)
    print("identical" if not out else "\n".join(out[:50] + ([f"... {len(out) - 50} more"] if len(out) > 50 else [])))
    return 1 if out else 0


if __name__ == "__main__":
    raise SystemExit(main())
