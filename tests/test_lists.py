"""A list from the command line: train with --lines, samples that are whole items with verdicts,
--new-only, a temperature list, evaluate per item, novelty per item, prepare, and the mistakes."""

import io
import json
import math

import numpy as np
import pytest

from rnnlm.cli import main
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.data.items import VERDICTS
from rnnlm.generation.session import GenerationSession
from rnnlm.train.run import train

from conftest import TINY, one_error_line

SYLLABLES = ["ba", "ko", "ri", "ne", "lu", "ma", "to", "shi"]


def names() -> list[str]:
    """400 made-up names of two or three syllables, a fixed shuffle."""
    rng = np.random.default_rng(1)
    items = {"".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))) for _ in range(1200)}
    return sorted(items)[:400]


@pytest.fixture(scope="session")
def names_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / "names.txt"
    path.write_text("\n".join(names()) + "\n")
    return path


@pytest.fixture(scope="session")
def list_run(names_file):
    config = RunConfig(DataConfig(source=str(names_file), lines=True),
                       ModelConfig(cell="gru", layers=1, emb=16, hidden=64, dropout=0.0),
                       TrainConfig(bs=8, bptt=16, epochs=6, lr=1e-2, seed=0, device="cpu"))
    return train(config, names_file.parent / "run", log=io.StringIO(), progress=False).folder


