from rnnlm.data.human_numbers import human_numbers, number_words
from rnnlm.data.textdata import build_text_data
from rnnlm.config import DataConfig


def test_number_words():
    assert number_words(1) == "one"
    assert number_words(15) == "fifteen"
    assert number_words(40) == "forty"
    assert number_words(101) == "one hundred one"
    assert number_words(8000) == "eight thousand"
    assert number_words(8013) == "eight thousand thirteen"
    assert number_words(9999) == "nine thousand nine hundred ninety nine"


def test_splits_match_the_lesson():
    train, valid = human_numbers()
    assert train.startswith("one , two , three , four")
    assert train.endswith("seven thousand nine hundred ninety nine , eight thousand")
    assert valid.startswith("eight thousand one , eight thousand two")
    assert valid.endswith("nine thousand nine hundred ninety nine")
    assert "and" not in train.split() and "-" not in train


def test_encoded_valid_split_has_the_lessons_13017_tokens():
    data = build_text_data(DataConfig())
    assert data.tokenizer.level == "word"
    assert len(data.valid_ids) == 13017  # as data.valid_ds[0] in the lesson
    assert data.vocab.decode_tokens(data.valid_ids[:4]) == ["xxbos", "eight", "thousand", "one"]
    assert data.vocab.unk_id not in data.valid_ids.tolist()
