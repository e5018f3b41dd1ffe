"""Runs that start from a trained one (``--init-from``): the base's weights, architecture and
tokenizer, its vocab never silently wrong, the base read-only, chains, and bad input refused."""

import hashlib
import io
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnlm.cli import main
from rnnlm.config import DataConfig, FineTuneConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.data.vocab import Vocab
from rnnlm.errors import SettingError
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.generation.session import GenerationSession
from rnnlm.runfolder import load_run
from rnnlm.train.layers import grown_weights, layer_groups
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

from conftest import one_error_line
from test_resume import InterruptAt, rows_without_time

BASE_TEXT = "the cat sat on the mat. the dog sat on the log. a bird sat on the tree. " * 40
NEW_TEXT = "Zoe, the zebra, ate zucchini at the zoo; Zak the yak ate yams! " * 40  # Z, y, !, ... are new


def model_config() -> ModelConfig:
    return ModelConfig(cell="lstm", layers=2, emb=16, hidden=32, dropout=0.1)


def base_config(source) -> RunConfig:
    return RunConfig(DataConfig(source=str(source)), model_config(),
                     TrainConfig(bs=8, bptt=16, epochs=5, lr=1e-2, seed=0, device="cpu"))


def fine_tune_config(source, base, **fine_tune) -> RunConfig:
    """As a caller writes it: the new text, the base, and settings left at their defaults."""
    return RunConfig(DataConfig(source=str(source)), ModelConfig(), TrainConfig(epochs=1, seed=1, device="cpu"),
                     fine_tune=FineTuneConfig(init_from=str(base), **fine_tune))


def quiet(config, out, **kw):
    return train(config, out, log=io.StringIO(), progress=False, **kw)


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("texts")
    (root / "base.txt").write_text(BASE_TEXT, encoding="utf-8")
    (root / "new.txt").write_text(NEW_TEXT, encoding="utf-8")
    return root / "base.txt", root / "new.txt"


@pytest.fixture(scope="module")
def base_run(texts, tmp_path_factory) -> Path:
    return quiet(base_config(texts[0]), tmp_path_factory.mktemp("base") / "base").folder


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file of a folder (the lock too): the SHA-256 of its bytes and its modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_fine_tuned_run_starts_from_the_base_and_records_it(base_run, texts, tmp_path):
    log = io.StringIO()
    result = train(fine_tune_config(texts[1], base_run), tmp_path / "ft", log=log, progress=False)
    said = log.getvalue()
    assert f"init_from {base_run}" in said and "its weights, architecture and tokenizer" in said
    assert "kinds of token the base's vocab lacks" in said and "read as xxunk; extend_vocab gives" in said
    run, base = load_run(result.folder), load_run(base_run)
    # the base's architecture, not ModelConfig()'s, with the fine-tuning dropout (the base's 0.1 is lower)
    assert run.config.model == replace(base.config.model, dropout=0.5)
    assert run.vocab == base.vocab  # unknown tokens read as xxunk: the vocab is the base's
    obj = json.loads((result.folder / "config.json").read_text())
    ft = obj["fine_tune"]
    assert ft["init_from"] == str(base_run) and ft["base_name"] == "base" and ft["base_vocab"] == len(base.vocab)
    assert ft["base_data"] == str(texts[0]) and ft["base_chain"] == [] and ft["unknown_tokens"] > 0
    assert len(ft["base_weights"]) == 64
    assert run.config.train.lr == 1e-2  # the base's peak rate
    card = run.card()
    assert card["base"] == "base" and card["base_data"] == "base.txt" and card["data"] == "new.txt"
    assert load_run(base_run).card()["base"] is None


def test_the_model_starts_from_the_base_weights_and_grows_rows_as_the_mean(base_run):
    base = load_file(base_run / "model.safetensors")
    grown = grown_weights(base, len(load_run(base_run).vocab) + 3)
    for name in ("embedding.weight", "head.weight", "head.bias"):
        old = base[name]
        assert torch.equal(grown[name][: len(old)], old), name  # every old id keeps its row
        for row in grown[name][len(old):]:
            assert torch.allclose(row, old.mean(dim=0)), name
    assert all(torch.equal(grown[k], base[k]) for k in base if k not in ("embedding.weight", "head.weight",
                                                                         "head.bias"))


