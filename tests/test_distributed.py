"""Training in several processes: torchrun + DistributedDataParallel on 2 CPU processes (gloo).

Each torchrun start costs a few seconds (three Python processes import torch), so the runs are
few and tiny, and each is checked for several things.
"""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnlm.cli import build_parser, config_from_args, main
from rnnlm.data.batching import StreamBatches
from rnnlm.errors import RnnlmError
from rnnlm.runfolder import load_run
from rnnlm.train.checkpoint import read_training_state
from rnnlm.distributed import check_batch_split
from rnnlm.train.run import resume, train

SRC = str(Path(__file__).resolve().parents[1] / "src")
CHILD_ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    CHILD_ENV.pop(name, None)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, env=CHILD_ENV, timeout=300)


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


# Clipping that bites (so it must use the global gradient norm), AR/TAR and the layer-by-layer
# stack of locked dropout: all deterministic, so 2 processes must train as 1.
SAME_AS_ONE = ["--model", "lstm", "--layers", "2", "--emb", "16", "--hidden", "24", "--dropout", "0",
               "--locked-dropout", "--ar", "1", "--tar", "1", "--clip", "0.2", "--bs", "8", "--bptt", "16",
               "--epochs", "2", "--lr", "1e-2", "--seed", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same training in one process here and in two under torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    data = root / "tiny.txt"
    data.write_text("the cat sat on the mat. the dog sat on the log. " * 60)
    args = build_parser().parse_args(["train", str(data), *SAME_AS_ONE])
    one = train(config_from_args(args), root / "one", log=io.StringIO(), progress=False).folder
    two = torchrun("-m", "rnnlm", "train", str(data), *SAME_AS_ONE, "--out", str(root / "two"))
    return one, root / "two", two


@pytest.mark.slow
def test_two_processes_write_one_run_folder(one_and_two):
    _, folder, done = one_and_two
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("train_loss") == 1 and done.stdout.count("sample:") == 1  # rank 0 alone prints
    assert "error" not in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".lock", "config.json", "vocab.json", "model.safetensors", "last.safetensors", "metrics.jsonl",
         "train_state.safetensors", "loss.png"])
    assert [row["epoch"] for row in rows(folder)] == [1, 2]
    run = load_run(folder)
    assert run.config.train.bs == 8  # the global batch, as given
    _, info, _ = read_training_state(folder / "train_state.safetensors")
    assert info["world_size"] == 2 and info["stop_reason"] is None


@pytest.mark.slow
def test_two_processes_train_as_one_on_the_same_global_batch(one_and_two):
    one, two, done = one_and_two
    assert done.returncode == 0, done.stderr
    for a, b in zip(rows(one), rows(two), strict=True):
        assert (a["step"], a["tokens"]) == (b["step"], b["tokens"])
        for key in ("train_loss", "valid_loss", "accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    a, b = load_file(one / "last.safetensors"), load_file(two / "last.safetensors")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name


# Every kind of dropout draws random numbers on both ranks, and weight dropout trains raw weights
# through a dropped copy (DistributedDataParallel must still see every gradient).
NOISY = ["--model", "lstm", "--layers", "2", "--emb", "16", "--hidden", "24", "--dropout", "0.2",
         "--locked-dropout", "--weight-dropout", "0.3", "--emb-dropout", "0.1", "--bs", "8", "--bptt", "16",
         "--epochs", "2", "--lr", "1e-2", "--seed", "4", "--device", "cpu"]

INTERRUPTED = """
import sys
from rnnlm.cli import build_parser, config_from_args
from rnnlm.train.callbacks import Callback
from rnnlm.cli.train import interrupted_line
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import train

class InterruptAt(Callback):  # like Ctrl-C reaching rank 0 alone, in epoch 2 at batch 5
    def on_batch_end(self, learner, loss):
        if (learner.epoch, learner.batch) == (1, 5):
            learner.interrupt()

config = config_from_args(build_parser().parse_args(["train", *sys.argv[2:]]))
try:
    train(config, sys.argv[1], callbacks=[InterruptAt()], progress=False)
except TrainingInterrupted as e:
    print(interrupted_line(e), file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.slow
def test_a_run_in_two_processes_resumes_exactly(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text("the cat sat on the mat. the dog sat on the log. " * 60)
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    stopped = torchrun(str(script), str(tmp_path / "resumed"), str(data), *NOISY)
    assert stopped.returncode != 0
    assert "Resume with: torchrun --nproc_per_node=2 -m rnnlm train --resume" in stopped.stderr
    tensors, info, _ = read_training_state(tmp_path / "resumed" / "train_state.safetensors")
    assert (info["epoch"], info["batch"]) == (1, 5)  # every rank stopped at the batch where rank 0 did
    assert tensors["hidden.0"].shape == (2, 8, 24)  # the hidden state of all 8 streams
    assert "rng.rank1.torch" in tensors

    with pytest.raises(RnnlmError, match="trained in 2 processes.*torchrun nproc_per_node=2"):
        resume(tmp_path / "resumed")

    resumed = torchrun("-m", "rnnlm", "train", "--resume", str(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("resuming") == 1
    straight = torchrun("-m", "rnnlm", "train", str(data), *NOISY, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    a, b = load_file(tmp_path / "straight" / "last.safetensors"), load_file(tmp_path / "resumed" / "last.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert without_time(rows(tmp_path / "resumed")) == without_time(rows(tmp_path / "straight"))


def worker_exit_codes(stderr: str) -> dict[int, int]:
    """The exit status of each rank, from torchrun's report."""
    found = re.findall(r"rank\s+:\s*(\d+) \(local_rank.*\n\s*exitcode\s+:\s*(-?\d+)", stderr)
    return {int(rank): int(code) for rank, code in found}


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--bs", "7"], "--bs 7 does not split evenly over 2 processes; use a multiple of 2"),  # every rank finds it
    (["--out", "{run}"], "folder already holds a run"),  # rank 0 alone finds it
])
def test_errors_under_torchrun_are_one_line_from_rank_0(tiny_file, tiny_run, args, message):
    args = [a.format(run=tiny_run) for a in args]
    done = torchrun("-m", "rnnlm", "train", str(tiny_file), "--device", "cpu", *args)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("rnnlm train")]
    assert len(ours) == 1 and message in ours[0], done.stderr
    codes = worker_exit_codes(done.stderr)
    assert codes[0] == 2 and codes.get(1, 2) in (2, -15), done.stderr  # rank 1 fails too, or torchrun stops it
    assert f'File "{SRC}' not in done.stderr  # no traceback from rnnlm itself (torchrun prints its own)


