"""`rnnlm --help`, every `rnnlm CMD --help` and `rnnlm datasets` answer without importing torch or
numpy (the seconds of start-up they would cost are measured in benchmarks/startup.py)."""

import json
import subprocess
import sys

import pytest

from rnnlm.cli.main import build_parser

HEAVY = ("torch", "numpy", "safetensors", "tqdm", "matplotlib")
CHILD = """
import json, sys
from rnnlm.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))}))
""".replace("HEAVY", repr(HEAVY))


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def imported(argv: list[str]) -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=120,
                           check=False)
    return json.loads(child.stdout.splitlines()[-1])


def test_every_command_module_is_a_command_and_is_checked():
    import pkgutil

    import rnnlm.cli

    modules = {m.name for m in pkgutil.iter_modules(rnnlm.cli.__path__)} - {"main", "options", "output"}
    assert {name.replace("-", "_") for name in commands()} == modules


@pytest.mark.parametrize("argv", [["--help"], ["datasets"]] + [[name, "--help"] for name in commands()],
                         ids=lambda argv: " ".join(argv))
def test_help_and_datasets_import_nothing_heavy(argv):
    found = imported(argv)
    assert found["code"] == 0
    assert found["heavy"] == []


def test_prepare_imports_no_torch(tmp_path):
    (tmp_path / "a.txt").write_text("one two three, four five six. " * 50)
    found = imported(["prepare", str(tmp_path / "a.txt"), "--level", "word", "--out", str(tmp_path / "p")])
    assert found["code"] == 0 and (tmp_path / "p" / "ids.bin").is_file()
    assert "torch" not in found["heavy"]
