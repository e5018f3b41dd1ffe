"""--precision: training steps under bfloat16 autocast where the CPU has it; validation and
evaluation stay fp32; the run records the precision it used."""

import io
import json

import pytest

from rnnlm import device as device_module
from rnnlm.config import TrainConfig
from rnnlm.device import cpu_has_bf16, resolve_precision
from rnnlm.errors import SettingError
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.runfolder import load_run
from rnnlm.train.run import train
from rnnlm.train.setup import resolve_config
from rnnlm.cli.main import build_parser
from rnnlm.cli.options import config_from_args

from conftest import TINY, one_error_line, tiny_config

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")


def test_an_unknown_precision_is_refused(tiny_file, capsys):
    with pytest.raises(SettingError) as caught:
        TrainConfig(precision="fp16").validate()
    assert caught.value.field == "precision"
    line = one_error_line(["train", str(tiny_file), *TINY, "--precision", "fp16"], capsys)
    assert "--precision" in line and "fp16" in line


def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(SettingError, match="no bfloat16 instructions") as caught:
        resolve_precision("bf16", "cpu")
    assert caught.value.field == "precision"
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"


@needs_bf16
def test_bf16_learns_records_itself_and_validates_in_fp32(tiny_file):
    config = tiny_config(str(tiny_file), precision="auto")
    trained = train(config, tiny_file.parent / "run", log=io.StringIO(), progress=False)
    recorded = json.loads((trained.folder / "config.json").read_text())["train"]["precision"]
    assert recorded == "bf16"
    history = trained.learner.history
    assert history[-1]["valid_loss"] < 0.5 * history[0]["train_loss"]
    run = load_run(trained.folder, device="cpu")
    assert run.config.train.precision == "bf16"
    # the best epoch's validation is the fp32 evaluation of the saved weights, to float precision
    best = min(history, key=lambda row: row["valid_loss"])
    assert evaluate_run(run).loss == pytest.approx(best["valid_loss"], rel=1e-5)


@pytest.mark.parametrize("has_bf16", [False, True])
def test_a_budget_trains_in_bf16_where_the_cpu_has_it_and_an_epoch_run_in_fp32(monkeypatch, has_bf16):
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: has_bf16)
    budget = resolve_config(tiny_config("x", budget=60.0))
    epochs = resolve_config(tiny_config("x"))
    assert budget.train.precision == ("bf16" if has_bf16 else "fp32")  # time is what bf16 buys
    assert epochs.train.precision == "fp32"  # the same numbers on every machine
    assert resolve_config(tiny_config("x", budget=60.0, precision="fp32")).train.precision == "fp32"  # the user's


def test_precision_given_at_fp32_with_a_budget_counts_as_given():
    args = build_parser().parse_args(["train", "x.txt", "--budget", "1m", "--precision", "fp32"])
    config = config_from_args(args)
    assert "precision" in config.given and resolve_config(config).train.precision == "fp32"
