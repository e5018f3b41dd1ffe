"""The numpy word path (rnnlm.data.wordscan) against the regular expression that defines word
tokens: the same tokens, counts and ids on any text, and the same prepared folder byte for byte."""

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.config import DataConfig
from rnnlm.data.prepare import prepare
from rnnlm.data.tokenizers import WORD_RE, WordTokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.data.wordscan import KEY_BYTES, Scan, TokenTable, WordCounter, WordIndex

# Characters whose classes are easy to get wrong: ASCII whitespace that str.isspace knows
# (\x1c-\x1f), NUL and DEL, underscore, digits of other scripts, superscripts and Roman numerals
# (\w), combining and spacing marks (not \w), Unicode spaces, CJK, emoji (4 bytes), a lone
# surrogate, letters that lower-case to two characters or by context (İ, Σ).
TRICKY = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x00\x7f_-'.,;!?()[]{}\"\\/@#$%^&*+=<>|~`"
          "\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff"
          "0123456789\u0663\u00b2\u2167\u00bd"
          "e\u0301\u0915\u094d\u0937\u093f\u0651\u064e\u20dd"
          "abcxyzABCXYZ\u00e9\u00df\u0130\u03a3\u03c3\u03c2\u0416\u05d0\u0628\u6f22\u5b57\u3042\uac00"
          "\u00aa\u02b0\u2160\U0001f642\U0001d400\U00010400\ud800\udfff")
WORDS = ["a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmnop", "abcdefghijklmnopq",
         "caf\u00e9", "\u00fcbermenschen", "\u6f22\u5b57\u6f22\u5b57\u6f22\u5b57", "x" * 40, "snake_case_name",
         "12345678901234567", "xxbos", "xxunk", "xxpad"]


def reference_tokens(text: str) -> list[str]:
    return WORD_RE.findall(text)


def scanned_tokens(text: str) -> list[str]:
    scan = Scan(text)
    return [scan.data[s : s + n].decode("utf-8", "surrogatepass")
            for s, n in zip(scan.starts.tolist(), scan.lengths.tolist())]


texts = st.lists(st.one_of(st.sampled_from(list(TRICKY)), st.sampled_from(WORDS), st.text(max_size=5)),
                 max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_scan_finds_the_tokens_of_the_regular_expression(text):
    assert scanned_tokens(text) == reference_tokens(text)


def test_every_code_point_is_classified_as_re_does():
    every = "".join(map(chr, range(0x110000)))
    assert scanned_tokens(every) == reference_tokens(every)
    spaced = " ".join(map(chr, range(0x80, 0x110000, 7))) + "a" + "a".join(map(chr, range(0x81, 0x110000, 5)))
    assert scanned_tokens(spaced) == reference_tokens(spaced)


def test_keys_are_exact_at_the_byte_lengths_where_they_change():
    # 8 and 9 bytes move a token to a second key word, 16 and 17 to the dict of long tokens;
    # a NUL with letters around it is three tokens, never one key that ends in zeros
    words = ["a" * n for n in (7, 8, 9, 15, 16, 17, 64)] + ["\u00e9" * n for n in (4, 5, 8, 9)] + ["a\x00", "\x00"]
    text = " ".join(words * 3)
    counter = WordCounter()
    counter.update(text)
    assert counter.counts() == Counter(reference_tokens(text))
    assert len(Scan(text).long) == 3 * sum(len(w.encode()) > KEY_BYTES for w in words)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5), st.booleans(), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_counts_and_ids_equal_the_regex_path(pieces, lower, min_freq, seed):
    tok = WordTokenizer(lower)
    expected: Counter = Counter()
    for piece in pieces:
        expected.update(tok.count(piece))
    counter = tok.counter()
    for piece in pieces:
        counter.update(piece)
    assert counter.counts() == expected
    vocab = Vocab.build(expected, min_freq=min_freq)
    encode = tok.encoder(vocab)
    unseen = random.Random(seed).choice(WORDS) + " " + "".join(pieces)  # tokens the vocab may lack
    for text in pieces + [unseen]:
        ids = encode(text)
        assert ids.dtype == vocab.dtype
        np.testing.assert_array_equal(ids, tok.encode(text, vocab))


