"""Score per module of the last ``mutmut run``: killed / (killed + survived).

Survivors are also split in two: those that change only the text of a string (a message, a
help line, a name shown to people: "text") and the others ("logic"). The second score leaves
the text-only survivors out. ``--list`` prints the logic survivors, one per line.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

MUTANTS = Path("mutants/src")


def _without_text(node: ast.AST) -> str:
    """The AST of a function with every string constant emptied (and its name dropped)."""
    node = ast.parse(ast.unparse(node))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            sub.value = ""
        if isinstance(sub, ast.FunctionDef):
            sub.name = ""
    return ast.dump(node)


def _text_only(module: str) -> set[str]:
    """Names of the mutants of ``module`` that differ from the original only in string text."""
    path = MUTANTS / Path(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
            functions[node.name] = node
    found = set()
    for name, node in functions.items():
        base, _, which = name.rpartition("__mutmut_")
        original = functions.get(f"{base}__mutmut_orig")
        if which != "orig" and original is not None:
            if _without_text(node) == _without_text(original):
                found.add(f"{module}.{name}")
    return found


def main() -> None:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in out.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (.+)", line)
        if not match:
            continue
        name, status = match.group(1), match.group(2).strip()
        module = re.split(r"\.x_|\.x\u01c1", name)[0]
        counts[module][status] += 1
        if status == "survived":
            survivors[module].append(name)
    total: Counter = Counter()
    logic: list[str] = []
    print(
        f"{'module':<32} {'mutants':>7} {'killed':>6} {'surv.':>5} {'text':>5} "
        f"{'score':>6} {'logic':>6}"
    )
    for module in sorted(counts):
        c = counts[module]
        text = _text_only(module) & set(survivors[module])
        c["text"] = len(text)
        logic += sorted(set(survivors[module]) - text)
        total.update(c)
        _row(module, c)
    _row("all", total)
    if "--list" in sys.argv:
        print("\n".join(logic))


def _row(name: str, c: Counter) -> None:
    killed = c["killed"] + c["timeout"]
    judged = killed + c["survived"]
    score = killed / judged if judged else float("nan")
    logic = killed / (judged - c["text"]) if judged - c["text"] else float("nan")
    print(
        f"{name:<32} {sum(v for k, v in c.items() if k != 'text'):>7} {killed:>6} "
        f"{c['survived']:>5} {c['text']:>5} {score:>6.1%} {logic:>6.1%}"
    )
    others = {k: v for k, v in c.items() if k not in ("killed", "timeout", "survived", "text")}
    if others:
        print(f"{'':<32} not judged: {dict(others)}")


if __name__ == "__main__":
    main()
