"""Score per module of the last ``mutmut run``: killed / (killed + survived)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter, defaultdict


def main() -> None:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in out.splitlines():
        match = re.match(r"\s*(\S+)__mutmut_\d+: (.+)", line)
        if not match:
            continue
        name, status = match.groups()
        module = re.split(r"\.x_|\.x\u01c1", name)[0]
        counts[module][status.strip()] += 1
    total: Counter = Counter()
    print(f"{'module':<40} {'mutants':>7} {'killed':>7} {'survived':>8} {'score':>6}")
    for module in sorted(counts):
        c = counts[module]
        total.update(c)
        _row(module, c)
    _row("all", total)


def _row(name: str, c: Counter) -> None:
    killed = c["killed"] + c["timeout"]
    judged = killed + c["survived"]
    score = killed / judged if judged else float("nan")
    print(f"{name:<40} {sum(c.values()):>7} {killed:>7} {c['survived']:>8} {score:>6.1%}")
    others = {k: v for k, v in c.items() if k not in ("killed", "timeout", "survived")}
    if others:
        print(f"{'':<40} other: {dict(others)}")


if __name__ == "__main__":
    main()