def test_extend_vocab_adds_the_new_tokens_after_the_old_ids(base_run, texts, tmp_path):
    log = io.StringIO()
    config = fine_tune_config(texts[1], base_run, extend_vocab=True)
    result = train(config, tmp_path / "ft", log=log, progress=False, callbacks=[])
    base_vocab, vocab = load_run(base_run).vocab, load_run(result.folder).vocab
    assert vocab.itos[: len(base_vocab)] == base_vocab.itos and len(vocab) > len(base_vocab)
    assert {"Z", "y", "!"} <= set(vocab.itos[len(base_vocab):]) and "Z" not in base_vocab.stoi
    assert f"the vocab grows from {len(base_vocab)} to {len(vocab)} tokens" in log.getvalue()
    new_ids = result.data.train_ids
    assert (new_ids == vocab.stoi["Z"]).any() and not (new_ids == vocab.unk_id).any()


def test_the_rows_of_new_tokens_start_as_the_mean_in_the_trained_model(base_run, texts, tmp_path):
    """Trained with a rate too small to move anything, the new run's weights are the grown base's."""
    config = fine_tune_config(texts[1], base_run, extend_vocab=True)
    config = replace(config, train=replace(config.train, lr=1e-30), given=frozenset({"lr"}))
    folder = quiet(config, tmp_path / "ft").folder
    base, tuned = load_file(base_run / "model.safetensors"), load_file(folder / "last.safetensors")
    expected = grown_weights(base, len(load_run(folder).vocab))
    for name in expected:
        assert torch.allclose(tuned[name], expected[name], atol=1e-6), name


def test_fine_tuning_beats_training_from_scratch_on_a_similar_text(base_run, texts, tmp_path):
    """The same short training on a new text of the base's kind: from the base it ends far lower."""
    similar = tmp_path / "similar.txt"
    similar.write_text("the cat sat on the log. the dog sat on the tree. a bird sat on the mat. " * 8)
    scratch = RunConfig(DataConfig(source=str(similar)), model_config(),
                        TrainConfig(bs=4, bptt=16, epochs=1, lr=1e-2, seed=1, device="cpu"))
    tuned = replace(scratch, fine_tune=FineTuneConfig(init_from=str(base_run)), given=frozenset())
    from_scratch = quiet(scratch, tmp_path / "scratch").best["valid_loss"]
    from_base = quiet(tuned, tmp_path / "tuned").best["valid_loss"]
    assert from_base < 0.6 * from_scratch, (from_base, from_scratch)


def test_the_base_is_never_written(base_run, texts, tmp_path, capsys):
    before = snapshot(base_run)
    quiet(fine_tune_config(texts[1], base_run, extend_vocab=True, freeze=0.2, layer_decay=2.6), tmp_path / "ft")
    for argv in (["--hidden", "64"], ["--out", str(base_run)], ["--out", str(base_run / "inside")],
                 ["--extend-vocab", "--max-size", "5"]):
        one_error_line(["train", str(texts[1]), "--init-from", str(base_run), "--epochs", "1", *argv], capsys)
    assert snapshot(base_run) == before and len(before) >= 5  # config, vocab, weights, metrics, state...
    assert not (base_run / "inside").exists()


def test_a_chain_of_runs_records_every_base(base_run, texts, tmp_path):
    first = quiet(fine_tune_config(texts[1], base_run, extend_vocab=True), tmp_path / "first").folder
    second = quiet(fine_tune_config(texts[0], first), tmp_path / "second").folder
    run = load_run(second)
    ft = run.config.fine_tune
    assert ft.init_from == str(first) and ft.base_chain == [str(base_run)] and ft.base_data == str(texts[1])
    assert run.card()["base"] == "first" and run.card()["base_chain"] == ["base"]
    assert run.vocab == load_run(first).vocab  # the extended vocab carries on


def test_model_and_tokenizer_settings_that_contradict_the_base_are_refused(base_run, texts):
    for field, section, value in (("hidden", "model", 64), ("cell", "model", "gru"), ("tie", "model", True),
                                  ("level", "data", "word"), ("lower", "data", True)):
        config = fine_tune_config(texts[1], base_run)
        config = replace(config, **{section: replace(getattr(config, section), **{field: value})})
        with pytest.raises(SettingError) as refused:
            quiet(config, None)
        assert refused.value.field == field and "contradicts the base run" in str(refused.value)
    same = replace(fine_tune_config(texts[1], base_run), model=model_config(), given=frozenset({"hidden", "cell"}))
    with pytest.raises(SettingError, match="min_freq"):  # the same architecture given is fine: the next check speaks
        quiet(replace(same, data=replace(same.data, min_freq=2), given=frozenset({"hidden", "min_freq"})), None)


