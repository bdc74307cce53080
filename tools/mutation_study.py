"""A small mutation study: does the test suite notice a realistic one-point bug?

For each chosen function of a module, every node of these kinds is a candidate mutant:
comparison flipped at its boundary or negated (``>=``→``>``, ``<``→``<=``, ``==``→``!=``,
``in``→``not in``, ``is``→``is not``), ``and``↔``or``, a ``not`` dropped, an integer
constant plus one, ``+``↔``-``, a ``raise`` replaced by ``pass``, a ``return X`` by
``return None``. Up to ``--max`` of them (a seeded sample when there are more) are applied
one at a time to the source file (as ``ast.unparse`` writes it), the given tests run
(``-x``: the first failure kills the mutant), and the file is restored afterwards, also on
Ctrl+C. A mutant is *killed* when the tests fail or time out, *survives* when they pass.

    python tools/mutation_study.py src/steplab/optim/checkpoint.py \\
        --functions _read _refuse_overlaps _read_array _check_state _check_values \\
        --tests "tests/optim/test_checkpoint.py -k 'not torch'" --max 30

Prints one line per mutant (where, what, killed or survived) and the score. Bounded: at
most ``--max`` test runs of at most ``--timeout`` seconds each.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

FLIP = {
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


def candidates(tree: ast.Module, functions: set[str] | None) -> list[tuple[int, str]]:
    """(index of the node in ast.walk order, description) of every mutable node inside
    the chosen functions."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            functions is None or node.name in functions
        ):
            inside.update(id(child) for child in ast.walk(node))
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) not in inside:
            continue
        what = describe(node)
        if what is not None:
            found.append((index, f"line {node.lineno}: {what}"))
    return found


def describe(node: ast.AST) -> str | None:
    if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIP:
        return f"{type(node.ops[0]).__name__} -> {FLIP[type(node.ops[0])].__name__}"
    if isinstance(node, ast.BoolOp):
        return "and -> or" if isinstance(node.op, ast.And) else "or -> and"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return "not dropped"
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        return f"{node.value} -> {node.value + 1}"
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return "+ -> -" if isinstance(node.op, ast.Add) else "- -> +"
    if isinstance(node, ast.Raise):
        return "raise -> pass"
    if isinstance(node, ast.Return) and node.value is not None:
        return "return X -> return None"
    return None


class _Mutate(ast.NodeTransformer):
    def __init__(self, target: int, order: dict[int, int]):
        self.target, self.order = target, order

    def visit(self, node: ast.AST) -> ast.AST:
        if self.order.get(id(node)) != self.target:
            return self.generic_visit(node)
        if isinstance(node, ast.Compare):
            node.ops = [FLIP[type(node.ops[0])](), *node.ops[1:]]
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value = node.value + 1
        elif isinstance(node, ast.BinOp):
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        elif isinstance(node, ast.Raise):
            return ast.copy_location(ast.Pass(), node)
        elif isinstance(node, ast.Return):
            node.value = None
        return node


def mutant_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    order = {id(node): i for i, node in enumerate(ast.walk(tree))}
    mutated = _Mutate(index, order).visit(tree)
    return ast.unparse(ast.fix_missing_locations(mutated))


def run_tests(tests: list[str], timeout: float) -> bool:
    """Whether the tests pass."""
    env = {**os.environ, "PYTHONPATH": str(Path("src").resolve())}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(command, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("--functions", nargs="+", help="only these functions (default: all)")
    parser.add_argument(
        "--tests", required=True, help='pytest arguments, one string: "tests/x.py -k name"'
    )
    parser.add_argument("--max", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)

    # kill (SIGTERM) must restore the module too: as SystemExit, it runs the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    original = args.module.read_text()
    found = candidates(ast.parse(original), set(args.functions) if args.functions else None)
    chosen = found
    if len(found) > args.max:
        chosen = sorted(random.Random(args.seed).sample(found, args.max))
    print(f"{args.module}: {len(found)} candidate mutants, testing {len(chosen)}")
    tests = shlex.split(args.tests)
    if not run_tests(tests, args.timeout):
        print("the tests fail without any mutation: fix them first")
        return 2
    killed, survivors = 0, []
    try:
        for index, what in chosen:
            args.module.write_text(mutant_source(original, index))
            started = time.perf_counter()
            passed = run_tests(tests, args.timeout)
            verdict = "SURVIVED" if passed else "killed"
            print(f"  {what:<40} {verdict} ({time.perf_counter() - started:.0f} s)", flush=True)
            if passed:
                survivors.append(what)
            else:
                killed += 1
    finally:
        args.module.write_text(original)
    total = len(chosen)
    print(f"{args.module}: {killed} of {total} killed ({killed / max(total, 1):.0%})")
    for what in survivors:
        print(f"  survivor: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
