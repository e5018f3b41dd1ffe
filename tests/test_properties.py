"""Properties over arbitrary input (hypothesis): tokenizers and vocab round trip on any Unicode
text; stream batching covers every token once; reading a file gives back its text."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rnnlm.data.batching import StreamBatches
from rnnlm.data.corpus import decode_text, looks_binary, normalize_newlines, split_by_position
from rnnlm.data.textdata import build_vocab
from rnnlm.data.tokenizers import CharTokenizer, WordTokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.evaluation.streams import stream_batches_for_eval

FEW = settings(max_examples=60, deadline=None)
texts = st.text(min_size=1, max_size=300)  # any code points but lone surrogates, which no file decodes to


@FEW
@given(texts)
def test_char_level_round_trip(text):
    tokenizer = CharTokenizer()
    vocab = build_vocab([text], tokenizer)
    ids = tokenizer.encode(text, vocab)
    assert len(ids) == len(text) and vocab.unk_id not in ids.tolist()
    assert tokenizer.decode(ids, vocab) == text


@FEW
@given(texts, texts)
def test_char_level_unknown_characters_become_xxunk(seen, other):
    tokenizer = CharTokenizer()
    vocab = build_vocab([seen], tokenizer)
    ids = tokenizer.encode(other, vocab).tolist()
    assert [i == vocab.unk_id for i in ids] == [c not in set(seen) for c in other]


@FEW
@given(texts)
def test_word_level_is_token_exact(text):
    tokenizer = WordTokenizer()
    vocab = build_vocab([text], tokenizer)
    tokens = tokenizer.tokens(text)
    ids = tokenizer.encode(text, vocab)
    assert vocab.decode_tokens(ids) == tokens
    assert tokenizer.encode(tokenizer.decode(ids, vocab), vocab).tolist() == ids.tolist()


@FEW
@given(st.lists(st.text(min_size=1, max_size=20), max_size=50, unique=True))
def test_vocab_file_round_trip(tmp_path_factory, tokens):
    vocab = Vocab.build({t: 1 for t in tokens})
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab


@FEW
@given(st.integers(0, 3000), st.integers(1, 70), st.integers(1, 50))
def test_stream_batches_cover_every_token_once(n, bs, bptt):
    ids = np.arange(n, dtype=np.uint32)  # distinct ids: where each came from is plain
    batches = StreamBatches(ids, bs, bptt)
    seen = [list(batches.batch(k)) for k in range(len(batches))]
    assert all(x.shape == y.shape and x.shape[0] == bs and 1 <= x.shape[1] <= bptt for x, y in seen)
    inputs = np.concatenate([x.numpy() for x, _ in seen], axis=1) if seen else np.zeros((bs, 0))
    targets = np.concatenate([y.numpy() for _, y in seen], axis=1) if seen else np.zeros((bs, 0))
    stream = batches.stream_len
    assert inputs.size == batches.tokens == stream * bs
    # row i is the i-th contiguous stream; every input token once, in order; targets shifted by one
    assert (inputs == np.arange(stream * bs).reshape(bs, stream)).all()
    assert (targets == inputs + 1).all()
    assert 0 <= n - 1 - stream * bs < bs or n <= 1  # the documented tail: fewer than bs tokens


@FEW
@given(st.integers(2, 3000), st.integers(1, 70), st.integers(1, 50))
def test_evaluation_batches_cover_a_split_of_any_length(n, bs, bptt):
    batches = stream_batches_for_eval(np.arange(n, dtype=np.uint32), bs, bptt)
    assert batches.tokens >= 1 and n - 1 - batches.tokens < batches.bs


@FEW
@given(texts, st.booleans(), st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_file_reads_back_as_its_text(text, bom, newline):
    assume("\r" not in text)  # a lone CR is a line break of its own: "\r" + "\r\n" is two
    data = (b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode("utf-8")
    expected = normalize_newlines(text)
    if looks_binary(expected[:8192]):
        return  # refused as binary (covered in test_text_input)
    assert decode_text(data, "t.txt") == expected


@FEW
@given(st.lists(texts, min_size=1, max_size=5), st.floats(0.01, 0.99), st.sampled_from(["char", "word"]))
def test_a_positional_split_loses_nothing(docs, valid_frac, level):
    train, valid = split_by_position(docs, valid_frac, level)
    assert "".join(train) + "".join(valid) == "".join(docs)
