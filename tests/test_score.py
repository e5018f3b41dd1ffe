"""rnnlm score and rnnlm.inspect: per-token surprisal, unit traces, feature ranking, the HTML page."""

import io
import json
import math
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TEXT, one_error_line, tiny_config

from rnnlm.cli import main
from rnnlm.config import ModelConfig
from rnnlm.data import corpus as corpus_module
from rnnlm.data.tokenizers import CharTokenizer, WordTokenizer, encode_documents
from rnnlm.data.vocab import Vocab
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.inspect import score as score_module
from rnnlm.inspect.document import document
from rnnlm.inspect.feature import auc, mark_characters, point_biserial, rank_units
from rnnlm.inspect.page import render_page
from rnnlm.inspect.score import PIECE, UnitChoice, encode_with_spans, score_text
from rnnlm.inspect.trace import forward_traced
from rnnlm.models import RecurrentLM
from rnnlm.runfolder import Run, load_run
from rnnlm.train.run import train

QUOTED = 'he said "the cat sat" and (the dog) sat on the log 42 times. ' * 6


def independent_logprobs(run: Run, ids: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """ln p(token t | tokens before it) for t >= 1, from one forward call over the whole text."""
    with torch.inference_mode():
        logits, _ = run.model(torch.from_numpy(ids.astype(np.int64))[None])
        lp = logits[0, :-1].double().log_softmax(-1)
    targets = torch.from_numpy(ids[1:].astype(np.int64))
    return lp.gather(-1, targets[:, None])[:, 0].numpy(), lp


@pytest.fixture(scope="module")
def char_run(tiny_run) -> Run:
    return load_run(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory) -> Path:
    """A 2-layer character LSTM trained a little on text with quotes and brackets."""
    root = tmp_path_factory.mktemp("lstmrun")
    data = root / "quoted.txt"
    data.write_text(QUOTED * 4, encoding="utf-8")
    config = tiny_config(str(data), epochs=1)
    config = replace(config, model=ModelConfig(cell="lstm", layers=2, emb=8, hidden=12, dropout=0.0))
    folder = train(config, root / "run", log=io.StringIO(), progress=False).folder
    return folder


@pytest.fixture(scope="module")
def word_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wordrun")
    data = root / "words.txt"
    data.write_text(TINY_TEXT, encoding="utf-8")
    config = tiny_config(str(data), epochs=1)
    config = replace(config, data=replace(config.data, level="word"))
    folder = train(config, root / "run", log=io.StringIO(), progress=False).folder
    return folder


def test_char_logprobs_and_alternatives_match_one_forward_call(char_run):
    text = TINY_TEXT[: PIECE * 2 + 300]  # three pieces: the state must carry across them
    s = score_text(char_run, text, top=3)
    ids = char_run.tokenizer.encode(text, char_run.vocab)
    expected, lp = independent_logprobs(char_run, ids)
    assert np.array_equal(s.ids, ids) and s.token_count == len(text) and s.predicted == len(text) - 1
    assert math.isnan(s.logprobs[0])
    assert np.allclose(s.logprobs[1:], expected, atol=1e-5)
    best = lp.topk(3, dim=-1)
    assert np.array_equal(s.top_ids[1:], best.indices.numpy())
    assert np.allclose(s.top_logprobs[1:], best.values.numpy(), atol=1e-5)
    assert s.total_nats == pytest.approx(-expected.sum(), rel=1e-6)
    # docs/levels.md: the first token counted at the mean, so bits per character are bits per token here
    assert s.bits_per_char == pytest.approx(-expected.mean() / math.log(2), rel=1e-6)
    assert s.perplexity == pytest.approx(math.exp(-expected.mean()), rel=1e-6)
    assert [s.token_text(i) for i in range(5)] == list(text[:5])


def test_word_level_starts_with_xxbos_and_predicts_every_word(word_run):
    run = load_run(word_run, device="cpu")
    text = "the cat sat on the mat.\nthe dog,  sat on the log!"
    s = score_text(run, text)
    assert np.array_equal(s.ids, encode_documents([text], run.tokenizer, run.vocab))
    assert run.vocab.itos[s.ids[0]] == "xxbos" and (s.starts[0], s.ends[0]) == (0, 0)
    assert [s.token_text(i) for i in range(1, s.token_count)] == WordTokenizer().tokens(text)
    assert s.predicted == len(WordTokenizer().tokens(text))  # the first word is predicted from xxbos
    expected, _ = independent_logprobs(run, s.ids)
    assert np.allclose(s.logprobs[1:], expected, atol=1e-5)
    doc = document(s)
    assert doc["tokens"][0]["logprob"] is None and doc["tokens"][1]["logprob"] == pytest.approx(expected[0], abs=1e-5)


def test_spans_follow_the_original_text_when_lowering_changes_its_length():
    text = "İstanbul'a GİT, dedi."  # U+0130 lowers to two characters
    vocab = Vocab.build(CharTokenizer(lower=True).count(text))
    ids, starts, ends = encode_with_spans(text, CharTokenizer(lower=True), vocab)
    assert np.array_equal(ids, CharTokenizer(lower=True).encode(text, vocab))
    assert "".join(text[a:b] for a, b in zip(starts, ends)) == text
    words = WordTokenizer(lower=True)
    vocab = Vocab.build(words.count(text))
    ids, starts, ends = encode_with_spans(text, words, vocab)
    assert np.array_equal(ids[1:], words.encode(text, vocab))
    assert np.all(starts[1:] >= ends[:-1]) and np.all(ends >= starts)  # in order, never overlapping
    # İ lowers to "i" and a combining dot, two tokens: the part of a character goes to the token its lowering ends in
    assert [text[a:b] for a, b in zip(starts[1:], ends[1:])] == ["", "İ", "stanbul", "'", "a", "G", "İ", "T", ",",
                                                                "dedi", "."]


@pytest.mark.parametrize("level", ["char", "word"])
def test_score_equals_evaluate_with_one_stream(tiny_run, word_run, tmp_path, capsys, level):
    folder = tiny_run if level == "char" else word_run
    path = tmp_path / "text.txt"
    path.write_text(TINY_TEXT[:3002] + "\r\nthe end\n", encoding="utf-8")
    assert main(["score", str(folder), str(path), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(folder), str(path), "--streams", "1", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["tokens"] == scored["predicted"] == scored["token_count"] - 1
    assert evaluated["loss"] == pytest.approx(scored["loss"], abs=1e-4)
    assert evaluated["bits_per_char"] == pytest.approx(scored["bits_per_char"], abs=1e-4)
    assert evaluated["characters"] == scored["characters"]
    total = evaluated["loss"] * evaluated["tokens"]
    assert total == pytest.approx(scored["total_nats"], abs=1e-4 * evaluated["tokens"])
    run = load_run(folder, device="cpu")
    as_validation = evaluate_run(run, str(path))  # a text shorter than a stream's least length: one stream
    assert as_validation.tokens == evaluated["tokens"]
    assert as_validation.loss == pytest.approx(evaluated["loss"], abs=1e-4)
    eight = evaluate_run(run, str(path), streams=8)  # as many as asked for: they drop a tail
    assert eight.tokens == evaluated["tokens"] // 8 * 8


def test_json_carries_every_token_with_its_alternatives(char_run, tiny_run, capsys):
    text = "the cat sat on the log."
    assert main(["score", str(tiny_run), "--text", text, "--json", "--top", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    s = score_text(char_run, text, top=4)
    assert len(doc["tokens"]) == len(text) and doc["text"] == text
    first, rest = doc["tokens"][0], doc["tokens"][1:]
    assert first["logprob"] is None and first["top"] == []
    assert [t["logprob"] for t in rest] == pytest.approx(s.logprobs[1:].tolist(), abs=1e-6)
    assert all(len(t["top"]) == 4 and t["top"][0][1] >= t["top"][-1][1] for t in rest)
    assert all(text[t["start"] : t["end"]] == t["text"] for t in doc["tokens"])
    assert doc["total_nats"] == pytest.approx(s.total_nats) and doc["traces"] == [] and doc["feature"] is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("locked", [False, True])
def test_traces_equal_the_fused_models_states_step_by_step(cell, locked):
    torch.manual_seed(0)
    model = RecurrentLM(20, ModelConfig(cell=cell, layers=2, emb=6, hidden=10, dropout=0.2,
                                        locked_dropout=locked)).eval()
    x = torch.randint(0, 20, (2, 40))
    with torch.inference_mode():
        fused, fused_state = model(x)
    for layer in (0, 1):
        logits, state, trace = forward_traced(model, x, None, layer)
        assert torch.allclose(logits, fused, atol=1e-5)
        for got, want in zip(state if cell == "lstm" else (state,), fused_state if cell == "lstm" else (fused_state,)):
            assert torch.allclose(got, want, atol=1e-5)
        stepped, step_state = [], None
        with torch.inference_mode():
            for t in range(x.shape[1]):
                _, step_state = model(x[:, t : t + 1], step_state)
                stepped.append((step_state[1] if cell == "lstm" else step_state)[layer])
        assert torch.allclose(trace, torch.stack(stepped, 1), atol=1e-5)


def test_score_traces_a_unit_across_pieces(lstm_run):
    run = load_run(lstm_run, device="cpu")
    text = QUOTED * 6  # more than one piece
    assert len(text) > PIECE
    s = score_text(run, text, unit=UnitChoice(layer=1, unit=5))
    ids = torch.from_numpy(s.ids.astype(np.int64))[None]
    cells, state = [], None
    with torch.inference_mode():
        for t in range(ids.shape[1]):
            _, state = run.model(ids[:, t : t + 1], state)
            cells.append(state[1][0, 0, 5].item())
    assert s.trace.kind == "cell state" and s.trace.layer == 1 and s.trace.units == [5]
    assert np.allclose(s.trace.of(5), cells, atol=1e-5)
    plain = score_text(run, text)
    assert np.allclose(s.logprobs[1:], plain.logprobs[1:], atol=1e-5)


def test_auc_and_correlation_against_their_definitions():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, size=(60, 3)).astype(np.float64)  # many ties
    marked = rng.random(60) < 0.3
    for j in range(3):
        inside, outside = values[marked, j], values[~marked, j]
        pairs = (inside[:, None] > outside[None]).mean() + 0.5 * (inside[:, None] == outside[None]).mean()
        assert auc(values[:, j], marked) == pytest.approx(pairs)
        assert point_biserial(values, marked)[j] == pytest.approx(np.corrcoef(values[:, j], marked)[0, 1])


def test_feature_ranking_finds_a_planted_unit(char_run):
    text = QUOTED.replace("42", "")
    s = score_text(char_run, text, unit=UnitChoice())
    chars = mark_characters(text, re.compile(r'"[^"]*"'))
    rng = np.random.default_rng(1)
    s.trace.values = rng.normal(size=s.trace.values.shape).astype(np.float32)
    s.trace.values[:, 17] += 1.5 * chars  # unit 17 rises inside quotes
    s.trace.values[:, 30] -= 0.8 * chars  # unit 30 falls there, less clearly
    ranking = rank_units(s, r'"[^"]*"')
    assert [u.unit for u in ranking.units[:2]] == [17, 30]

    def normal(shift):  # the AUC of N(shift, 1) against N(0, 1): Phi(shift / sqrt 2)
        return 0.5 * (1 + math.erf(shift / 2))

    assert ranking.units[0].auc == pytest.approx(normal(1.5), abs=0.05) and ranking.units[0].r > 0.4
    assert ranking.units[1].auc == pytest.approx(normal(-0.8), abs=0.05) and ranking.units[1].r < -0.2
    assert ranking.marked == chars.sum() and ranking.tokens == len(text)
    assert abs(ranking.units[-1].auc - 0.5) < 0.1
    assert ranking.matches[0] == (text.index('"'), text.index('"', text.index('"') + 1) + 1)


def test_surprising_spans_find_a_planted_mistake(char_run):
    text = "the cat sat on the mat. the dog sat on the log. " * 3
    at = text.index("dog", 60)
    odd = text[:at] + "gdo" + text[at + 3 :]
    s = score_text(char_run, odd)
    top = s.surprising_spans(3)
    assert top[0].start <= at + 1 and top[0].end >= at and top[0].nats > 3 * s.loss
    assert top == sorted(top, key=lambda sp: -sp.nats)


class TagChecker(HTMLParser):
    VOID = {"meta", "br", "input", "img", "hr", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


HOSTILE = 'the "cat" </script><script>alert(1)</script> <img src=x onerror=alert(2)> &amp; sat.\n'


def test_page_is_well_formed_self_contained_and_escapes_the_text(lstm_run, tmp_path, capsys):
    path = tmp_path / "page.html"
    assert main(["score", str(lstm_run), "--text", HOSTILE * 3, "--html", str(path), "--feature", '"[^"]*"']) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    page = path.read_text(encoding="utf-8")
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and checker.stack == []
    assert [t for t, _ in checker.tags].count("script") == 3 and all("src" not in a for _, a in checker.tags)
    assert "http" not in page.replace('http-equiv="Content-Security-Policy"', "")
    assert "<link" not in page and "alert(1)</script>" not in page and "<img" not in page
    data = page.split('id="rnnlm-score-data">', 1)[1].split("</script>", 1)[0]
    doc = json.loads(data)
    assert doc["text"] == HOSTILE * 3 and len(doc["tokens"]) == len(HOSTILE) * 3
    assert doc["feature"]["regex"] == '"[^"]*"' and len(doc["traces"]) == 5
    assert doc["traces"][0]["unit"] == doc["feature"]["units"][0]["unit"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_a_real_browser_draws_every_character(char_run, tmp_path):
    text = 'the "cat" sat <b>on</b> the mat.\nthe dog sat.'
    s = score_text(char_run, text, unit=UnitChoice(unit=3))
    path = tmp_path / "page.html"
    path.write_text(render_page(document(s, unit=3)), encoding="utf-8")
    profile = tmp_path / "profile"
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    drawn = dom.split('class="text"', 1)[1].split("</div>", 1)[0]
    assert drawn.count("<span") == len(text) and drawn.count('class="nl"') == 1
    assert drawn.count(">&lt;</span>") == 2 and "<b>" not in drawn  # the text's "<b>" drawn as characters
    assert "rgba(" in drawn and "bits/char" in dom and "unit 3 (layer 1/1, hidden state)" in dom


@pytest.fixture
def texts(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "ok.txt").write_text("the cat sat on the mat.")
    (tmp_path / "binary.bin").write_bytes(b"\x7fELF\x00\x00\x01\x02" * 50)
    return tmp_path


@pytest.mark.parametrize("args,needle", [
    (["--text", "the cat", "--unit", "48"], "--unit must be in 0..47"),
    (["--text", "the cat", "--unit", "-1"], "--unit must be in 0..47"),
    (["--text", "the cat", "--unit", "1", "--layer", "2"], "--layer must be in 1..1"),
    (["--text", "the cat", "--feature", "t", "--layer", "0"], "--layer must be in 1..1"),
    (["--text", "the cat", "--layer", "1"], "--layer chooses the layer of --unit or --feature"),
    (["--text", "the cat", "--feature", "(unclosed"], "not a regular expression"),
    (["--text", "the cat", "--feature", "z"], "matches nothing in the text"),
    (["--text", "the cat", "--feature", "[\\s\\S]"], "matches the whole text"),
    (["--text", "ЖЖЖЖ"], "shares no token with the model's vocab"),
    (["--text", ""], "the text is empty"),
    (["--text", "t"], "at least 2 tokens"),
    (["{d}/empty.txt"], "is empty"),
    (["{d}/binary.bin"], "binary"),
    (["{d}/missing.txt"], "no such file"),
    (["{d}"], "is a folder"),
    (["--text", "the cat", "--html", "{d}/no/such/page.html"], "no folder"),
    (["--text", "the cat", "--html", "{d}"], "is a folder"),
    (["--text", "the cat", "--top", "101"], "--top must be in 0..100"),
    (["--text", "the cat", "--top", "40"], "--top must be in 0.."),  # more than the vocab
    (["--text", "the cat", "--top", "-1"], "--top must be in 0..100"),
    (["{d}/ok.txt", "--text", "the cat"], "give FILE or --text, not both"),
    ([], "give the text to score as FILE or as --text TEXT"),
    (["{d}/ok.txt", "--encoding", "rot13"], "not a text encoding"),
])
def test_score_mistakes_exit_2_with_one_line(tiny_run, texts, capsys, args, needle):
    argv = ["score", str(tiny_run)] + [a.replace("{d}", str(texts)) for a in args]
    assert needle in one_error_line(argv, capsys)


def test_a_failed_score_writes_no_page(tiny_run, tmp_path, capsys):
    page = tmp_path / "page.html"
    one_error_line(["score", str(tiny_run), "--text", "the cat", "--feature", "z", "--html", str(page)], capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_text_too_large_for_memory_is_refused_before_it_is_read(tiny_run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text(TINY_TEXT)
    monkeypatch.setattr(score_module, "memory_bytes", lambda device: 100 * len(TINY_TEXT))
    monkeypatch.setattr(corpus_module, "read_text_file", lambda *a: pytest.fail("the file was read"))
    err = one_error_line(["score", str(tiny_run), str(path)], capsys)
    assert "rnnlm score can hold in this machine's memory" in err


def test_evaluate_streams_out_of_range(tiny_run, capsys):
    assert "--streams must be in 1..65536" in one_error_line(["evaluate", str(tiny_run), "--streams", "0"], capsys)


def test_printed_summary_unit_and_ranking(lstm_run, capsys):
    assert main(["score", str(lstm_run), "--text", QUOTED, "--unit", "3", "--feature", '"[^"]*"']) == 0
    out = capsys.readouterr().out
    s = score_text(load_run(lstm_run, device="cpu"), QUOTED)
    assert f"total       {s.total_nats:,.2f} nats" in out and f"bits/char   {s.bits_per_char:.4f}" in out
    assert "most surprising spans" in out and "unit 3 (layer 2 of 2, cell state)" in out
    rows = out.split("best first:\n", 1)[1].splitlines()[1:]
    assert len(rows) == 10 and rows[0].split()[0] == "1"
    aucs = [float(r.split()[2]) for r in rows]
    assert [abs(a - 0.5) for a in aucs] == sorted((abs(a - 0.5) for a in aucs), reverse=True)


def test_word_level_feature_marks_whole_words(word_run, capsys):
    text = "the cat sat on the mat. the dog sat on the log. the cat sat."
    assert main(["score", str(word_run), "--text", text, "--feature", "cat|dog", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    feature = doc["feature"]
    assert feature["marked"] == 3 and feature["tokens"] == len(WordTokenizer().tokens(text))  # xxbos is not judged
    assert [text[a:b] for a, b in feature["matches"]] == ["cat", "dog", "cat"]
    assert len(feature["units"]) == 48 and len(doc["traces"]) == 5


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bperun")
    data = root / "text.txt"
    data.write_text(TINY_TEXT.replace("cat", "café") + "naïve “quotes” ", encoding="utf-8")
    config = tiny_config(str(data), epochs=1)
    config = replace(config, data=replace(config.data, level="bpe", vocab_size=300))
    folder = train(config, root / "run", log=io.StringIO(), progress=False).folder
    return folder


def test_bpe_tokens_map_to_whole_characters_and_agree_with_evaluate(bpe_run, tmp_path, capsys):
    run = load_run(bpe_run, device="cpu")
    text = "the café sat on the mat. naïve “quotes” 漢字 and the dog. " * 3
    s = score_text(run, text)
    assert np.array_equal(s.ids, run.tokenizer.encode(text))
    assert np.all(s.starts[1:] == s.ends[:-1]) and s.starts[0] == 0 and s.ends[-1] == len(text)  # a partition
    for i in range(s.token_count):  # a token's characters are those its bytes finish
        before = run.tokenizer.decode(s.ids[:i + 1]).encode("utf-8", "replace")
        assert len(text[: s.ends[i]].encode("utf-8")) <= len(before)
    expected, _ = independent_logprobs(run, s.ids)
    assert np.allclose(s.logprobs[1:], expected, atol=1e-5)
    assert s.shown_tokens[s.ids[1]] == run.tokenizer.piece(run.vocab.itos[s.ids[1]])
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    assert main(["evaluate", str(bpe_run), str(path), "--streams", "1", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["loss"] == pytest.approx(s.loss, abs=1e-4)
    assert evaluated["bits_per_char"] == pytest.approx(s.bits_per_char, abs=1e-4)
