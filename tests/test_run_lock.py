"""One training at a time in a run folder: a second one, or a resume, refuses while the first
runs; a process killed with SIGKILL leaves no lock behind."""

import io
import shutil
import signal
import subprocess
import sys

import pytest

from rnnlm.cli import main
from rnnlm.errors import RnnlmError
from rnnlm.runfolder import locked_run_folder
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import train

from conftest import tiny_config
from test_resume import CHILD_ENV, InterruptAt


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    (root / "text.txt").write_text("the cat sat on the mat. " * 120)
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(str(root / "text.txt"), epochs=2), root / "run", callbacks=[InterruptAt(1, 0)],
              log=io.StringIO(), progress=False)
    return root


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_second_training_into_a_folder_being_trained_refuses(resumable, tmp_path, capsys):
    text = resumable / "text.txt"
    out = tmp_path / "run"
    out.mkdir()
    with locked_run_folder(out):  # a first training that has just claimed the (still empty) folder
        code = main(["train", str(text), "--epochs", "1", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert f"{out}: another rnnlm process (pid " in err and "is training in this folder" in err
        assert [p.name for p in out.iterdir()] == [".lock"]


def test_resume_refuses_a_folder_being_trained(resumable, tmp_path, capsys):
    run = shutil.copytree(resumable / "run", tmp_path / "run")
    before = snapshot(run)
    with locked_run_folder(run):
        assert main(["train", "--resume", str(run)]) == 2
        assert "is training in this folder" in capsys.readouterr().err
        with pytest.raises(RnnlmError, match="another rnnlm process"):
            train(tiny_config(str(resumable / "text.txt")), run)
    assert snapshot(run) == {**before, ".lock": snapshot(run)[".lock"]}


HOLD = """
import sys, time
from pathlib import Path
from rnnlm.runfolder import locked_run_folder
with locked_run_folder(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_dies_with_its_process(resumable, tmp_path, capsys):
    run = shutil.copytree(resumable / "run", tmp_path / "run")
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
    try:
        assert child.stdout.readline() == "locked\n"
        assert main(["train", "--resume", str(run)]) == 2
        assert f"another rnnlm process (pid {child.pid}) is training" in capsys.readouterr().err
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert main(["train", "--resume", str(run)]) == 0  # no stale lock after kill -9
    assert "resuming" in capsys.readouterr().out
