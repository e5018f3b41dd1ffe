import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import rnnlm.data.prepare as prepare_module
from rnnlm.config import DataConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.prepare import META, open_prepared, prepare
from rnnlm.data.textdata import build_text_data
from rnnlm.errors import RnnlmError
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.runfolder import load_run
from rnnlm.train.callbacks import Callback
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

from conftest import SHARED_DATA, tiny_config

DOCS = {
    "a.txt": "\ufeffÜbermensch und Übermenschen: ΟΔΥΣΣΕΥΣ sails on.\r\nThe café's naïve owner — İstanbul.\r\n",
    "b.txt": "Words, words; words!\tEmoji 🙂 and 漢字 too.\nAnother   line with  extra spaces.\n" * 3,
    "c.txt": "lastdocumentwithoneveryveryverylongword and then a few more words.\n",
}


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    return folder


def assert_same_data(source, prepared_folder, **settings):
    expected = build_text_data(DataConfig(source=str(source), **settings))
    got = build_text_data(DataConfig(source=str(prepared_folder)))
    assert got.vocab == expected.vocab
    assert got.tokenizer.level == expected.tokenizer.level
    assert got.tokenizer.lower == expected.tokenizer.lower
    assert got.tokenizer == expected.tokenizer or got.tokenizer.level != "bpe"
    assert (got.train_characters, got.valid_characters) == (expected.train_characters, expected.valid_characters)
    for mine, theirs in ((got.train_ids, expected.train_ids), (got.valid_ids, expected.valid_ids)):
        assert isinstance(mine, np.memmap) or len(mine) == 0
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(mine), theirs)


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("chunk_bytes", [3, 11, 1 << 20])
def test_prepared_ids_equal_in_memory_encoding(corpus, tmp_path, level, lower, chunk_bytes):
    # valid_frac 0.13 puts the cut inside the long word of c.txt: at word level it moves to the space.
    data = dict(level=level, lower=lower, valid_frac=0.13)
    prepare(DataConfig(source=str(corpus), **data), tmp_path / "p", chunk_bytes=chunk_bytes, progress=False)
    assert_same_data(corpus, tmp_path / "p", **data)


def test_cut_inside_a_word_moves_to_the_next_space_at_word_level(corpus, tmp_path):
    prepare(DataConfig(source=str(corpus), level="word", valid_frac=0.13), tmp_path / "p", chunk_bytes=5,
            progress=False)
    data = build_text_data(DataConfig(source=str(tmp_path / "p")))
    assert data.vocab.decode_tokens(data.valid_ids[:2]) == ["xxbos", "and"]
    assert data.vocab.itos[data.train_ids[-1]] == "lastdocumentwithoneveryveryverylongword"


def test_explicit_valid_file_min_freq_and_builtin(corpus, tmp_path):
    data = dict(level="word", min_freq=2, valid=str(corpus / "c.txt"))
    prepare(DataConfig(source=str(corpus / "b.txt"), **data), tmp_path / "v", chunk_bytes=8, progress=False)
    assert_same_data(corpus / "b.txt", tmp_path / "v", **data)
    prepare(DataConfig(source="human-numbers"), tmp_path / "h", progress=False)
    assert_same_data("human-numbers", tmp_path / "h")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.text(alphabet="ab Σσ\n\r\tİ🙂é.,", max_size=40), min_size=1, max_size=3),
    level=st.sampled_from(["char", "word"]),
    lower=st.booleans(),
    chunk_bytes=st.integers(1, 16),
    valid_frac=st.floats(0.05, 0.95),
)
def test_prepare_matches_in_memory_on_any_text(docs, level, lower, chunk_bytes, valid_frac):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for i, doc in enumerate(docs):
            (folder / f"{i}.txt").write_bytes(doc.encode("utf-8"))
        data = dict(level=level, lower=lower, valid_frac=valid_frac)
        try:
            expected = build_text_data(DataConfig(source=str(folder), **data))
        except RnnlmError:
            with pytest.raises(RnnlmError):
                prepare(DataConfig(source=str(folder), **data), Path(tmp) / "p", chunk_bytes=chunk_bytes,
                        progress=False)
            assert not (Path(tmp) / "p").exists()
            return
        if len(expected.train_ids) < 2:
            return
        prepare(DataConfig(source=str(folder), **data), Path(tmp) / "p", chunk_bytes=chunk_bytes, progress=False)
        assert_same_data(folder, Path(tmp) / "p", **data)


def test_ids_use_the_smallest_dtype_and_the_meta_tells_the_split(tmp_path):
    source = tmp_path / "cjk.txt"
    source.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 2, encoding="utf-8")
    meta = prepare(DataConfig(source=str(source)), tmp_path / "p", progress=False)
    assert meta["dtype"] == "uint16"
    assert os.path.getsize(tmp_path / "p" / "ids.bin") == 2 * 600
    assert meta["splits"] == {"train": [0, 480], "valid": [480, 600]}
    assert json.loads((tmp_path / "p" / META).read_text())["tokens"] == {"train": 480, "valid": 120}


def test_batches_read_slices_of_the_memory_map_not_a_copy(tmp_path, tiny_file):
    prepare(DataConfig(source=str(tiny_file)), tmp_path / "p", progress=False)
    corpus = open_prepared(tmp_path / "p")
    batches = StreamBatches(corpus.train_ids, bs=4, bptt=8)
    assert isinstance(batches.inputs, np.memmap) and isinstance(batches.targets, np.memmap)
    assert np.shares_memory(batches.inputs, corpus.train_ids)
    x, y = batches.batch(1)
    np.testing.assert_array_equal(x.numpy()[0], corpus.train_ids[8:16])
    np.testing.assert_array_equal(y.numpy()[0], corpus.train_ids[9:17])


