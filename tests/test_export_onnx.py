"""``rnnlm export --onnx``: the graphs run by onnxruntime give torch's logits for every cell and
level, the reference generator (examples/onnx_generate.py) writes ``rnnlm generate``'s text with
torch unimportable, its byte-level BPE gives the library's ids, and every bad input is one line,
exit status 2 and nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlm.cli import main
from rnnlm.cli.export import megabytes
from rnnlm.data.bpe import train_bpe
from rnnlm.export.onnx_graphs import MODEL, PROMPT, STEP, TOKENIZER, export_onnx
from rnnlm.export.spec import tokenizer_spec
from rnnlm.export.weights import compression_cost, dequantized, page_tensors, row_scales
from rnnlm.generation.session import GenerationSession
from tests.conftest import SHARED_DATA, one_error_line
from tests.exporting import MIXED_TEXT, RUNS, loaded_runs

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WITHOUT_TORCH = """
import importlib.abc, json, runpy, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "rnnlm", "tokenizers"):
            raise ImportError(name + " may not be imported here")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, EXAMPLES)
import onnx_generate
model = onnx_generate.Model(sys.argv[1])
print(json.dumps(["".join(model.generate(**case)) for case in json.loads(sys.argv[2])]))
sys.argv = ["onnx_generate.py", sys.argv[1], "--prime", "the cat ", "-n", "50", "--greedy"]
runpy.run_path(EXAMPLES + "/onnx_generate.py", run_name="__main__")
"""
CASES = [
    {"prime": "the cat ", "n": 200, "greedy": True},
    {"prime": "", "n": 200, "greedy": True},
    {"prime": "Don't stop: 42", "n": 120, "temperature": 0.8, "top_k": 5, "seed": 3},
    {"prime": "the dog", "n": 120, "seed": 11},
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("onnx")
    return {name: (run, export_onnx(run, out / name)) for name, run in loaded_runs(tmp_path_factory).items()}


def rnnlm_text(run, case: dict) -> str:
    """What ``rnnlm generate`` writes after the prime for ``case``."""
    options = {"greedy": case.get("greedy", False), "temperature": case.get("temperature", 1.0),
               "top_k": case.get("top_k"), "seed": case.get("seed")}
    return "".join(p.text for p in GenerationSession(run).complete(case["prime"], case["n"], **options))


@pytest.mark.parametrize("name", list(RUNS))
def test_onnxruntime_gives_torchs_logits_over_200_steps(exported, name):
    run, done = exported[name]
    assert sorted(done.sizes) == sorted([STEP, PROMPT, TOKENIZER, MODEL]) and done.difference <= 1e-4
    step, prompt = (ort.InferenceSession(str(done.folder / f)) for f in (STEP, PROMPT))
    names = ["h", "c"] if run.config.model.cell == "lstm" else ["h"]
    ids = torch.randint(3, len(run.vocab), (3, 17), generator=torch.Generator().manual_seed(1))  # N = 3, T = 17
    zeros = run.model.init_state(3)
    zeros = zeros if isinstance(zeros, tuple) else (zeros,)
    with torch.inference_mode():
        logits, state = run.model(ids, zeros if len(zeros) == 2 else zeros[0])
        got = prompt.run(None, {"ids": ids.numpy(), **{n: z.numpy() for n, z in zip(names, zeros)}})
        assert np.abs(got[0] - logits[:, -1].numpy()).max() < 1e-4
        onnx_state, token, worst = got[1:], logits[:, -1].argmax(-1), 0.0
        for _ in range(200):
            logits, state = run.model(token[:, None], state)
            got = step.run(None, {"ids": token.numpy(), **dict(zip(names, onnx_state))})
            worst = max(worst, float(np.abs(got[0] - logits[:, 0].numpy()).max()))
            onnx_state, token = got[1:], logits[:, 0].argmax(-1)
    assert worst < 1e-4
    spec = json.loads((done.folder / MODEL).read_text())
    assert (spec["cell"], spec["layers"], spec["hidden"]) == (run.config.model.cell, run.config.model.layers,
                                                               run.config.model.hidden)


@pytest.mark.parametrize("name", list(RUNS))
def test_reference_generator_writes_rnnlms_text_without_torch(exported, name):
    run, done = exported[name]
    code = WITHOUT_TORCH.replace("EXAMPLES", repr(str(EXAMPLES)))
    child = subprocess.run([sys.executable, "-c", code, str(done.folder), json.dumps(CASES)], capture_output=True,
                           text=True, encoding="utf-8", timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    first, cli = child.stdout.split("\n", 1)
    texts = json.loads(first)
    for case, text in zip(CASES, texts):
        assert text == rnnlm_text(run, case), case
    assert len(texts[0]) > 100 and texts[2] != texts[3]
    assert cli == "the cat " + rnnlm_text(run, {"prime": "the cat ", "n": 50, "greedy": True}) + "\n"


def test_python_bpe_gives_the_librarys_ids_on_real_text():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import onnx_generate
    finally:
        sys.path.remove(str(EXAMPLES))
    nietzsche = SHARED_DATA / "nietzsche.txt"
    text = nietzsche.read_text(encoding="utf-8")[:60_000] if nietzsche.exists() else MIXED_TEXT * 5
    tricky = ("don't 's 're  two  spaces\n\n\nlines\t\ttabs 123 4567 ½ ² café 日本語 😀 \u00a0nbsp\u3000 \x1c sep "
              "xxbos xxunk it'S 'll\r\n  \n")
    for lower in (False, True):
        tokenizer = train_bpe([(True, text + tricky)], 1000, lower=lower)
        ours = onnx_generate.Tokenizer(tokenizer_spec(tokenizer, tokenizer.vocab))
        for sample in (text, tricky, tricky.upper()):
            assert ours.encode(sample) == tokenizer.encode(sample).tolist()
        ids = tokenizer.encode(tricky).tolist()
        decoder = ours.decoder()
        assert "".join(decoder.feed(i) for i in ids) + decoder.flush() == tokenizer.decode(ids)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bad_input_is_one_line_and_leaves_nothing(exported, tmp_path, capsys, monkeypatch):
    run = str(exported["lstm-char"][0].folder)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "folder").mkdir()
    cases = {
        "no such run folder": [str(tmp_path / "nope"), "--onnx", str(tmp_path / "o")],
        "not a run folder": [str(tmp_path / "folder"), "--onnx", str(tmp_path / "o")],
        "--onnx": [run, "--onnx", str(tmp_path / "missing" / "o")],
        "already holds files": [run, "--onnx", str(tmp_path / "full")],
        "is a folder": [run, "--html", str(tmp_path / "folder")],
        "no folder": [run, "--html", str(tmp_path / "missing" / "page.html")],
        "invalid choice": [run, "--html", str(tmp_path / "p.html"), "--weights", "fp8"],
        "--onnx DIR, --html FILE": [run],
    }
    for expected, argv in cases.items():
        assert expected in one_error_line(["export", *argv], capsys)
    assert leftovers(tmp_path) == ["folder", "full"] and leftovers(tmp_path / "full") == ["x"]
    monkeypatch.setattr("rnnlm.export.page.MAX_PAGE_BYTES", 10_000)
    line = one_error_line(["export", run, "--onnx", str(tmp_path / "o"), "--html", str(tmp_path / "p.html")], capsys)
    assert "MB in a page, more than its limit of 0 MB" in line and "--weights int8" not in line
    monkeypatch.setattr("rnnlm.export.onnx_graphs.largest_difference", lambda *args: 0.5)
    assert "differ from torch's by 0.5" in one_error_line(["export", run, "--onnx", str(tmp_path / "o")], capsys)
    assert leftovers(tmp_path) == ["folder", "full"]


def test_the_command_writes_both_and_says_what_it_wrote(exported, tmp_path, capsys):
    run = exported["gru-word"][0].folder
    (tmp_path / "empty").mkdir()
    assert main(["export", str(run), "--onnx", str(tmp_path / "empty"), "--html", str(tmp_path / "p.html"),
                 "--weights", "int8"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == sorted([STEP, PROMPT, TOKENIZER, MODEL])
    size = (tmp_path / "p.html").stat().st_size
    assert f"{megabytes(size)} page, int8 weights" in out and "bits/char on the validation split" in out
    assert "checked  onnxruntime's logits within" in out and "greedy text (empty prime) follows fp32's" in out


def test_compressed_weights_are_within_their_rounding_and_their_cost_is_measured(exported, tmp_path):
    run = exported["lstm-char"][0]
    w = page_tensors(run.model)["l0.w_hh"]  # (4H, H)
    assert ((dequantized(w, "int8") - w).abs() <= row_scales(w)[:, None] / 2 + 1e-7).all()
    assert ((dequantized(w, "fp16") - w).abs() <= w.abs() * 2**-11 + 1e-7).all()
    assert not torch.equal(dequantized(w, "int8"), w) and torch.equal(dequantized(w, "fp32"), w)
    assert "head.w" not in page_tensors(exported["gru-word"][0].model)  # tied: the embedding is the head
    cost = compression_cost(run, "int8")
    assert 0 < cost.bits_per_char < 10 and abs(cost.compressed_bits_per_char - cost.bits_per_char) < 0.05
    assert 0 <= cost.greedy_agree <= cost.greedy_tokens == 200
    data = replace(run.config.data, source=str(tmp_path / "gone.txt"))
    gone = compression_cost(replace(run, config=replace(run.config, data=data)), "fp16")
    assert gone.bits_per_char is None and "is gone" in gone.why_not_measured
