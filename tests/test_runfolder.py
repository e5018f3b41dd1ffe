import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from rnnlm.errors import RnnlmError
from rnnlm.runfolder import load_run, new_run_folder


def copy_run(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_run_folder_holds_every_file(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "vocab.json", "model.safetensors", "last.safetensors", "metrics.jsonl"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["data"]["level"] == "char" and config["format"] == "rnnlm-run"


def test_load_restores_the_trained_weights(tiny_run):
    a, b = load_run(tiny_run, device="cpu"), load_run(tiny_run, device="cpu")
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_damaged_checkpoint_is_refused(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    (run / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(RnnlmError, match="damaged"):
        load_run(run)


def test_shape_mismatch_is_refused(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    weights = load_run(run, device="cpu").model.state_dict()
    weights["head.bias"] = torch.zeros(3)
    save_file({k: v.contiguous() for k, v in weights.items()}, run / "model.safetensors")
    with pytest.raises(RnnlmError, match="head.bias"):
        load_run(run)


@pytest.mark.parametrize("edit,message", [
    (lambda c: "{not json", "damaged config"),
    (lambda c: json.dumps({**c, "version": 7}), "unknown run format version"),
    (lambda c: json.dumps({**c, "vocab_size": 3}), r"embedding.weight has shape \(17, 16\), config.json implies \(3, 16\)"),
    (lambda c: json.dumps({**c, "model": {**c["model"], "layers": "two"}}), "layers must be a whole number"),
])
def test_bad_config_is_refused(tiny_run, tmp_path, edit, message):
    run = copy_run(tiny_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(edit(config))
    with pytest.raises(RnnlmError, match=message):
        load_run(run)


def test_not_a_run(tmp_path):
    with pytest.raises(RnnlmError, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(RnnlmError, match="no such run folder"):
        load_run(tmp_path / "missing")


def test_out_refuses_files_and_non_empty_folders(tmp_path):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(RnnlmError, match="is a file"):
        with new_run_folder(tmp_path / "file"):
            pass
    with pytest.raises(RnnlmError, match="already holds"):
        with new_run_folder(tmp_path):
            pass
    assert (tmp_path / "file").read_text() == "keep me"
