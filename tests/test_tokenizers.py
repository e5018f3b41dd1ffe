import numpy as np
import pytest

from rnnlm.data.textdata import build_vocab
from rnnlm.data.tokenizers import CharTokenizer, WordTokenizer, encode_documents, make_tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError

TEXT = "Héllo, wörld!\n\tTabs, emoji 🙂 and CJK 漢字.\n"


def test_char_round_trip_is_exact():
    tok = CharTokenizer()
    vocab = build_vocab([TEXT], tok)
    ids = tok.encode(TEXT, vocab)
    assert ids.dtype == np.uint8
    assert len(ids) == len(TEXT)
    assert tok.decode(ids, vocab) == TEXT


def test_char_unknown_maps_to_unk_not_dropped():
    tok = CharTokenizer()
    vocab = build_vocab(["abc"], tok)
    ids = tok.encode("abzc", vocab)
    assert ids.tolist() == [vocab.stoi["a"], vocab.stoi["b"], vocab.unk_id, vocab.stoi["c"]]


def test_char_beyond_the_largest_code_point_in_the_vocab_is_unk():
    tok = CharTokenizer()
    vocab = build_vocab(["ab\u00e9"], tok)
    assert tok.encode("\U0001f642a\u00e9\u00ea", vocab).tolist() == [
        vocab.unk_id, vocab.stoi["a"], vocab.stoi["\u00e9"], vocab.unk_id]


def test_char_lower():
    tok = CharTokenizer(lower=True)
    vocab = build_vocab(["ABC abc"], tok)
    assert "A" not in vocab.stoi
    assert tok.decode(tok.encode("CAB", vocab), vocab) == "cab"


def test_word_round_trip_is_token_exact():
    tok = WordTokenizer()
    text = "It's 5 o'clock, said Bob -- twice!  Then: silence."
    vocab = build_vocab([text], tok)
    ids = tok.encode(text, vocab)
    assert vocab.unk_id not in ids.tolist()
    assert tok.encode(tok.decode(ids, vocab), vocab).tolist() == ids.tolist()
    assert tok.tokens(text)[:5] == ["It", "'", "s", "5", "o"]


def test_word_documents_start_with_bos():
    tok = WordTokenizer()
    vocab = build_vocab(["one two", "three"], tok)
    ids = encode_documents(["one two", "three"], tok, vocab)
    assert vocab.decode_tokens(ids) == ["xxbos", "one", "two", "xxbos", "three"]


def test_char_documents_are_concatenated_without_bos():
    tok = CharTokenizer()
    vocab = build_vocab(["ab", "c"], tok)
    assert tok.decode(encode_documents(["ab", "c"], tok, vocab), vocab) == "abc"


def test_unknown_level_is_an_error():
    with pytest.raises(RnnlmError, match="level must be one of"):
        make_tokenizer("byte")


def test_vocab_order_min_freq_and_max_size():
    vocab = Vocab.build({"b": 3, "a": 3, "c": 5, "d": 1}, min_freq=2)
    assert vocab.itos == ["xxunk", "xxpad", "xxbos", "c", "a", "b"]
    assert Vocab.build({"b": 3, "a": 3, "c": 5}, max_size=2).itos[3:] == ["c", "a"]


def test_vocab_json_round_trip(tmp_path):
    vocab = Vocab.build({"x": 2, "y": 1, "\n": 4})
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab


@pytest.mark.parametrize("content", ["not json", '{"format": "other"}', '{"format": "rnnlm-vocab", "version": 99, "itos": []}',
                                     '{"format": "rnnlm-vocab", "version": 1, "itos": ["a"]}'])
def test_vocab_load_refuses_bad_files(tmp_path, content):
    (tmp_path / "vocab.json").write_text(content)
    with pytest.raises(RnnlmError):
        Vocab.load(tmp_path / "vocab.json")


def test_id_dtype_is_the_smallest_that_fits():
    assert Vocab.build({chr(0x4E00 + i): 1 for i in range(300)}).dtype == np.uint16