def test_specials_in_the_text_get_their_own_ids_as_stoi_gives_them():
    tok = WordTokenizer()
    vocab = Vocab.build(tok.count("one two two"))
    text = "xxbos one xxunk xxpad three"
    np.testing.assert_array_equal(tok.encoder(vocab)(text), tok.encode(text, vocab))
    assert tok.encoder(vocab)(text)[0] == vocab.bos_id


def test_a_vocab_with_tokens_no_text_scans_as_still_encodes_exactly():
    # a vocab.json from elsewhere: a token with a space, one with a NUL that pads like "a"
    vocab = Vocab(["xxunk", "xxpad", "xxbos", "a b", "a\x00", "a", "b" * 30])
    tok = WordTokenizer()
    text = "a b a\x00 " + "b" * 30 + " " + "b" * 31
    np.testing.assert_array_equal(tok.encoder(vocab)(text), tok.encode(text, vocab))


def test_the_table_keeps_ids_through_growth_and_collisions():
    rng = np.random.default_rng(0)
    k1 = rng.integers(1, 2**63, size=50_000, dtype=np.uint64)
    k2 = np.where(rng.random(50_000) < 0.3, rng.integers(1, 2**63, size=50_000, dtype=np.uint64), 0).astype(np.uint64)
    k1[::7] = k1[0]  # many keys that share a first word and differ in the second
    table, seen = TokenTable(bits=4), {}
    for start in range(0, 50_000, 7_000):
        part = slice(start, start + 7_000)
        ids = table.add(k1[part], k2[part])
        for a, b, i in zip(k1[part].tolist(), k2[part].tolist(), ids.tolist()):
            assert seen.setdefault((a, b), i) == i
    assert len(table) == len(seen) and sorted(seen.values()) == list(range(len(seen)))
    np.testing.assert_array_equal(table.lookup(k1, k2), [seen[(a, b)] for a, b in zip(k1.tolist(), k2.tolist())])
    missing = table.lookup(k1 + np.uint64(1) | np.uint64(1 << 62), k2)
    assert (missing == -1).sum() > 49_000 - len(seen)  # a few may hit real keys by chance


def test_the_index_numbers_tokens_in_order_of_first_appearance():
    index = WordIndex()
    first = index.ids("b a " + "z" * 20 + " b")
    again = index.ids("a c " + "z" * 20)
    assert first.tolist() == [0, 1, 2, 0] and again.tolist() == [1, 3, 2]
    assert index.tokens() == ["b", "a", "z" * 20, "c"]
    assert index.ids("never seen " + "q" * 20, add=False).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("chunk_bytes", [7, 1 << 18])
def test_prepared_folder_is_byte_identical_to_the_regex_path(tmp_path, monkeypatch, lower, chunk_bytes):
    rng = random.Random(1)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        text = " ".join(rng.choice(WORDS + list(TRICKY.replace("\x00", ""))) for _ in range(3000))
        (folder / f"{i}.txt").write_text(text.replace("\ud800", "").replace("\udfff", ""), encoding="utf-8")
    data = DataConfig(source=str(folder), level="word", lower=lower, min_freq=2, valid_frac=0.3)
    prepare(data, tmp_path / "fast", chunk_bytes=chunk_bytes, progress=False)
    monkeypatch.delattr(WordTokenizer, "counter")  # back to count() and encode(): findall and stoi
    monkeypatch.delattr(WordTokenizer, "encoder")
    prepare(data, tmp_path / "regex", chunk_bytes=chunk_bytes, progress=False)
    for name in ("ids.bin", "vocab.json"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "regex" / name).read_bytes()
    assert not (tmp_path / "fast" / "tokens.tmp").exists()