@pytest.mark.parametrize("argv,says", [
    (["--init-from", "{tmp}/nothing"], "--init-from {tmp}/nothing: no such run folder"),
    (["--init-from", "{tmp}"], "not a run folder (no config.json)"),
    (["--init-from", "{base}", "--model", "gru"], "--model gru contradicts the base run"),
    (["--init-from", "{base}", "--lower"], "--lower contradicts the base run {base} (trained without --lower)"),
    (["--init-from", "{base}", "--extend-vocab", "--max-size", "10"], "more than --max-size 10"),
    (["--init-from", "{base}", "--min-freq", "2"], "--min-freq builds a vocab"),
    (["--extend-vocab"], "--extend-vocab needs --init-from"),
    (["--layer-decay", "2"], "--layer-decay needs --init-from"),
    (["--init-from", "{base}", "--freeze", "1"], "--freeze must be in [0, 1)"),
    (["--init-from", "{base}", "--resume", "{base}"], "--init-from (only --max-minutes"),
])
def test_bad_input_is_one_line_and_writes_nothing(base_run, texts, tmp_path, capsys, argv, says):
    argv = [a.format(tmp=tmp_path, base=base_run) for a in argv]
    line = one_error_line(["train", str(texts[1]), "--epochs", "1", "--out", str(tmp_path / "out"), *argv], capsys)
    assert says.format(tmp=tmp_path, base=base_run) in line
    assert not (tmp_path / "out").exists()


