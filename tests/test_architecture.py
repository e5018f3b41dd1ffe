"""The shape ARCHITECTURE.md promises, checked on the source itself: every module it names
exists, imports run one way (no circle), functions stay short, and the library names settings
by their fields (no command-line flag in a message outside cli/)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "rnnlm"
MAX_FUNCTION_LINES = 60
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports(tree: ast.Module, known: dict[str, Path]) -> set[str]:
    """The rnnlm modules a module imports, at run time (imports under TYPE_CHECKING are not)."""
    checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnlm"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rnnlm"))
    return {name for name in found if name in known}


def named_modules(text: str) -> set[Path]:
    """The files and folders ARCHITECTURE.md names: in backticks (in a table row of a package,
    relative to that package) and in its code blocks (paths below src/rnnlm)."""
    found, in_code = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            found.update(PACKAGE / name for name in re.findall(r"\b[\w/]+\.py\b", line))
            continue
        row = re.match(r"\| `(\w+)/` \|", line)
        for name in re.findall(r"`([\w/]+(?:\.py|/))`", line):
            where = PACKAGE / row[1] / name if row and "/" not in name else PACKAGE / name
            found.add(where if where.exists() or not (ROOT / name).exists() else ROOT / name)
    return found


def test_every_module_architecture_md_names_exists():
    named = named_modules((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert len(named) >= 40
    assert sorted(str(path.relative_to(ROOT)) for path in named if not path.exists()) == []


def package(module: str) -> str:
    """The part of rnnlm a module belongs to: its subpackage, or itself (``rnnlm.config``)."""
    return ".".join(module.split(".")[:2])


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` (each as a path that comes back to its start)."""
    found = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            found.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return found


def test_no_import_circle_between_modules_or_packages():
    known = modules()
    graph = {name: imports(parsed(path), known) - {name} for name, path in known.items()}
    assert circles(graph) == []
    packages: dict[str, set[str]] = {}
    for name, deps in graph.items():
        packages.setdefault(package(name), set()).update(package(d) for d in deps if package(d) != package(name))
    assert circles(packages) == []


def table_ranks(text: str) -> dict[str, int]:
    """The row of ARCHITECTURE.md's map that names each package (``rnnlm.data``) or top-level
    module (``rnnlm.config``), from the top."""
    ranks = {}
    rows = [line for line in text.splitlines() if re.match(r"\| `\w+(?:\.py|/)`", line)]
    for rank, row in enumerate(rows):
        first = row.split("|")[1]
        for name in re.findall(r"`(\w+)(?:\.py|/)`", first):
            ranks[f"rnnlm.{name}"] = rank
    return ranks


def test_imports_run_down_the_map():
    """A package imports from the packages above it in ARCHITECTURE.md's map, never below."""
    ranks = table_ranks((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    known = modules()
    upward = []
    for name, path in known.items():
        mine = ranks.get(package(name))
        for dep in imports(parsed(path), known):
            theirs = ranks.get(package(dep))
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{name} imports {dep}")
    assert len(ranks) >= 15 and upward == []


def test_no_function_is_longer_than_a_screen():
    long = []
    for name, path in modules().items():
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []


def string_constants(tree: ast.Module) -> list[ast.Constant]:
    """The string literals of a module but its docstrings (which may say how the CLI calls it)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


@pytest.mark.parametrize("name", sorted(n for n in modules() if not n.startswith("rnnlm.cli")))
def test_the_library_never_spells_a_flag(name):
    """Settings are named by field (``{min_freq}``); only cli/ spells them as options."""
    spelled = [node.value for node in string_constants(parsed(modules()[name])) if FLAG.search(node.value)]
    assert spelled == []
