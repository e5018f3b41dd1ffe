import io
from pathlib import Path

import pytest
import torch

from rnnlm.cli import main
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.train.run import train

# Tiny models gain nothing from a second thread, and on a machine shared with other work threads
# that spin waiting for each other make every training test several times slower.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY_TEXT = "the cat sat on the mat. the dog sat on the log. " * 60
TINY = ["--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "4", "--bptt", "8",
        "--epochs", "1", "--device", "cpu"]  # rnnlm train options of a model that trains in a blink


def one_error_line(argv, capsys) -> str:
    """Run the command line ``argv``; assert it failed with exit status 2 and one line on stderr, no
    traceback; return that line."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never reach the network: any attempt fails loudly."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


def tiny_config(source: str, **train) -> RunConfig:
    return RunConfig(
        DataConfig(source=source),
        ModelConfig(cell="gru", layers=1, emb=16, hidden=48, dropout=0.0),
        TrainConfig(**{"bs": 8, "bptt": 16, "epochs": 4, "lr": 1e-2, "seed": 0, "device": "cpu", **train}),
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A small run folder trained once for the whole session."""
    root = tmp_path_factory.mktemp("tinyrun")
    data = root / "tiny.txt"
    data.write_text(TINY_TEXT, encoding="utf-8")
    return train(tiny_config(str(data)), root / "run", log=io.StringIO(), progress=False).folder
