"""Tiny versions of every lesson learn: small models, a small text, short recipes, fixed seeds."""

import io
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from rnnlm.lessons import LESSONS, LESSONS_LIST, LessonContext, run_lesson, run_lessons

from conftest import TINY_TEXT

TRAINED = [lesson for lesson in LESSONS_LIST if lesson.kind == "train"]
TINY_BS = {"nietzsche-triples": 16, "nietzsche-windows": 64, "nietzsche-sequences": 16, "nietzsche-streams": 8}
TINY_EPOCHS = {"nietzsche-triples": 4, "nietzsche-windows": 4, "nietzsche-sequences": 8,
               "nietzsche-streams": 4, "human-numbers-last": 1, "human-numbers-streams": 4}


def tiny(lesson):
    """The lesson with a small model and batch, its recipe shortened and, where its rates are too
    low to learn in a few hundred steps, raised (every phase by the same factor)."""
    kwargs = dict(lesson.model_kwargs)
    if lesson.data.startswith("nietzsche"):
        kwargs.update(n_fac=8, n_hidden=32)
    else:
        kwargs.update(nh=32)
    factor = max(1.0, 3e-3 / max(p.lr for p in lesson.recipe.phases))
    faster = replace(lesson.recipe, phases=tuple(replace(p, lr=p.lr * factor) for p in lesson.recipe.phases))
    prime = lesson.prime if len(lesson.prime) < 8 else "the cat "  # characters of the tiny text
    return replace(lesson, bs=TINY_BS.get(lesson.data, lesson.bs), model_kwargs=kwargs, scalable=True,
                   recipe=faster, sample_n=min(lesson.sample_n, 20), prime=prime)


@pytest.fixture
def tiny_text(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("lesson", TRAINED, ids=lambda lesson: lesson.name)
def test_tiny_lesson_learns(lesson, tiny_text):
    small = tiny(lesson)
    scale = TINY_EPOCHS[lesson.data] / lesson.recipe.epochs
    log = io.StringIO()
    result = run_lesson(small, LessonContext(nietzsche=tiny_text, scale=scale, seed=0, device="cpu",
                                             log=log, progress=False))
    last = result.rows[-1]
    assert last["train_loss"] < 0.6 * result.first_loss
    assert last["valid_loss"] < 0.7 * result.first_loss
    assert result.metric in last and result.value == last[result.metric]
    if small.sample_n:
        assert result.sample.startswith(small.prime) and len(result.sample) > len(small.prime) + 10
    printed = log.getvalue().splitlines()
    header = next(line for line in printed if line.split()[:1] == ["epoch"])
    assert header.split() == ["epoch", "lr", "train_loss", "valid_loss", "accuracy", "time"]
    assert sum(len(line.split()) == 6 and line.split()[0][0].isdigit() for line in printed) == len(result.rows)
    assert f"{lesson.name}: {lesson.metric}" in printed[-1]


def test_lstm_saves_the_weights_at_each_cycle_end(tiny_text, tmp_path):
    """2 epochs, then SGDR over 15 with cycle_mult 2: cycles of 1, 2, 4 and 8 epochs, 4 saves."""
    small = tiny(LESSONS["CharSeqStatefulLSTM"])
    ctx = LessonContext(nietzsche=tiny_text, scale=0.2, seed=0, device="cpu", out=tmp_path / "out",
                        log=io.StringIO(), progress=False)
    result = run_lesson(small, ctx)
    assert [p.rsplit("/", 1)[-1] for p in result.checkpoints] == [f"cycle_{k}.safetensors" for k in (1, 2, 3, 4)]
    model = small.model(58, **small.model_kwargs)
    weights = [load_file(p) for p in result.checkpoints]
    assert set(weights[0]) == set(model.state_dict())
    assert not torch.equal(weights[0]["l_out.weight"], weights[-1]["l_out.weight"])
    assert result.rows[-1]["lr"] < 1e-4  # the last cycle annealed all the way down


def test_run_lessons_writes_results_after_each_lesson(tmp_path):
    ctx = LessonContext(seed=0, out=tmp_path, log=io.StringIO())
    results = run_lessons([LESSONS["rnn-shapes"], LESSONS["cells"]], ctx)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in saved["results"]] == ["rnn-shapes", "cells"] == [r.name for r in results]
    assert saved["results"][0]["value"] == "4/4"
    assert float(saved["results"][1]["value"]) < 1e-5
    markdown = (tmp_path / "results.md").read_text()
    assert "| rnn-shapes | shapes as the seed | 4/4 | 4/4 |" in markdown
