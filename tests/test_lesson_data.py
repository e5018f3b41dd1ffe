import numpy as np
import pytest
import torch

from rnnlm.data.batching import StreamBatches
from rnnlm.lessons.windows import (
    LastTarget,
    WindowBatches,
    hihell,
    random_split,
    raw_chars,
    sequences,
    windows,
)
from rnnlm.errors import RnnlmError

TEXT = "PREFACE\n\n\nSUPPOSING that Truth is a woman--what then? Is there not ground"


def test_raw_chars_put_padding_at_zero_and_round_trip():
    raw = raw_chars(TEXT)
    assert raw.chars[0] == "\0" and raw.chars[1:] == sorted(set(TEXT))
    assert 0 not in raw.ids  # the padding id is never a character of the text
    assert raw.decode(raw.ids) == TEXT
    assert raw.encode("that") == [raw.chars.index(c) for c in "that"]


def test_overlapping_windows_predict_the_next_character():
    ids = np.arange(100, 120)
    x, y = windows(ids, 8)
    assert x.shape == (12, 8) and y.shape == (12,)  # len - n windows, as the lesson
    for j in range(12):
        assert list(x[j]) == list(ids[j : j + 8]) and y[j] == ids[j + 8]


def test_three_char_windows_do_not_overlap():
    ids = np.arange(10)
    x, y = windows(ids, 3, step=3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and y.tolist() == [3, 6, 9]


def test_sequences_are_non_overlapping_and_targets_shift_by_one():
    ids = np.arange(50, 83)
    x, y = sequences(ids, 8)
    assert x.shape == y.shape == (3, 8)
    assert (y == x + 1).all()  # targets: the same window one token later
    assert x[:, 0].tolist() == [50, 58, 66]  # a new window every 8 tokens
    assert len(np.unique(x)) == x.size


def test_random_split_holds_out_a_fifth_at_random():
    train, valid = random_split(1000, 0.2, seed=1)
    assert len(valid) == 200 and len(train) == 800
    assert set(train).isdisjoint(valid) and set(train) | set(valid) == set(range(1000))
    assert valid.max() - valid.min() > 500  # spread through the data, not the last fifth
    assert random_split(1000, 0.2, seed=1)[1].tolist() == valid.tolist()
    assert random_split(1000, 0.2, seed=2)[1].tolist() != valid.tolist()


def test_window_batches_visit_every_window_once_a_pass_in_a_new_order():
    x = np.arange(50)[:, None] * np.ones((1, 4), dtype=np.int64)
    y = np.arange(50)
    batches = WindowBatches(x, y, bs=16, shuffle=True, seed=0)
    assert len(batches) == 4
    passes = [torch.cat([yb for _, yb in batches]).tolist() for _ in range(2)]
    for seen in passes:
        assert sorted(seen) == list(range(50))
    assert passes[0] != passes[1] and passes[0] != list(range(50))
    for xb, yb in batches:
        assert xb.dtype == torch.int64 and (xb[:, 0] == yb).all()  # rows stay paired
    assert [yb.tolist() for _, yb in WindowBatches(x, y, 16)][0] == list(range(16))


def test_last_target_keeps_the_last_word_of_each_row():
    ids = np.arange(200)
    streams = StreamBatches(ids, bs=4, bptt=3)
    wrapped = LastTarget(streams)
    assert len(wrapped) == len(streams)
    for (x, y), (x2, y2) in zip(streams, wrapped):
        assert torch.equal(x, x2) and torch.equal(y2, y[:, -1])
        assert (y2 == x[:, -1] + 1).all()


def test_hihell_is_one_hot_and_its_labels_spell_ihello():
    toy = hihell()
    assert toy.inputs.shape == (1, 6, 5)
    assert (toy.inputs.sum(-1) == 1).all()
    assert toy.decode(toy.inputs[0].argmax(-1)) == "hihell"
    assert toy.decode(toy.labels) == "ihello"


@pytest.mark.parametrize("n", [1, 3, 8])
def test_windows_of_real_sized_ids_stay_small(n):
    ids = raw_chars(TEXT * 50).ids
    x, y = windows(ids, n)
    assert x.dtype == np.uint8 and len(x) == len(ids) - n


def test_raw_chars_refuse_characters_the_text_lacks():
    with pytest.raises(RnnlmError, match="not in the text"):
        raw_chars("abc").encode("abz")
