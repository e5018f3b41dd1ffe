"""Byte-level BPE: exact round trips on any text, the library's own ids, streaming whole
characters, bits per character, a BPE run trained, resumed, evaluated and sampled, and the
refusals of bad options and of a tokenizer.json from a stranger."""

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import rnnlm.data.bpe as bpe
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.data.bpe import BYTE_CHARS, BpeTokenizer, load_bpe, safe_pieces, train_bpe
from rnnlm.data.prepare import prepare
from rnnlm.data.textdata import build_text_data
from rnnlm.errors import RnnlmError
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
from rnnlm.runfolder import load_run
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

from conftest import one_error_line
from test_resume import InterruptAt, rows_without_time

FEW = settings(max_examples=80, deadline=None)
CORPUS = ("The free spirit, said Nietzsche, is one who thinks otherwise than is expected of him.\n"
          "Übermensch, naïve café; 漢字 and 🙂 now and then.\n") * 40
NASTY = ["🙂🙃👩‍👩‍👧‍👦 flags 🇩🇪", "e\u0301 a\u0308\u0323 \u0301alone", "漢字かなカナ한국어", "line\r\nnext\rold\nnew",
         "  lead and trail  ", "\t\ttabs\u00a0nbsp\u2028sep\u3000", "xxbos xxunk xxpad as text", "\0nul", "",
         "a" * 3000, "\U0010ffff\ue000 private", "\ufeffbom"]


@pytest.fixture(scope="module")
def tokenizer() -> BpeTokenizer:
    return train_bpe([(True, CORPUS)], 400)


def library_ids(tokenizer: BpeTokenizer, text: str) -> list[int]:
    return tokenizer.hf.encode(text).ids


