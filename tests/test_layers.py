"""The layering of src/steplab, as README's "Layout" section declares it, holds for every
import in the code (module level and inside functions alike), and no module outside
``steplab.optim`` uses an underscore name of ``optim`` (the protocol is public)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "steplab"


def declared_layers() -> dict[str, int]:
    """name -> rank, from README's numbered list under "## Layout" (lowest first)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    ranks = {}
    for line in section.splitlines():
        match = re.match(r"\s*(\d+)\.\s+(.*)", line)
        if match:
            for name in re.findall(r"`([\w.]+)`", match.group(2).split(":")[0]):
                ranks[name] = int(match.group(1))
    return ranks


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module or name, line) for every import statement of the module, lazy
    ones included, plus ``importlib.import_module("...")`` with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            out.append((base, node.lineno))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.args[0].value, node.lineno))
    return out


def layer_of(dotted: str, known: dict[str, Path]) -> str | None:
    """The layer (``optim``, ``_io``, …) of a steplab module, None for the package root
    (importing ``steplab`` itself, or a name it defines, is importing the root)."""
    parts = dotted.split(".")
    if parts[0] != "steplab" or len(parts) < 2:
        return None
    if ".".join(parts[:2]) not in known:
        return None  # a name defined by the root (``from steplab import sweep``)
    return parts[1]


def test_the_readme_declares_every_part_of_the_package():
    ranks = declared_layers()
    parts = {name.split(".")[1] for name in modules() if name != "steplab"}
    assert parts <= set(ranks), f"README's Layout misses {sorted(parts - set(ranks))}"
    assert set(ranks) <= parts, f"README's Layout names {sorted(set(ranks) - parts)}"


def test_no_layer_imports_a_higher_one():
    ranks = declared_layers()
    known = modules()
    wrong = []
    for name, path in known.items():
        if name == "steplab":
            continue  # the root wires the layers together
        mine = name.split(".")[1]
        for target, line in imports(name, path):
            theirs = layer_of(target, known)
            if theirs is not None and ranks[theirs] > ranks[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert not wrong, "imports against README's Layout:\n" + "\n".join(wrong)


def _private_names_of_optim(known: dict[str, Path]) -> set[str]:
    names = set()
    for name, path in known.items():
        if not name.startswith("steplab.optim"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_outside_optim_uses_an_underscore_name_of_optim():
    known = modules()
    private = _private_names_of_optim(known)
    assert "_run_rule" in private  # the scan sees optim's private names
    wrong = []
    for name, path in known.items():
        if name.startswith("steplab.optim"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
        } | {
            target.attr
            for node in ast.walk(tree)
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Attribute)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("steplab.optim"):
                used = [a.name for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute) and node.attr in private - own:
                used = [node.attr]
            else:
                continue
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno} uses optim's {n}" for n in used]
    assert not wrong, "\n".join(wrong)