def test_train_and_evaluate_from_a_prepared_folder(tmp_path, tiny_file):
    prepare(DataConfig(source=str(tiny_file), lower=True), tmp_path / "p", progress=False)
    trained = train(tiny_config(str(tmp_path / "p"), epochs=2), tmp_path / "run", log=io.StringIO(), progress=False)
    folder, learner, data = trained.folder, trained.learner, trained.data
    assert isinstance(data.train_ids, np.memmap)
    run = load_run(folder)
    assert run.config.data.lower and run.config.data.level == "char"
    assert run.config.data.source == str((tmp_path / "p").resolve())
    assert evaluate_run(run).loss == pytest.approx(learner.history[-1]["valid_loss"], rel=1e-5)
    assert evaluate_run(run, str(tmp_path / "p")).loss == pytest.approx(learner.history[-1]["valid_loss"], rel=1e-5)
    assert learner.history[-1]["valid_loss"] < 0.5 * np.log(len(run.vocab))


@pytest.mark.parametrize("settings,message", [
    (dict(level="word"), "prepared at char level"),
    (dict(lower=True), "prepared without lower"),
    (dict(valid="other.txt"), "valid cannot change"),
])
def test_settings_that_contradict_the_prepared_folder_are_refused(tmp_path, tiny_file, settings, message):
    prepare(DataConfig(source=str(tiny_file)), tmp_path / "p", progress=False)
    with pytest.raises(RnnlmError, match=message):
        build_text_data(DataConfig(source=str(tmp_path / "p"), **settings))


def truncate_ids(folder):
    with open(folder / "ids.bin", "r+b") as f:
        f.truncate(100)


def poke_an_id_beyond_the_vocab(folder):
    with open(folder / "ids.bin", "r+b") as f:
        f.seek(50)
        f.write(b"\xff")


def edit_meta(**changes):
    def edit(folder):
        meta = json.loads((folder / META).read_text())
        (folder / META).write_text(json.dumps({**meta, **changes}))
    return edit


@pytest.mark.parametrize("damage,message", [
    (truncate_ids, "ids.bin is 100 bytes"),
    (poke_an_id_beyond_the_vocab, "ids beyond the"),
    (edit_meta(dtype="object"), "level, lower or dtype"),
    (edit_meta(level="byte"), "level, lower or dtype"),
    (edit_meta(splits={"train": [0, 5000], "valid": [10, 20]}), "split offsets"),
    (edit_meta(splits={"train": [0, "9" * 5000], "valid": [1, 2]}), "split offsets"),
    (edit_meta(vocab_size=3), "tokens as uint8"),
])
def test_damaged_folder_is_refused(tmp_path, tiny_file, damage, message):
    prepare(DataConfig(source=str(tiny_file)), tmp_path / "p", progress=False)
    damage(tmp_path / "p")
    with pytest.raises(RnnlmError, match=message):
        open_prepared(tmp_path / "p")


def test_meta_that_is_not_json_is_refused(tmp_path, tiny_file):
    prepare(DataConfig(source=str(tiny_file)), tmp_path / "p", progress=False)
    (tmp_path / "p" / META).write_text("[" * 100_000)
    with pytest.raises(RnnlmError, match="damaged prepared corpus"):
        open_prepared(tmp_path / "p")


def test_out_must_be_new_or_empty(tmp_path, tiny_file):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(RnnlmError, match="not empty"):
        prepare(DataConfig(source=str(tiny_file)), tmp_path / "full", progress=False)
    (tmp_path / "empty").mkdir()
    prepare(DataConfig(source=str(tiny_file)), tmp_path / "empty", progress=False)
    assert (tmp_path / "empty" / META).is_file()


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, tiny_file, monkeypatch, failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(prepare_module.Vocab, "save", fail)
    with pytest.raises(RnnlmError if isinstance(failure, OSError) else KeyboardInterrupt):
        prepare(DataConfig(source=str(tiny_file)), tmp_path / "out" / "p", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(not (SHARED_DATA / "nietzsche.txt").exists(), reason="../shared/data/nietzsche.txt not present")
def test_nietzsche_in_lesson_settings(tmp_path):
    data = dict(lower=True, min_freq=3)
    source = SHARED_DATA / "nietzsche.txt"
    prepare(DataConfig(source=str(source), **data), tmp_path / "p", chunk_bytes=100_000, progress=False)
    assert_same_data(source, tmp_path / "p", **data)


class InterruptInEpoch2(Callback):
    def on_batch_end(self, learner, loss):
        if (learner.epoch, learner.batch) == (1, 3):
            learner.interrupt()


def test_a_run_on_a_prepared_folder_resumes_exactly(tmp_path, tiny_file):
    prepare(DataConfig(source=str(tiny_file), lower=True), tmp_path / "p", progress=False)
    config = tiny_config(str(tmp_path / "p"), epochs=2)
    straight = train(config, tmp_path / "straight", log=io.StringIO(), progress=False).folder
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "resumed", callbacks=[InterruptInEpoch2()], log=io.StringIO(), progress=False)
    resumed = resume(tmp_path / "resumed", log=io.StringIO(), progress=False)
    folder, data = resumed.folder, resumed.data
    assert isinstance(data.train_ids, np.memmap)
    a, b = load_file(straight / "last.safetensors"), load_file(folder / "last.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)
