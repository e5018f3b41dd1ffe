"""Run folders and caches from strangers: nothing in them runs, and damage is refused in one line.

A malicious pickle (unpickling it creates a marker file) is planted in every file rnnlm reads;
each is refused with one clear line (exit status 2 from the command line) and the marker never
appears. Then the other ways a file can lie: shapes, types, sizes, versions, nesting, NaN.
"""

import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rnnlm.errors import RnnlmError
from rnnlm.runfolder import LAST, load_run
from rnnlm.train.checkpoint import STATE_FORMAT, read_training_state
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

from conftest import one_error_line, tiny_config
from test_resume import InterruptAt


class Plant:
    """Unpickling this opens (creates) ``marker`` for writing: code from the file would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payloads(marker: Path) -> dict[str, bytes]:
    """A raw pickle, and the same object saved by torch.save (a zip holding data.pkl)."""
    buffer = io.BytesIO()
    torch.save(Plant(marker), buffer)
    return {"pickle": pickle.dumps(Plant(marker)), "torch.save": buffer.getvalue()}


def test_the_planted_payloads_are_live(tmp_path):
    """The tests below mean something only if the payloads do run code when unpickled."""
    pickle.loads(payloads(tmp_path / "a")["pickle"])
    torch.load(io.BytesIO(payloads(tmp_path / "b")["torch.save"]), weights_only=False)
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def resumable(tmp_path_factory) -> Path:
    """A run stopped after its first of two epochs: every file a resume reads is there."""
    root = tmp_path_factory.mktemp("resumable")
    (root / "text.txt").write_text("the cat sat on the mat. " * 120)
    config = tiny_config(str(root / "text.txt"), epochs=4, schedule="sgdr")
    with pytest.raises(TrainingInterrupted):
        train(config, root / "run", callbacks=[InterruptAt(1, 0)], log=io.StringIO(), progress=False)
    assert (root / "run" / "cycle_1.safetensors").exists()
    return root / "run"


PLACES = [
    # (file, how it is read, what the refusal says)
    ("config.json", "generate", "damaged config"),
    ("config.json", "evaluate", "damaged config"),
    ("config.json", "resume", "damaged config"),
    ("vocab.json", "generate", "damaged vocab file"),
    ("vocab.json", "resume", "damaged vocab file"),
    ("model.safetensors", "generate", "damaged or not a safetensors file"),
    ("model.safetensors", "evaluate", "damaged or not a safetensors file"),
    ("last.safetensors", "load last", "damaged or not a safetensors file"),
    ("cycle_1.safetensors", "load cycle", "damaged or not a safetensors file"),
    ("train_state.safetensors", "resume", "damaged training state"),
]


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
@pytest.mark.parametrize("name,how,refusal", PLACES)
def test_a_planted_pickle_is_refused_and_never_runs(resumable, tmp_path, capsys, name, how, refusal, kind):
    run = shutil.copytree(resumable, tmp_path / "run")
    marker = tmp_path / "marker"
    (run / name).write_bytes(payloads(marker)[kind])
    if how in ("generate", "evaluate"):
        err = one_error_line([how, str(run), *(["-n", "5"] if how == "generate" else [])], capsys)
    elif how == "resume":
        err = one_error_line(["train", "--resume", str(run)], capsys)
    else:
        with pytest.raises(RnnlmError) as caught:
            load_run(run, weights=LAST if how == "load last" else "cycle_1.safetensors", device="cpu")
        err = str(caught.value)
    assert refusal in err and name in err
    assert not marker.exists()


def test_a_pickle_in_metrics_jsonl_is_replaced_not_read(resumable, tmp_path):
    run = shutil.copytree(resumable, tmp_path / "run")
    marker = tmp_path / "marker"
    (run / "metrics.jsonl").write_bytes(payloads(marker)["pickle"])
    resume(run, log=io.StringIO(), progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert not marker.exists()


def test_a_pickle_in_the_dataset_hash_record_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNLM_DATA", str(tmp_path))
    marker = tmp_path / "marker"
    (tmp_path / "hashes.json").write_bytes(payloads(marker)["pickle"])
    (tmp_path / "nietzsche.txt").write_text("not the real text")
    err = one_error_line(["train", "nietzsche", "--out", str(tmp_path / "run")], capsys)
    assert "hashes.json: damaged hash record" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_no_module_can_unpickle():
    """A tripwire for future code: no pickle, no torch.load without weights_only=True, no
    numpy pickles, no eval/exec anywhere in the package."""
    src = Path(__file__).resolve().parents[1] / "src" / "rnnlm"
    banned = re.compile(r"\bimport pickle\b|\bfrom pickle\b|\bcPickle\b|\bdill\b|\bjoblib\b|allow_pickle\s*=\s*True"
                        r"|weights_only\s*=\s*False|(?<![\w.])eval\(|(?<![\w.])exec\(|\bmarshal\b|\bshelve\b")
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        offenders += [f"{path.name}: {m.group(0)}" for m in banned.finditer(text)]
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in call.group(1):
                offenders.append(f"{path.name}: {call.group(0)}")
    assert not offenders


# The other ways a run folder can lie.

def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def edit_weights(path: Path, change) -> None:
    tensors = load_file(path)
    change(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def nan_bias(t):
    t["head.bias"][0] = float("nan")


def long_token(v):
    v["itos"][5] = "ab"


@pytest.mark.parametrize("damage,refusal", [
    (lambda run: (run / "config.json").write_text("[" * 10_000 + "]" * 10_000), "damaged config (JSON nested too deep)"),
    (lambda run: (run / "config.json").write_text(" " * (2 << 20)), "too large for a config"),
    (lambda run: edit_json(run / "config.json", lambda c: c.update(version="2")), "unknown run format version '2'"),
    (lambda run: edit_json(run / "config.json", lambda c: c.update(format="pytorch")), "not an rnnlm run config"),
    (lambda run: edit_json(run / "config.json", lambda c: c.update(vocab_size=10**12)), "vocab_size must be"),
    (lambda run: edit_json(run / "config.json", lambda c: c["train"].update(bs=2.5)), "--bs must be a whole number"),
    (lambda run: edit_json(run / "config.json", lambda c: c["data"].update(source="x" * 10**6)),
     "cannot resume without it"),
    (lambda run: edit_json(run / "config.json", lambda c: c["model"].update(hidden=10**9)), "needs about"),
    (lambda run: edit_json(run / "config.json", lambda c: c["model"].update(hidden=24)),
     "tensor head.weight has shape (14, 48), config.json implies (14, 24)"),
    (lambda run: edit_json(run / "vocab.json", lambda v: v["itos"].append("z")), "says 14 tokens, vocab.json has 15"),
    (lambda run: edit_json(run / "vocab.json", long_token), "token 'ab' is not one character"),
    (lambda run: edit_json(run / "vocab.json", lambda v: v.update(version=99)), "unknown vocab version 99"),
    (lambda run: (run / "vocab.json").write_text(json.dumps({"itos": []}) + " " * (2 << 20)), "far more than 14 tokens"),
    (lambda run: edit_weights(run / "model.safetensors", nan_bias), "not finite"),
    (lambda run: edit_weights(run / "model.safetensors", lambda t: t.update(extra=torch.zeros(1))), "unexpected ['extra']"),
    (lambda run: edit_weights(run / "model.safetensors", lambda t: t.update({"head.bias": t["head.bias"].long()})),
     "holds I64 values"),
    (lambda run: os.replace(run / "vocab.json", run / "elsewhere"), "no vocab file"),
    (lambda run: (run / "model.safetensors").unlink() or os.symlink("/dev/zero", run / "model.safetensors"),
     "is a character device"),
    (lambda run: (run / "config.json").unlink() or os.mkfifo(run / "config.json"), "is a named pipe"),
])
def test_a_lying_run_folder_is_refused_in_one_line(resumable, tmp_path, capsys, damage, refusal):
    run = shutil.copytree(resumable, tmp_path / "run")
    damage(run)
    command = ["train", "--resume", str(run)] if "resume" in refusal else ["generate", str(run), "-n", "3"]
    err = one_error_line(command, capsys)
    assert refusal in err


def rewrite_state(path: Path, change_info=None, change_tensors=None, metadata=None) -> None:
    tensors, info, extra = read_training_state(path)
    if change_info:
        change_info(info)
    if change_tensors:
        change_tensors(tensors)
    meta = {"format": STATE_FORMAT, "version": "1", "state": json.dumps(info), "extra": json.dumps(extra)}
    save_file(tensors, path, metadata={**meta, **(metadata or {})})


@pytest.mark.parametrize("damage,refusal", [
    ({"metadata": {"version": "7"}}, "unknown training state version '7'"),
    ({"metadata": {"state": "{oops"}}, "damaged training state (not JSON"),
    ({"metadata": {"state": "[" * 10_000 + "]" * 10_000}}, "damaged training state (JSON nested too deep)"),
    ({"change_info": lambda i: i.update(epoch="one")}, "epoch must be a whole number"),
    ({"change_info": lambda i: i.update(batch=10**9)}, "is past the"),
    ({"change_info": lambda i: i["scheduler"].update(T_0=7)}, "scheduler.T_0"),
    ({"change_info": lambda i: i["scheduler"].update(base_lrs="x")}, "scheduler.base_lrs must be a list"),
    ({"change_info": lambda i: i["optimizer_groups"][0].update(lr="fast")}, "optimizer_groups[0].lr"),
    ({"change_info": lambda i: i["phase"].update(schedule="warp")}, "phase lr must be > 0 and schedule"),
    ({"change_info": lambda i: i.update(history=[{"epoch": 1}])}, "history must be a list of epoch rows"),
    ({"change_info": lambda i: i["callbacks"]["5.LossPlot"].update(train=[["a", "b"]])}, "pairs of numbers"),
    ({"change_tensors": lambda t: t.update({"model.head.bias": torch.zeros(3)})},
     "tensor model.head.bias has shape (3,), the run's model needs (14,)"),
    ({"change_tensors": lambda t: t.update({"optimizer.0.exp_avg": torch.zeros(2, 2)})}, "optimizer.0.exp_avg"),
    ({"change_tensors": lambda t: t.update({"surprise": torch.zeros(1)})}, "unexpected tensor 'surprise'"),
    ({"change_tensors": lambda t: t["loss_sum"].fill_(float("nan"))}, "does not hold finite"),
    ({"change_tensors": lambda t: t.pop("rng.torch")}, "missing tensor rng.torch"),
    ({"change_tensors": lambda t: t.update({"rng.torch": torch.zeros(3, dtype=torch.uint8)})},
     "training state does not fit this run"),
])
def test_a_lying_training_state_is_refused_in_one_line(resumable, tmp_path, capsys, damage, refusal):
    run = shutil.copytree(resumable, tmp_path / "run")
    rewrite_state(run / "train_state.safetensors", **damage)
    err = one_error_line(["train", "--resume", str(run)], capsys)
    assert refusal in err
