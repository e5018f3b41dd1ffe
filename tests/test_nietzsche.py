"""Checks on the real corpus of the lessons; skipped when ../shared/data is absent."""

import pytest

from rnnlm.config import DataConfig
from rnnlm.data.textdata import build_text_data

from conftest import SHARED_DATA

NIETZSCHE = SHARED_DATA / "nietzsche.txt"
pytestmark = pytest.mark.skipif(not NIETZSCHE.exists(), reason="../shared/data/nietzsche.txt not present")


def test_char_level_round_trip_on_the_whole_corpus():
    text = NIETZSCHE.read_text(encoding="utf-8")
    data = build_text_data(DataConfig(source=str(NIETZSCHE), valid_frac=0.2))
    train = data.tokenizer.decode(data.train_ids, data.vocab)
    valid = data.tokenizer.decode(data.valid_ids, data.vocab)
    assert text.startswith(train) and len(train) + len(valid) == len(text)
    unseen = [a for a, b in zip(text[len(train):], valid) if a != b]  # characters absent from train
    assert unseen and all(c not in data.vocab.stoi for c in unseen)
    assert valid.count("\ufffd") == len(unseen)
    assert data.train_ids.dtype.itemsize == 1


def test_lesson_settings_lower_case_and_min_freq_3():
    data = build_text_data(DataConfig(source=str(NIETZSCHE), lower=True, min_freq=3))
    chars = [t for t in data.vocab.itos if len(t) == 1]
    assert all(c == c.lower() for c in chars)
    assert 50 <= len(chars) <= 59  # 59 distinct lower-cased characters, rare ones dropped
    assert len(data.train_ids) == pytest.approx(0.8 * 600_901, abs=2)