@FEW
@given(st.text(max_size=400))
def test_decode_of_encode_is_exact_and_the_ids_are_the_librarys(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids.tolist() == library_ids(tokenizer, text)
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", NASTY)
def test_nasty_texts_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids.tolist() == library_ids(tokenizer, text)
    assert tokenizer.decode(ids) == text
    assert 0 not in ids.tolist() and 1 not in ids.tolist()  # xxunk and xxpad never come from text


def test_every_byte_has_a_token_and_specials_hold_ids_0_to_2(tokenizer):
    assert tokenizer.vocab.itos[:3] == ["xxunk", "xxpad", "xxbos"]
    assert set(BYTE_CHARS.values()) <= set(tokenizer.vocab.itos)
    assert 259 < len(tokenizer.vocab) <= 400  # merges stop early when every word of the corpus is one token


@FEW
@given(st.text(max_size=300), st.integers(1, 40))
def test_text_cut_where_safe_pieces_cut_encodes_as_a_whole(tokenizer, text, block):
    pieces = [t for _, _, t in safe_pieces([(None, True, text)], block)]
    assert "".join(pieces) == text
    joined = [i for piece in pieces for i in library_ids(tokenizer, piece)]
    assert joined == library_ids(tokenizer, text)


def test_a_hash_collision_never_gives_wrong_ids(tokenizer, monkeypatch):
    """With every hash the same, segments of one length all collide: the check catches it."""
    fresh = BpeTokenizer(tokenizer.hf)
    monkeypatch.setattr(bpe, "hash_powers", lambda: (np.zeros(bpe.BLOCK + 1, np.uint64),) * 2)
    for text in [CORPUS[:2000], "ab cd ef gh", "the the the"]:
        assert fresh.encode(text).tolist() == library_ids(tokenizer, text)


def test_the_segment_cache_starts_afresh_when_full(tokenizer, monkeypatch):
    monkeypatch.setattr(bpe, "CACHE_SEGMENTS", 50)
    fresh = BpeTokenizer(tokenizer.hf)
    for text in [CORPUS, CORPUS[::-1], CORPUS]:
        assert fresh.encode(text).tolist() == library_ids(tokenizer, text)
    assert len(fresh.cache) <= 50 + len(set(CORPUS.split()))


def test_lower(tokenizer):
    lower = BpeTokenizer(tokenizer.hf, lower=True)
    assert lower.decode(lower.encode("The CAFÉ")) == "the café"


def test_merges_come_from_the_training_split_only(tmp_path):
    path, valid = tmp_path / "text.txt", tmp_path / "valid.txt"
    path.write_text("banana bandana " * 200)
    valid.write_text("zyzzyva " * 200)
    data = build_text_data(DataConfig(source=str(path), valid=str(valid), level="bpe", vocab_size=300))
    assert any("ana" in t for t in data.vocab.itos)
    assert not any("zy" in t for t in data.vocab.itos)
    assert data.tokenizer.decode(data.valid_ids) == "zyzzyva " * 200


def test_training_is_the_same_in_another_process(tokenizer):
    script = ("import sys; from rnnlm.data.bpe import train_bpe; "
              "sys.stdout.write(train_bpe([(True, sys.stdin.read())], 400).to_json())")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    other = subprocess.run([sys.executable, "-c", script], input=CORPUS, capture_output=True, text=True, env=env,
                           check=True).stdout
    assert other == tokenizer.to_json()


def library_trained(texts: list[str], vocab_size: int, min_freq: int = 1) -> str:
    """The tokenizer the library's trainer learns counting the words itself (its own pre-tokenizer)."""
    from tokenizers import pre_tokenizers, trainers

    hf = bpe.new_library_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=["xxunk", "xxpad", "xxbos"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(texts, trainer)
    return BpeTokenizer(hf).to_json()


@pytest.mark.parametrize("vocab_size, min_freq", [(400, 1), (1000, 1), (600, 3)])
def test_words_counted_by_rnnlm_learn_the_librarys_own_merges(vocab_size, min_freq):
    texts = [CORPUS, *NASTY, "  ".join(NASTY) * 5, "\n\n".join(reversed(NASTY)) * 3]
    mine = train_bpe([(True, t) for t in texts], vocab_size, min_freq)
    assert json.loads(mine.to_json())["pre_tokenizer"]["type"] == "ByteLevel"
    assert mine.to_json() == library_trained(texts, vocab_size, min_freq)


@FEW
@given(st.lists(st.text(max_size=200), min_size=1, max_size=4))
def test_words_counted_by_rnnlm_learn_the_librarys_own_merges_on_any_text(texts):
    assert train_bpe([(True, t) for t in texts], 300).to_json() == library_trained(texts, 300)


def test_information_separators_are_not_whitespace_to_the_pre_tokenizer():
    # U+001C..U+001F are whitespace to Python (str.isspace, re's \s) but not to the library's
    # regex, which joins "{\x1f" into one word: rnnlm must neither cut nor count there
    text = "{\x1f} a\x1c. \x1e\x1d" * 50
    tok = train_bpe([(True, text)], 300)
    assert BYTE_CHARS[ord("{")] + BYTE_CHARS[0x1F] in tok.vocab.stoi
    assert tok.to_json() == library_trained([text], 300)
    assert tok.encode(text).tolist() == library_ids(tok, text)
    assert tok.decode(tok.encode(text)) == text


def test_the_trainer_learns_from_the_first_train_chars_only(monkeypatch):
    monkeypatch.setattr(bpe, "TRAIN_CHARS", 1000)
    tok = train_bpe([(True, "ab " * 400), (True, "xy " * 400)], 300)
    assert "ab" in tok.vocab.stoi and "xy" not in tok.vocab.stoi and "Ġxy" not in tok.vocab.stoi


# Streaming whole characters.

def stream(decoder, ids) -> list[str]:
    return [decoder.feed(int(i)) for i in ids] + [decoder.flush()]


@FEW
@given(st.text(max_size=200))
def test_bpe_stream_gives_the_text_in_whole_characters(tokenizer, text):
    pieces = stream(tokenizer.stream_decoder(tokenizer.vocab), tokenizer.encode(text))
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces) or "\ufffd" in text


def test_a_character_split_over_tokens_comes_out_once_complete(tokenizer):
    ids = tokenizer.encode("🙃").tolist()  # not in the corpus: its four bytes over several tokens
    assert len(ids) >= 2 and all(tokenizer.piece(tokenizer.vocab.itos[i]) == "\ufffd" for i in ids)
    assert stream(tokenizer.stream_decoder(tokenizer.vocab), ids) == [""] * (len(ids) - 1) + ["🙃", ""]
    decoder = tokenizer.stream_decoder(tokenizer.vocab)
    assert decoder.feed(ids[0]) == "" and decoder.flush() == "\ufffd"  # never completed


# A run at BPE level: trained, resumed, evaluated, sampled.

def bpe_config(source, **train) -> RunConfig:
    return RunConfig(
        DataConfig(source=str(source), level="bpe", vocab_size=320),
        ModelConfig(cell="lstm", layers=2, emb=16, hidden=32, dropout=0.3),
        TrainConfig(**{"bs": 4, "bptt": 12, "epochs": 2, "lr": 1e-2, "seed": 3, "device": "cpu", **train}),
    )


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bpe") / "text.txt"
    path.write_text(CORPUS[:3000])
    return path


def test_a_bpe_run_resumes_exactly(text_file, tmp_path):
    config = bpe_config(text_file)
    straight = train(config, tmp_path / "straight", log=io.StringIO(), progress=False).folder
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "resumed", callbacks=[InterruptAt(1, 3)], log=io.StringIO(), progress=False)
    folder = resume(tmp_path / "resumed", log=io.StringIO(), progress=False).folder
    a, b = load_file(straight / "last.safetensors"), load_file(folder / "last.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert rows_without_time(folder) == rows_without_time(straight)
    assert (folder / "tokenizer.json").read_text() == (straight / "tokenizer.json").read_text()


@pytest.fixture(scope="module")
def bpe_run(text_file, tmp_path_factory) -> Path:
    return train(bpe_config(text_file, epochs=3), tmp_path_factory.mktemp("bperun") / "run", log=io.StringIO(),
                 progress=False).folder


def test_a_bpe_run_evaluates_in_bits_per_character(bpe_run, text_file):
    run = load_run(bpe_run, device="cpu")
    scores = evaluate_run(run)
    last = [json.loads(line) for line in (bpe_run / "metrics.jsonl").read_text().splitlines()][-1]
    assert scores.loss == pytest.approx(last["valid_loss"], rel=1e-5)
    text = text_file.read_text()
    valid = text[int(round(len(text) * 0.8)):]
    assert scores.text.characters == len(valid)
    assert scores.text.tokens == len(run.tokenizer.encode(valid))
    expected = scores.loss / math.log(2) * scores.text.tokens / len(valid)
    assert scores.bits_per_char == pytest.approx(expected) == pytest.approx(last["bpc"], rel=1e-5)
    assert scores.text.tokens < len(valid) / 1.5  # subwords: several characters a token
    assert scores.bits_per_char < scores.bits / 1.5
    on_file = evaluate_run(run, str(text_file))
    assert on_file.text.characters == len(text)


def test_a_bpe_run_samples_text(bpe_run):
    session = GenerationSession.load(bpe_run, device="cpu")
    texts = session.sample_texts("The free", 30, samples=2, seed=1, sampling=Sampling(temperature=0.8))
    assert all(t.startswith("The free") and len(t) > 40 for t in texts)
    assert session.sample_texts("The free", 30, samples=2, seed=1, sampling=Sampling(temperature=0.8)) == texts
    ids = [int(i) for i in session.encode_prompt("")[0]]
    assert session.tokenizer.decode(ids) == "\n"  # an empty prompt starts from a newline


def test_prepare_train_and_evaluate_at_bpe_level(text_file, tmp_path, capsys):
    from rnnlm.cli import main

    assert main(["prepare", str(text_file), "--level", "bpe", "--vocab-size", "300", "--out", str(tmp_path / "p")]) == 0
    meta = json.loads((tmp_path / "p" / "prepared.json").read_text())
    assert meta["level"] == "bpe" and meta["bpe_vocab_size"] == 300 and (tmp_path / "p" / "tokenizer.json").exists()
    assert sum(meta["split_characters"].values()) == len(text_file.read_text())
    tiny = ["--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "4", "--bptt", "8",
            "--epochs", "1", "--device", "cpu"]
    assert main(["train", str(tmp_path / "p"), *tiny, "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "tokenizer.json").read_text() == (tmp_path / "p" / "tokenizer.json").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["characters"] == meta["split_characters"]["valid"]
    assert scores["bits_per_char"] < scores["bits_per_token"]


def test_bits_per_character_at_char_and_word_level(tiny_run, tmp_path):
    run = load_run(tiny_run, device="cpu")
    scores = evaluate_run(run)
    assert scores.text.characters == scores.text.tokens  # one token a character
    assert scores.bits_per_char == pytest.approx(scores.bits)
    path = tmp_path / "w.txt"
    path.write_text("the cat  sat\n\non the mat . " * 50)
    data = build_text_data(DataConfig(source=str(path), level="word"))
    assert data.train_characters + data.valid_characters == len(path.read_text())  # spaces and newlines count


def test_an_old_run_folder_and_prepared_folder_still_load(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    del config["data"]["vocab_size"]
    (run / "config.json").write_text(json.dumps(config))
    assert load_run(run, device="cpu").tokenizer.level == "char"
    (tmp_path / "text.txt").write_text(CORPUS)
    prepare(DataConfig(source=str(tmp_path / "text.txt")), tmp_path / "p", progress=False)
    meta = json.loads((tmp_path / "p" / "prepared.json").read_text())
    del meta["split_characters"], meta["bpe_vocab_size"]
    (tmp_path / "p" / "prepared.json").write_text(json.dumps(meta))
    data = build_text_data(DataConfig(source=str(tmp_path / "p")))
    assert data.valid_characters is None and len(data.valid_ids) > 0


# Bad input: one line, exit status 2, nothing run or written.

@pytest.mark.parametrize("options,needle", [
    (["--level", "bpe", "--vocab-size", "258"], "--vocab-size must be in 259..65536"),
    (["--level", "bpe", "--vocab-size", "65537"], "--vocab-size must be in 259..65536"),
    (["--vocab-size", "512"], "--vocab-size needs --level bpe"),
    (["--level", "char", "--vocab-size", "512"], "--vocab-size needs --level bpe"),
    (["--level", "bpe", "--max-size", "100"], "--max-size does not apply at --level bpe"),
])
@pytest.mark.parametrize("command", ["train", "lr-find", "prepare"])
def test_bad_vocab_options_are_refused(text_file, tmp_path, capsys, options, needle, command):
    out = ["--out", str(tmp_path / "out")] if command != "lr-find" else []
    err = one_error_line([command, str(text_file), *options, *out], capsys)
    assert needle in err
    assert not (tmp_path / "out").exists()


def edit_tokenizer(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def swap_token(obj):
    vocab = obj["model"]["vocab"]
    token = next(t for t, i in vocab.items() if i == len(vocab) - 1)
    vocab["Ġzzzz"] = vocab.pop(token)


def huge(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(bpe.TOKENIZER_LIMIT + 1)


@pytest.mark.parametrize("damage,needle", [
    (huge, "too large for a tokenizer file"),
    (lambda p: p.write_text("{not json"), "damaged tokenizer file (not JSON"),
    (lambda p: p.write_text("[" * 10_000 + "]" * 10_000), "JSON nested too deep"),
    (lambda p: p.write_text("[1, 2]"), "not a tokenizers JSON file"),
    (lambda p: edit_tokenizer(p, lambda o: o["model"].update(type="WordPiece")), "model type 'WordPiece'"),
    (lambda p: edit_tokenizer(p, lambda o: o.update(pre_tokenizer={"type": "Whitespace"})), "not ByteLevel"),
    (lambda p: edit_tokenizer(p, lambda o: o["model"].update(dropout=0.5)), "BPE dropout"),
    (lambda p: edit_tokenizer(p, lambda o: o["model"]["vocab"].popitem()), "tokens, but config.json"),
    (lambda p: edit_tokenizer(p, swap_token), "its vocab differs from vocab.json"),
    (lambda p: edit_tokenizer(p, lambda o: o["model"]["merges"].append(["Ġqqq", "zz"])), "damaged tokenizer file"),
    (lambda p: edit_tokenizer(p, lambda o: o.update(added_tokens=[])), "added tokens must be exactly"),
    (lambda p: p.unlink(), "no tokenizer.json"),
    (lambda p: p.unlink() or os.mkfifo(p), "is a named pipe"),
])
def test_a_damaged_or_hostile_tokenizer_json_is_refused(bpe_run, tmp_path, capsys, damage, needle):
    run = shutil.copytree(bpe_run, tmp_path / "run")
    damage(run / "tokenizer.json")
    for command in (["generate", str(run), "-n", "5"], ["evaluate", str(run)], ["train", "--resume", str(run)]):
        err = one_error_line(command, capsys)
        assert needle in err and "tokenizer" in err
    assert capsys.readouterr().out == ""


def test_a_vocab_json_that_disagrees_with_tokenizer_json_is_refused(bpe_run, tmp_path):
    run = shutil.copytree(bpe_run, tmp_path / "run")
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["itos"][-1] = "Ġzzzz"
    (run / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(RnnlmError, match="its vocab differs from vocab.json"):
        load_run(run, device="cpu")


def test_load_bpe_checks_the_vocab_it_is_given(bpe_run):
    run = load_run(bpe_run, device="cpu")
    assert load_bpe(bpe_run / "tokenizer.json", run.vocab, False) == run.tokenizer
