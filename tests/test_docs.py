"""The docs cannot drift from the code: every ``rnnlm`` command line in the README and docs/
uses subcommands and options that exist, and every option of every command is documented."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from rnnlm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```")
COMMAND_START = re.compile(r"(?:^|\s)(?:\S*/)?rnnlm\s+(?=[a-z-]+)|(?:^|\s)-m\s+rnnlm\s+")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def command_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each ``rnnlm`` command in ``path``: in a fenced block the lines
    after a ``$ `` prompt (or, in a block without prompts, the lines that start with ``rnnlm``),
    continuation lines joined; and inline code spans."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[tuple[int, str]] | None = None
    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            if block is not None:
                found += block_commands(block)
            block = None if block is not None else []
        elif block is not None:
            block.append((number, line))
        else:
            found += [(number, span) for span in re.findall(r"`([^`]*\brnnlm [^`]*)`", line)]
    return [(n, t) for n, t in found if COMMAND_START.search(t)]


def block_commands(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    prompted = any(line.startswith("$ ") for _, line in block)
    commands = []
    i = 0
    while i < len(block):
        number, line = block[i]
        if line.startswith("$ ") if prompted else re.match(r"\s*(\S+=\S+\s+)*rnnlm\s", line):
            text = line[2:] if prompted else line
            while text.endswith("\\") and i + 1 < len(block):
                i += 1
                text = text[:-1] + " " + block[i][1].strip()
            commands.append((number, text))
        i += 1
    return commands


def invocations(text: str) -> list[list[str]]:
    """The argument lists after ``rnnlm`` in one shell line (pipes and ``&&`` separate commands)."""
    text = text.replace("[", " ").replace("]", " ")
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose
        tokens = text.split()
    commands, current = [], None
    for token in tokens:
        if token in ("|", "||", "&&", ";", ">", "2>&1") or token.startswith((">", "2>")):
            current = None
        elif token.endswith("rnnlm") and (token == "rnnlm" or token.endswith("/rnnlm") or token == "-m rnnlm"):
            current = []
            commands.append(current)
        elif current is not None:
            current.append(token)
    return commands


def is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not re.fullmatch(r"-[\d.e+-]+", token)


def all_invocations(docs: list[Path] = DOCS):
    for path in docs:
        if path.exists():
            for number, text in command_lines(path):
                for args in invocations(text):
                    yield f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{number}", args


def wrong_command_lines(docs: list[Path] = DOCS) -> list[str]:
    """Each documented use of a command or option that the parsers do not have."""
    commands = subparsers()
    top = options_of(build_parser())
    wrong = []
    for where, args in all_invocations(docs):
        if not args or args[0].startswith("-"):
            if args and args[0] not in top:
                wrong.append(f"{where}: rnnlm {args[0]} is not an option of rnnlm")
            continue
        name = args[0]
        if name.endswith(":") or not re.fullmatch(r"[a-z-]+", name):  # "rnnlm train: error: ..." is output
            continue
        if name not in commands:
            wrong.append(f"{where}: rnnlm {name}: no such command")
            continue
        known = options_of(commands[name])
        for token in args[1:]:
            if token == "--":
                break
            if is_option(token) and token.split("=", 1)[0] not in known:
                wrong.append(f"{where}: rnnlm {name} has no option {token}")
    return wrong


def test_every_documented_command_line_uses_real_subcommands_and_options():
    wrong = wrong_command_lines()
    assert not wrong, "\n".join(wrong)


def test_the_docs_show_command_lines_at_all():
    assert sum(1 for _ in all_invocations()) > 20


def documented_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS if p.exists())


@pytest.mark.parametrize("name", sorted(subparsers()))
def test_every_option_of_every_command_is_documented(name):
    text = documented_text()
    assert re.search(rf"\brnnlm {re.escape(name)}\b", text), f"rnnlm {name} is not documented"
    missing = [option for option in sorted(options_of(subparsers()[name]) - {"-h", "--help"})
               if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)]
    assert not missing, f"rnnlm {name}: options not in README.md or docs/: {', '.join(missing)}"


def test_a_renamed_option_is_caught(tmp_path):
    """The check itself: a doc naming an option or command the parser does not have fails it."""
    doc = tmp_path / "doc.md"
    doc.write_text("```\n$ rnnlm generate runs/demo --primer 'x' -n 5\n```\nand `rnnlm train --epoch 3`, "
                   "`rnnlm sample runs/demo`\n")
    wrong = wrong_command_lines([doc])
    assert [w.split(": ", 1)[1] for w in wrong] == [
        "rnnlm generate has no option --primer", "rnnlm train has no option --epoch", "rnnlm sample: no such command"]


def docs_check():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("docs_check", ROOT / "tools" / "docs_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_quick_outputs_the_docs_show_are_what_the_commands_print():
    check = docs_check()
    quick = [e for e in check.examples(check.DOCS) if e.quick]
    assert quick, "no block is marked <!-- check: quick -->"
    wrong = [f"{e.path.name}:{e.line}" for e in quick
             if not check.matches(e.expected, check.run(e, Path(check.sys.executable).parent))]
    assert not wrong, f"outputs in the docs that the commands no longer print: {', '.join(wrong)}"


def test_the_output_comparison_skips_times_and_allows_gaps():
    matches = docs_check().matches
    assert matches(["epoch 1 loss 2.5000 00:09", "...", "best 1.4532"], ["epoch 1 loss 2.50001 00:11", "x", "best 1.4532"])
    assert not matches(["best 1.4532"], ["best 1.4600"])
    assert not matches(["a", "b"], ["a", "b", "c"])
    assert matches(["a", "...", "c"], ["a", "b", "b", "c"]) and not matches(["a", "...", "c"], ["a", "c", "d"])
    assert matches(["in 0.05 s", "ok"], ["in 12.3 s", "ok"])


def test_the_readme_is_a_front_page_with_no_placeholder_left():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) < 10_000, f"README.md is {len(readme):,} bytes: move the depth into docs/"
    for path in DOCS:
        prose = re.sub(r"`[^`]*`", "", re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M))
        placeholders = sorted(set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", prose)))  # NAMES_LIKE_THIS
        assert not placeholders, f"{path.name}: placeholders left in the prose: {', '.join(placeholders)}"