def test_a_damaged_or_unfinished_base_is_refused(base_run, texts, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(base_run, damaged)
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    argv = ["train", str(texts[1]), "--epochs", "1", "--out", str(tmp_path / "out"), "--init-from"]
    assert "damaged or not a safetensors file" in one_error_line(argv + [str(damaged)], capsys)
    (damaged / "model.safetensors").write_bytes(weights)
    (damaged / "vocab.json").write_text('{"format": "rnnlm-vocab", "version": 1, "itos": ["xxunk"]}')
    assert "vocab must start with the special tokens" in one_error_line(argv + [str(damaged)], capsys)
    with pytest.raises(TrainingInterrupted):
        quiet(base_config(texts[0]), tmp_path / "stopped", callbacks=[InterruptAt(1, 3)])
    line = one_error_line(argv + [str(tmp_path / "stopped")], capsys)
    assert "its training stopped before its end (after epoch 1 of its 5); finish it first (--resume" in line
    assert not (tmp_path / "out").exists()


def test_a_base_in_training_now_is_refused(base_run, texts, tmp_path, capsys):
    import fcntl

    fd = os.open(base_run / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        line = one_error_line(["train", str(texts[1]), "--init-from", str(base_run), "--out", str(tmp_path / "o")],
                              capsys)
    finally:
        os.close(fd)
    assert "is training in this run folder now" in line and not (tmp_path / "o").exists()


def test_a_text_that_shares_no_token_with_the_base_is_refused(base_run, tmp_path, capsys):
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("ЖЩИЛ ЛИЖ\nЩЩЖ " * 200, encoding="utf-8")
    line = one_error_line(["train", str(foreign), "--init-from", str(base_run), "--extend-vocab",
                           "--out", str(tmp_path / "o")], capsys)
    assert "shares no token with the base run" in line and not (tmp_path / "o").exists()


def test_layers_learn_at_discriminative_rates_and_the_top_alone_first(base_run, texts, tmp_path):
    config = fine_tune_config(texts[1], base_run, freeze=0.5, layer_decay=4.0)
    config = replace(config, train=replace(config.train, epochs=2, schedule="constant"))
    result = quiet(config, tmp_path / "ft")
    optimizer = result.learner.optimizer
    rates = [group["lr"] for group in optimizer.param_groups]
    assert rates == pytest.approx([rates[0], rates[0] / 4, rates[0] / 16])
    assert result.learner.freeze_until == result.learner.batches_per_epoch  # half of two epochs

    frozen = replace(config, train=replace(config.train, epochs=1), fine_tune=replace(config.fine_tune, freeze=0.99))
    half = load_file(quiet(frozen, tmp_path / "frozen").folder / "last.safetensors")
    base = load_file(base_run / "model.safetensors")
    assert all(torch.equal(half[k], base[k]) for k in base if k.startswith("rnn."))  # the recurrent layers waited
    assert not torch.equal(half["head.weight"], base["head.weight"])


def test_a_fine_tuned_run_resumes_exactly_mid_freeze(base_run, texts, tmp_path):
    config = fine_tune_config(texts[1], base_run, extend_vocab=True, freeze=0.75, layer_decay=2.6)
    config = replace(config, train=replace(config.train, epochs=2))
    straight = quiet(config, tmp_path / "straight").folder
    with pytest.raises(TrainingInterrupted):
        quiet(config, tmp_path / "resumed", callbacks=[InterruptAt(0, 4)])
    folder = resume(tmp_path / "resumed", log=io.StringIO(), progress=False).folder
    a, b = load_file(straight / "last.safetensors"), load_file(folder / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rows_without_time(folder) == rows_without_time(straight)


def test_evaluate_generate_and_budget_work_on_a_fine_tuned_run(base_run, texts, tmp_path, capsys):
    folder = quiet(fine_tune_config(texts[1], base_run, extend_vocab=True), tmp_path / "ft").folder
    scores = evaluate_run(load_run(folder))
    assert 0 < scores.loss < 10
    text = GenerationSession.load(folder).sample_texts("Zoe", 30, seed=1)[0]
    assert text.startswith("Zoe") and len(text) > 3
    assert main(["train", str(texts[1]), "--init-from", str(base_run), "--budget", "30s", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan for --budget 30s" in out and "lstm, 2 layers of 32" in out and "nothing written" in out


def test_old_and_plain_run_configs_do_not_change(base_run, tmp_path):
    obj = json.loads((base_run / "config.json").read_text())
    assert "fine_tune" not in obj  # a plain run's config.json is as it was
    tuned = RunConfig(DataConfig(), ModelConfig(), TrainConfig(), fine_tune=FineTuneConfig(init_from="x"))
    plain = {k: v for k, v in tuned.to_dict().items() if k in ("data", "model", "train")}
    assert RunConfig.from_dict(plain).fine_tune is None  # what an rnnlm without fine-tuning reads of it
    assert RunConfig.from_dict(tuned.to_dict()).fine_tune == tuned.fine_tune


def test_a_bpe_base_keeps_its_merges(texts, tmp_path):
    config = base_config(texts[0])
    config = replace(config, data=replace(config.data, level="bpe", vocab_size=300),
                     train=replace(config.train, epochs=1))
    base = quiet(config, tmp_path / "bpe").folder
    log = io.StringIO()
    folder = train(fine_tune_config(texts[1], base), tmp_path / "ft", log=log, progress=False).folder
    assert "BPE merges are kept" in log.getvalue()
    assert (folder / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert load_run(folder).vocab == Vocab.load(base / "vocab.json")
    with pytest.raises(SettingError, match="byte-level BPE") as refused:
        quiet(fine_tune_config(texts[1], base, extend_vocab=True), tmp_path / "x")
    assert refused.value.field == "extend_vocab"


def test_layer_groups_hold_every_parameter_once(base_run):
    model = load_run(base_run).model
    groups = layer_groups(model, 2.0)
    held = [id(p) for g in groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in model.parameters())
    assert [g["lr_scale"] for g in groups] == [1.0, 0.5, 0.25]


def test_served_a_fine_tuned_run_shows_its_base_and_completes(base_run, texts, tmp_path):
    from tests.serving import ServerProcess, get_json, post

    folder = quiet(fine_tune_config(texts[1], base_run, extend_vocab=True), tmp_path / "ft").folder
    server = ServerProcess(str(folder), "--threads", "1")
    try:
        status, models = get_json(server.port, "/v1/models")
        card = models["data"][0]["card"]
        assert status == 200 and card["base"] == "base" and card["base_data"] == "base.txt"
        status, done = post(server.port, "/v1/completions", {"model": "ft", "prompt": "Zoe", "max_tokens": 20,
                                                             "seed": 1})
        assert status == 200 and len(done["choices"][0]["text"]) > 0
    finally:
        server.stop()


def test_the_fine_tuning_defaults_and_the_settings_given(base_run, texts):
    """The base's rate and at least 0.5 dropout, unless given; the base's batch."""
    from rnnlm.train.base import adopt_base, read_base

    base = read_base(str(base_run))
    config = fine_tune_config(texts[1], base_run)
    adopted = adopt_base(config, base)
    assert adopted.model.dropout == 0.5 and adopted.train.lr == 1e-2
    assert adopted.train.bs == 8 and adopted.train.bptt == 16
    given = replace(config, model=replace(config.model, dropout=0.2), train=replace(config.train, lr=1e-4),
                    given=frozenset({"dropout", "lr"}))
    adopted = adopt_base(given, base)
    assert adopted.model.dropout == 0.2 and adopted.train.lr == 1e-4