def run_json(capsys, *argv) -> list[dict]:
    assert main(list(argv)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_run_records_its_split(list_run):
    config = json.loads((list_run / "config.json").read_text())["data"]
    assert config["lines"] is True and config["valid_docs"] == 80
    assert (list_run / "documents.safetensors").is_file()


def test_samples_are_whole_items_with_verdicts(list_run, capsys):
    samples = run_json(capsys, "generate", str(list_run), "--samples", "30", "--seed", "1", "--json")
    assert len(samples) == 30 and all(s["verdict"] in VERDICTS for s in samples)
    assert sum(s["finish_reason"] == "end" for s in samples) >= 27  # the model learnt where an item ends
    assert all("\n" not in s["text"] for s in samples)
    assert any(s["verdict"] == "in training" for s in samples)  # it learnt the list, too
    assert main(["generate", str(list_run), "--samples", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == samples[0]["text"] and out[0].startswith(samples[0]["verdict"])
    counts = {v: sum(s["verdict"] == v for s in samples) for v in VERDICTS}
    assert out[-1].startswith(f"30 samples: {counts['new']} new, {counts['in training']} in training, "
                              f"{counts['in validation']} in validation")


def test_a_prime_is_the_start_of_an_item(list_run, capsys):
    (s,) = run_json(capsys, "generate", str(list_run), "--prime", "ko", "--seed", "2", "--json")
    assert s["prompt"] == "ko" and s["finish_reason"] == "end"


def test_new_only_finds_distinct_new_items(list_run, capsys):
    assert main(["generate", str(list_run), "--samples", "5", "--seed", "3", "--new-only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:5]] == ["new"] * 5 and len(set(out[:5])) == 5
    assert out[5].startswith("5 samples: 5 new, 0 in training, 0 in validation (in ") and "draws" in out[5]


def test_new_only_that_cannot_find_enough_says_how_many_it_found(list_run, capsys):
    err = one_error_line(["generate", str(list_run), "--samples", "3", "--greedy", "--new-only"], capsys)
    assert "of the 3 asked for in 100 draws" in err
    assert capsys.readouterr().out == ""


def test_a_temperature_list_draws_at_each(list_run, capsys):
    samples = run_json(capsys, "generate", str(list_run), "--samples", "3", "--seed", "1", "--temperature",
                       "0.5,1.5", "--json")
    assert [s["temperature"] for s in samples] == [0.5] * 3 + [1.5] * 3
    assert [s["seed"] for s in samples] == [1, 2, 3] * 2


def test_evaluate_reads_each_item_alone_with_its_end(list_run, capsys):
    (scores,) = run_json(capsys, "evaluate", str(list_run), "--json")
    assert scores["documents"] == 80
    assert scores["characters"] == scores["tokens"]  # at character level each end is a token and a character
    assert scores["nats_per_char"] == pytest.approx(scores["loss"])
    assert scores["loss_per_document"] == pytest.approx(scores["loss"] * scores["tokens"] / 80)
    assert scores["loss"] < 0.6 * math.log(len(SYLLABLES) * 2 + 1)  # far better than guessing the letters


def test_evaluate_reads_another_file_as_a_list(list_run, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("bako\n\nrine\nshilu  \n")
    (scores,) = run_json(capsys, "evaluate", str(list_run), str(other), "--json")
    assert scores["documents"] == 3 and scores["characters"] == 4 + 4 + 5 + 3


def test_novelty_judges_each_item(list_run, names_file, tmp_path, capsys):
    items = tmp_path / "items.txt"
    items.write_text(f"{names()[0]}\nzzzz\n")
    assert main(["novelty", str(list_run), str(items), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["items"]
    assert [i["text"] for i in found] == [names()[0], "zzzz"]
    assert found[0]["verdict"] in ("in training", "in validation") and found[1]["verdict"] == "new"
    assert found[1]["longest"] is None


def test_prepare_writes_the_ids_training_reads(names_file, tmp_path, capsys):
    from rnnlm.data.textdata import build_text_data

    assert main(["prepare", str(names_file), "--lines", "--out", str(tmp_path / "prep")]) == 0
    capsys.readouterr()
    prepared = build_text_data(DataConfig(source=str(tmp_path / "prep")))
    direct = build_text_data(DataConfig(source=str(names_file), lines=True))
    assert np.array_equal(prepared.train_ids, direct.train_ids) and np.array_equal(prepared.valid_ids, direct.valid_ids)
    assert prepared.tokenizer.documents and np.array_equal(prepared.items.train, direct.items.train)
    assert main(["train", str(tmp_path / "prep"), *TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["lines"] is True
    (s,) = run_json(capsys, "generate", str(tmp_path / "run"), "--seed", "1", "--json")
    assert s["verdict"] in VERDICTS


@pytest.mark.parametrize("content,args,message", [
    ("a\nb\n", ["--lines", "--doc-sep", "%"], "not allowed with argument --lines"),
    ("\n \n", ["--lines"], "has no non-empty line (2 lines read)"),
    ("a\nb\nc\n", ["--doc-sep", "%"], "no line is --doc-sep '%' in the 3 lines read"),
    ("ok\n" + "x" * 10_001 + "\n", ["--lines"], "line 2 has 10,001 characters"),
    ("x" * 20_000 + "\n", ["--doc-sep", "%"], "no line is --doc-sep '%' in the 1 line read"),
    ("a\n%\n" + "x" * 10_001 + "\n", ["--doc-sep", "%"], "the document at line 3 has 10,001 characters"),
    ("a\nb\nc\n", ["--lines", "--valid-docs", "3"], "--valid-docs 3: the corpus has 3 documents"),
    ("a b c\n", ["--valid-docs", "3"], "--valid-docs needs documents: --lines or --doc-sep"),
])
def test_list_mistakes_are_one_line_and_leave_nothing(tmp_path, capsys, content, args, message):
    data = tmp_path / "list.txt"
    data.write_text(content)
    err = one_error_line(["train", str(data), *args, *TINY, "--out", str(tmp_path / "run")], capsys)
    assert message in err
    assert not (tmp_path / "run").exists()


def test_new_only_needs_a_list(tiny_run, capsys):
    assert "--new-only needs a run trained on a list" in one_error_line(
        ["generate", str(tiny_run), "--new-only"], capsys)


def test_served_a_completion_is_one_item_and_the_playground_lists_verdicts(list_run):
    from tests.serving import ServerProcess, get_json, post

    server = ServerProcess(str(list_run), "--threads", "1")
    try:
        _, models = get_json(server.port, "/v1/models")
        assert models["data"][0]["card"]["documents"] is True
        status, done = post(server.port, "/v1/completions", {"model": "run", "prompt": "", "n": 8, "seed": 4,
                                                             "max_tokens": 100})
        assert status == 200
        session = GenerationSession.load(list_run, device="cpu")
        alone = session.start("", n=8, max_tokens=100, seed=4)
        for _ in session.run_streams(alone):
            pass
        assert [c["text"] for c in done["choices"]] == [s.text for s in alone]
        assert all(c["finish_reason"] == "stop" and c["verdict"] in VERDICTS for c in done["choices"])
        assert [c["verdict"] for c in done["choices"]] == [session.verdict(s.text) for s in alone]
        playground_lists_items(server)
    finally:
        server.stop()


def playground_lists_items(server) -> None:
    """The page, in a headless Chromium when there is one, shows a list's samples with verdicts."""
    import os

    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access("/usr/bin/chromium", os.X_OK):
        pytest.skip("no Chromium at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0", timeout=20000)
            page.fill("#seed", "4")
            page.click("#go")
            page.wait_for_function("document.getElementById('gen-status').textContent.includes('samples:')",
                                   timeout=30000)
            verdicts = page.eval_on_selector_all(".items .verdict", "els => els.map(e => e.textContent)")
            assert len(verdicts) == 10 and set(verdicts) <= set(VERDICTS) and not errors
        finally:
            browser.close()


def test_score_reads_a_text_as_an_item(list_run, capsys):
    from rnnlm.evaluation.documents import evaluate_documents
    from rnnlm.runfolder import load_run

    (scored,) = run_json(capsys, "score", str(list_run), "--text", "kone", "--json")
    assert [t["text"] for t in scored["tokens"]] == ["", "k", "o", "n", "e"] and scored["predicted"] == 4
    run = load_run(list_run, device="cpu")
    ids = np.concatenate([[run.vocab.bos_id], run.tokenizer.encode("kone", run.vocab), [run.vocab.bos_id]])
    alone = evaluate_documents(run.model, ids, run.vocab, run.device)  # the same start; it scores the end too
    end = alone.loss * alone.tokens - scored["loss"] * 4
    assert 0 < end < 5  # what is left is the end's surprisal: a name may well end after "kone"
