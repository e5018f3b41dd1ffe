"""rnnlm novelty: the longest copied substring and the shared n-grams, checked against answers
found by brute force, across chunk seams, documents, levels, lower-casing and prepared folders."""

import io
import json
import random
import shutil
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnlm.inspect.novelty as novelty_module
from rnnlm.cli import main
from rnnlm.config import DataConfig
from rnnlm.data.corpus import load_corpus
from rnnlm.data.prepare import prepare
from rnnlm.data.tokenizers import WORD_RE, WordTokenizer, code_points
from rnnlm.errors import RnnlmError
from rnnlm.inspect.hashing import HashIndex
from rnnlm.inspect.novelty import novelty, novelty_for_run, novelty_for_samples
from rnnlm.inspect.trainingtext import training_text, word_spans

from conftest import SHARED_DATA, TINY, TINY_TEXT, one_error_line

WORDS = ("the", "a", "will", "power", "truth", "of", "to", "is", "and", "Spirit", "we", "free", "café", "naïve")


def english_like(seed: int, words: int) -> str:
    """Text that does not repeat itself: random words, punctuation and lines."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + rng.choice(["", "", "", ",", ".", ".\n", ";"]) for _ in range(words))


def random_letters(seed: int, length: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(length))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(english_like(0, 20_000), encoding="utf-8")
    return path


def train_part(path, level="char", valid_frac=0.2):
    return load_corpus(str(path), valid_frac, None, level).train


def test_a_slice_of_the_training_text_is_found_whole(corpus):
    train = train_part(corpus)[0]
    text = train[5_000:5_700]
    report = novelty(text, training_text(DataConfig(source=str(corpus), level="char"), chunk_bytes=4096),
                     progress=False)
    assert report.longest.length == len(text) and report.longest.text == text and report.longest.start == 0
    where = report.longest.training
    assert where["document"] == str(corpus)
    assert train[where["char"] : where["char"] + len(text)] == text
    assert where["line"] == train[: where["char"]].count("\n") + 1
    assert [(s.n, s.found, s.total, s.fraction) for s in report.shared] == [
        (n, len(text) - n + 1, len(text) - n + 1, 1.0) for n in (10, 20, 50)]
    assert report.finished_early and report.scanned < len(train)  # nothing left to learn: it stopped


def test_random_letters_are_new(corpus):
    report = novelty(random_letters(1, 3_000), DataConfig(source=str(corpus)), progress=False)
    assert report.longest.length < 10
    assert [s.fraction for s in report.shared] == [0.0, 0.0, 0.0]
    assert not report.finished_early and report.scanned == len(train_part(corpus)[0])


def test_only_the_training_split_is_read(tmp_path):
    path = tmp_path / "letters.txt"
    path.write_text(random_letters(2, 50_000), encoding="utf-8")
    train = train_part(path)[0]
    valid = path.read_text(encoding="utf-8")[len(train):]
    data = DataConfig(source=str(path), valid_frac=0.2)
    assert novelty(valid[1_000:1_300], data, progress=False).longest.length < 20
    assert novelty(train[-300:], data, progress=False).longest.length == 300
    straddling = path.read_text(encoding="utf-8")[len(train) - 100 : len(train) + 100]
    assert novelty(straddling, data, progress=False).longest.length == 100  # the part before the cut
    whole = DataConfig(source=str(path), valid=str(path))  # --valid FILE: all the source is training text
    assert novelty(valid[1_000:1_300], whole, progress=False).longest.length == 300


def test_a_match_across_chunk_seams_is_not_lost(corpus):
    train = train_part(corpus)[0]
    text = train[30_000:31_000] + "#" + train[40_000:40_600]
    data = DataConfig(source=str(corpus))
    small = novelty(text, training_text(data, chunk_bytes=97), progress=False)  # seams every ~97 bytes
    whole = novelty(text, training_text(data, chunk_bytes=1 << 24), progress=False)
    assert small.longest.length == whole.longest.length == 1000
    assert small.longest.training == whole.longest.training
    assert [(s.found, s.total) for s in small.shared] == [(s.found, s.total) for s in whole.shared]
    assert small.shared[0].found == small.shared[0].total - 10  # only the 10-grams through "#" are new


def test_word_level(corpus):
    train = train_part(corpus, "word")[0]
    words = WordTokenizer().tokens(train)
    text = " ".join(words[2_000:2_040]) + " xyzzy plugh " + " ".join(words[3_000:3_010])
    report = novelty(text, DataConfig(source=str(corpus), level="word"), progress=False)
    assert report.level == "word" and report.length == 52
    assert report.longest.length == 40 and report.longest.word == 0
    where = report.longest.training
    assert words[where["token"] : where["token"] + 40] == words[2_000:2_040]
    assert WordTokenizer().tokens(train[where["char"]:])[:40] == words[2_000:2_040]
    assert [(s.n, s.found, s.total) for s in report.shared] == [(3, 50 - 4, 50), (5, 48 - 6, 48), (8, 45 - 9, 45)]


def test_words_in_a_folder_of_documents(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    first, second = english_like(3, 3_000), english_like(4, 3_000)
    (folder / "a.txt").write_text(first, encoding="utf-8")
    (folder / "b.txt").write_text(second, encoding="utf-8")
    seam = first[-200:] + second[:200]  # the end of one document and the start of the next
    report = novelty(seam, DataConfig(source=str(folder), valid=str(folder / "b.txt")), progress=False)
    assert report.longest.length == 200
    assert report.longest.training["document"] in (str(folder / "a.txt"), str(folder / "b.txt"))


def test_lower_cased_runs_compare_lower_case(corpus):
    text = train_part(corpus)[0][8_000:8_400].upper()
    assert novelty(text, DataConfig(source=str(corpus), lower=True), progress=False).longest.length == 400
    assert novelty(text, DataConfig(source=str(corpus)), progress=False).longest.length < 10


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_prepared_folder_gives_what_its_source_gives(corpus, tmp_path, level):
    data = DataConfig(source=str(corpus), level=level)
    prepare(data, tmp_path / "prepared", progress=False)
    train = train_part(corpus, level)[0]
    text = train[12_000:12_500] + " qqq " + random_letters(5, 200) + train[20_000:20_300]
    raw = novelty(text, data, progress=False)
    prepared = novelty(text, DataConfig(source=str(tmp_path / "prepared")), progress=False)
    assert prepared.longest.length == raw.longest.length and prepared.longest.text == raw.longest.text
    assert [(s.found, s.total) for s in prepared.shared] == [(s.found, s.total) for s in raw.shared]
    at = prepared.longest.training["token"]
    if level == "char":
        assert at == raw.longest.training["char"]
    else:  # the prepared ids start every document with xxbos
        assert at == raw.longest.training["token"] + 1


def test_a_prepared_vocab_without_a_character_matches_nothing_there(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("abcabcabc " * 300 + "z", encoding="utf-8")
    prepare(DataConfig(source=str(path), min_freq=2, valid_frac=0.01), tmp_path / "p", progress=False)
    report = novelty("abcz", DataConfig(source=str(tmp_path / "p")), ns=[2], progress=False)
    assert report.longest.length == 3 and report.shared[0].found == 2  # "ab", "bc"; "cz" has z, now xxunk
    assert any("cannot occur" in note for note in report.notes)


def test_text_shorter_than_the_n_grams(corpus):
    report = novelty("the will", DataConfig(source=str(corpus)), progress=False)
    assert report.longest.length == 8
    assert [s.fraction for s in report.shared] == [None, None, None]
    assert any("fewer than 10 or 20 or 50" in note for note in report.notes)
    assert "n-grams" not in report.summary().split("note")[0]


def test_samples_share_one_pass_and_an_empty_one_is_reported(tiny_run):
    texts = ["the cat sat on the log. the dog", "", "zzzz qqqq", TINY_TEXT[:300]]
    together = novelty_for_samples(tiny_run, texts, progress=False)
    assert together[1].length == 0 and together[1].longest is None and "nothing to look for" in together[1].notes[0]
    for text, report in zip(texts, together):
        if text:
            alone = novelty_for_run(tiny_run, text, progress=False)
            assert (report.longest.length, [s.found for s in report.shared]) == (
                alone.longest.length, [s.found for s in alone.shared])
    assert together[3].longest.length == 300 and together[2].longest.length == 1


def brute_force(text, docs, ns):
    """The longest common substring and the shared n-grams, straight from the definitions."""
    def occurs(piece):
        return any(any(d[i : i + len(piece)] == piece for i in range(len(d) - len(piece) + 1)) for d in docs)
    best = 0
    for j in range(len(text)):
        while j + best < len(text) and occurs(text[j : j + best + 1]):
            best += 1
    shared = [(sum(occurs(text[j : j + n]) for j in range(len(text) - n + 1)), max(len(text) - n + 1, 0)) for n in ns]
    return best, shared


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.text("abAB \n", max_size=300), min_size=1, max_size=3).filter(any),
       text=st.text("abAB \n", max_size=40),
       copy=st.integers(0, 10_000), level=st.sampled_from(["char", "word"]), lower=st.booleans(),
       chunk=st.sampled_from([1, 5, 64, 1 << 16]), ns=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       weak=st.booleans())
def test_matches_brute_force(tmp_path_factory, monkeypatch, docs, text, copy, level, lower, chunk, ns, weak):
    """Also with weak fingerprints (bases 1 and 3 first: permutations collide), which must cost
    time, never a wrong answer."""
    folder = tmp_path_factory.mktemp("docs")
    for i, doc in enumerate(docs):
        (folder / f"{i}.txt").write_text(doc, encoding="utf-8")
    data = DataConfig(source=str(folder), level=level, lower=lower, valid_frac=0.3)
    train = [d.lower() if lower else d for d in load_corpus(str(folder), 0.3, None, level).train]
    if train and copy % 3 == 0:  # a piece of the training text, often
        start = copy % len(train[0])
        text = train[0][start : start + 1 + copy % 50]
    tokens = WordTokenizer(lower).tokens if level == "word" else (lambda s: s.lower() if lower else s)
    if not tokens(text):
        return
    with monkeypatch.context() as patch:
        if weak:
            patch.setattr(novelty_module, "BASES", (1, 3, *novelty_module.BASES))
        report = novelty(text, training_text(data, chunk_bytes=chunk), ns=ns, progress=False)
    best, shared = brute_force(tokens(text), [tokens(d) for d in train], sorted(set(ns)))
    assert (report.longest.length if report.longest else 0) == best
    assert [(s.found, s.total) for s in report.shared] == shared


@given(st.lists(st.integers(0, 2**64 - 1), max_size=300), st.lists(st.integers(0, 2**64 - 1), max_size=50),
       st.integers(0, 60))
def test_hash_index_finds_every_key_and_nothing_else(keys, others, crowd):
    """Keys given twice, and keys crowded onto few home slots (equal top bits), included."""
    crowded = [k >> crowd << crowd for k in keys]
    table = HashIndex(np.array(crowded, dtype=np.uint64))
    queries = np.array(crowded + others, dtype=np.uint64)
    found = table.find(queries)
    for q, f in zip(queries.tolist(), found.tolist()):
        assert (crowded[f] == q) if f >= 0 else q not in crowded


@settings(deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=200))
def test_the_numpy_word_tokenizer_is_word_re(text):
    starts, ends = word_spans(code_points(text))
    assert [(m.start(), m.end()) for m in WORD_RE.finditer(text)] == list(zip(starts.tolist(), ends.tolist()))


@pytest.mark.skipif(not (SHARED_DATA / "nietzsche.txt").exists(), reason="no shared nietzsche.txt")
def test_nietzsche_quote_and_scramble():
    path = SHARED_DATA / "nietzsche.txt"
    data = DataConfig(source=str(path))
    train = train_part(path)[0]
    quote = train[123_456:124_456]
    assert novelty(quote, data, progress=False).shared[-1].fraction == 1.0
    words = quote.split()
    random.Random(0).shuffle(words)
    scrambled = novelty(" ".join(words), data, progress=False)
    assert scrambled.longest.length < 60 and scrambled.shared[-1].fraction < 0.05 < scrambled.shared[0].fraction


# the command line


def test_cli_report_and_json(tiny_run, tmp_path, capsys):
    sample = tmp_path / "sample.txt"
    sample.write_text(TINY_TEXT[:120], encoding="utf-8")
    assert main(["novelty", str(tiny_run), str(sample)]) == 0
    out = capsys.readouterr().out
    assert "longest substring found in the training text: 120 characters" in out and "100.00%" in out
    assert main(["novelty", str(tiny_run), str(sample), "--json", "--ngrams", "4,7"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["longest"]["length"] == 120 and [s["n"] for s in report["shared"]] == [4, 7]
    assert [s["fraction"] for s in report["shared"]] == [1.0, 1.0] and report["text_file"] == str(sample)


def test_cli_reads_stdin(tiny_run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("zq the dog sat on".encode())))
    assert main(["novelty", str(tiny_run), "-", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["text_file"] == "<stdin>" and report["longest"]["text"] == " the dog sat on"


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    """A word-level, lower-cased run, trained for real."""
    root = tmp_path_factory.mktemp("wordrun")
    data = root / "words.txt"
    data.write_text(english_like(7, 3_000), encoding="utf-8")
    assert main(["train", str(data), "--level", "word", "--lower", *TINY, "--out", str(root / "run")]) == 0
    return root / "run", data


def test_cli_on_a_lower_cased_word_run(word_run, tmp_path, capsys):
    run, data = word_run
    words = WordTokenizer(True).tokens(train_part(data, "word")[0])
    sample = tmp_path / "sample.txt"
    sample.write_text(" ".join(words[100:130]).upper(), encoding="utf-8")
    assert main(["novelty", str(run), str(sample), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["level"] == "word" and report["lower"] and report["longest"]["length"] == 30
    assert [s["fraction"] for s in report["shared"]] == [1.0, 1.0, 1.0]


def test_cli_errors(tiny_run, tmp_path, capsys, monkeypatch):
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(range(256)) * 40)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (novelty_module.MAX_TEXT_BYTES + 1))
    cases = [
        ([str(tiny_run), str(tmp_path / "missing.txt")], "missing.txt: no such file"),
        ([str(tiny_run), str(binary)], "binary file"),
        ([str(tiny_run), str(empty)], "is empty"),
        ([str(tiny_run), str(big)], "too large for a text to check"),
        ([str(tiny_run), str(tmp_path)], "is a folder"),
        ([str(tmp_path / "norun"), str(empty)], "no such run folder"),
        ([str(tiny_run), str(empty), "--ngrams", "3,x"], "not whole numbers"),
        ([str(tiny_run), str(binary), "--ngrams", "0"], "sizes must be whole numbers >= 1"),
    ]
    for argv, message in cases:
        assert message in one_error_line(["novelty", *argv], capsys)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert "<stdin>: is empty" in one_error_line(["novelty", str(tiny_run)], capsys)


def test_cli_corpus_gone(tiny_run, tmp_path, capsys):
    moved = tmp_path / "run"
    shutil.copytree(tiny_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["source"] = str(tmp_path / "gone.txt")
    (moved / "config.json").write_text(json.dumps(config))
    sample = tmp_path / "s.txt"
    sample.write_text("the cat", encoding="utf-8")
    line = one_error_line(["novelty", str(moved), str(sample)], capsys)
    assert f"{moved}: its corpus '{tmp_path / 'gone.txt'}' is gone" in line


def test_api_errors(corpus):
    with pytest.raises(RnnlmError, match="is empty"):
        novelty("", DataConfig(source=str(corpus)))
    with pytest.raises(RnnlmError, match="has no words"):
        novelty(" \n  ", DataConfig(source=str(corpus), level="word"))
    with pytest.raises(RnnlmError, match="sizes must be"):
        novelty("abc", DataConfig(source=str(corpus)), ns=[])


def test_blocks_stay_small_whatever_the_training_text(corpus, monkeypatch):
    """The scan holds one block and its carry, never the training text (benchmarks/novelty.py
    measures the memory)."""
    from rnnlm.inspect import matching

    sizes = []
    feed = matching.Matcher.feed

    def watch(self, block, sums):
        sizes.append(len(block))
        return feed(self, block, sums)

    monkeypatch.setattr(matching.Matcher, "feed", watch)
    novelty(random_letters(9, 500), training_text(DataConfig(source=str(corpus)), chunk_bytes=4096), progress=False)
    assert len(sizes) > 20 and max(sizes) < 4096 + 100 and np.mean(sizes) > 2000


def test_a_bad_byte_deep_in_the_training_text_is_one_clear_error(tmp_path):
    """Read in a thread ahead of the matching, the error still reaches the caller as it is."""
    path = tmp_path / "bad.txt"
    path.write_bytes(english_like(11, 5_000).encode() + b"\xff" + b" the end" * 10)
    with pytest.raises(RnnlmError, match=r"not UTF-8 text \(invalid byte at offset \d+\)"):
        novelty("will to power", training_text(DataConfig(source=str(path), valid=str(path)), chunk_bytes=512),
                progress=False)
    start = english_like(11, 5_000)[:30]
    report = novelty(start, DataConfig(source=str(path), valid=str(path), errors="replace"), progress=False)
    assert report.longest.length == 30


def test_bpe_runs_compare_characters_also_from_a_prepared_folder(corpus, tmp_path):
    train = train_part(corpus)[0]
    text = train[7_000:7_300] + random_letters(3, 100)
    data = DataConfig(source=str(corpus), level="bpe", vocab_size=300)
    raw = novelty(text, data, progress=False)
    assert raw.level == "char" and raw.longest.length >= 300 and any("BPE" in note for note in raw.notes)
    prepare(data, tmp_path / "bpe", progress=False)
    prepared = novelty(text, DataConfig(source=str(tmp_path / "bpe")), progress=False)
    assert (prepared.longest.length, [s.found for s in prepared.shared]) == (
        raw.longest.length, [s.found for s in raw.shared])
    corpus.rename(tmp_path / "moved.txt")
    with pytest.raises(RnnlmError, match="holds BPE ids, compared as the characters of their source; .* is gone"):
        novelty(text, DataConfig(source=str(tmp_path / "bpe")), progress=False)