def test_other_commands_refuse_several_processes_and_rank_1_keeps_quiet(tiny_run, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["evaluate", str(tiny_run)]) == 2
    assert capsys.readouterr().err == ("rnnlm evaluate: error: only rnnlm train runs in several processes; "
                                       "run rnnlm evaluate without torchrun\n")
    monkeypatch.setenv("RANK", "1")
    assert main(["evaluate", str(tiny_run)]) == 2
    assert capsys.readouterr().err == ""


def test_batches_split_into_contiguous_blocks_of_streams():
    ids = torch.arange(1000).numpy()
    whole = StreamBatches(ids, 6, 7)
    for world in (1, 2, 3, 4, 6):
        parts = [whole.shard(rank, world) for rank in range(world)]
        assert all(len(p) == len(whole) for p in parts)
        for k in range(len(whole)):
            x, y = whole.batch(k)
            assert torch.equal(torch.cat([p.batch(k)[0] for p in parts]), x)
            assert torch.equal(torch.cat([p.batch(k)[1] for p in parts]), y)
    assert [whole.shard(r, 4).bs for r in range(4)] == [1, 2, 1, 2]  # uneven, for validation
    empty = StreamBatches(ids, 2, 7).shard(0, 3)
    assert empty.bs == 0 and len(empty) == 0 and list(empty) == []


def test_the_batch_must_split_evenly_over_the_processes():
    check_batch_split(8, 2)
    check_batch_split(7, 1)
    with pytest.raises(RnnlmError, match="bs 6 does not split evenly over 4 processes") as error:
        check_batch_split(6, 4)
    assert error.value.field == "bs"


@pytest.mark.slow
def test_a_list_under_torchrun_trains_as_in_one_process(tmp_path):
    """--lines under torchrun: the same documents, split and boundaries in every process, so two
    processes train as one, and the run records its items as one process's does."""
    data = tmp_path / "names.txt"
    data.write_text("".join(f"{name}\n" for name in ["anna", "bob", "carla", "dmitri", "emma", "felix",
                                                    "greta", "hugo", "ida", "jonas"] * 12))
    args = [str(data), "--lines", *SAME_AS_ONE]
    one = train(config_from_args(build_parser().parse_args(["train", *args])), tmp_path / "one",
                log=io.StringIO(), progress=False).folder
    two = torchrun("-m", "rnnlm", "train", *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    ones, twos = without_time(rows(one)), without_time(rows(tmp_path / "two"))
    assert [sorted(row) for row in twos] == [sorted(row) for row in ones] and len(ones) == 2
    for a, b in zip(ones, twos):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    assert load_file(tmp_path / "two" / "documents.safetensors").keys() == load_file(
        one / "documents.safetensors").keys()
    for name, tensor in load_file(one / "documents.safetensors").items():
        assert torch.equal(tensor, load_file(tmp_path / "two" / "documents.safetensors")[name])
