"""Lists: documents one a line or between separator lines, framed by xxbos at every level, split
at random, recorded in the run, and their items judged new, in training or in validation."""

import json

import numpy as np
import pytest
import torch

from rnnlm.config import DataConfig, RunConfig
from rnnlm.data.corpus import load_corpus
from rnnlm.data.documents import MAX_ITEM_CHARS, held_out_count, item_lines, random_split, separated_pieces, split_items
from rnnlm.data.items import IN_TRAINING, IN_VALIDATION, NEW, ItemRecord, load_items
from rnnlm.data.textdata import build_text_data
from rnnlm.data.tokenizers import make_tokenizer
from rnnlm.errors import RnnlmError, SettingError

NAMES = [f"{a}{b}{c}" for a in "bdkmrst" for b in "aeiou" for c in ("la", "na", "ra", "n", "x", "ssa")]


def test_lines_strip_trailing_space_and_skip_empty_lines():
    assert item_lines("emma  \n\n olivia\t\n\nava", "names.txt") == ["emma", " olivia", "ava"]


def test_a_line_too_long_for_an_item_is_refused_with_its_number():
    with pytest.raises(SettingError) as e:
        item_lines("ok\n" + "x" * (MAX_ITEM_CHARS + 1), "list.txt")
    assert e.value.field == "lines" and "line 2 has 10,001 characters" in str(e.value)


def test_fortune_pieces_between_separator_lines():
    text = "A fool.\n%\n\nTwo\n  lines.  \n%\n%\nlast\n"
    assert separated_pieces(text, "%", "f") == (["A fool.", "Two\n  lines.", "last"], 3)


@pytest.mark.parametrize("texts,lines,sep,field,words", [
    ([("a.txt", "\n  \n\n")], True, None, "lines", "no non-empty line (3 lines read)"),
    ([("a.txt", "one\ntwo\nthree\n")], False, "%", "doc_sep", "no line is {doc_sep} '%' in the 3 lines read"),
    ([("a.txt", "%\n\n%\n")], False, "%", "doc_sep", "only separator and blank lines"),
])
def test_a_list_without_documents_says_why(texts, lines, sep, field, words):
    with pytest.raises(SettingError) as e:
        split_items(texts, lines, sep)
    assert e.value.field == field and words in e.value.message


def test_held_out_documents_default_to_a_fraction_at_most_a_thousand():
    assert held_out_count(100, 0.2, None) == 20
    assert held_out_count(30_000, 0.2, None) == 1000
    assert held_out_count(30_000, 0.2, 50) == 50
    assert held_out_count(2, 0.2, None) == 1
    with pytest.raises(SettingError, match="hold out fewer"):
        held_out_count(10, 0.2, 10)


def test_random_split_is_fixed_disjoint_and_not_the_tail():
    docs = sorted(NAMES)
    train, valid = random_split(docs, 40)
    assert (train, valid) == random_split(docs, 40)
    assert sorted(train + valid) == docs and len(valid) == 40
    assert valid != docs[-40:] and train != sorted(train)  # drawn from everywhere, and shuffled
    assert min(docs.index(v) for v in valid) < len(docs) // 4


def test_a_list_file_is_split_into_framed_documents(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n")
    corpus = load_corpus(str(path), lines=True)
    assert corpus.documents and len(corpus.valid) == round(0.2 * len(NAMES))
    assert sorted(corpus.train + corpus.valid) == sorted(NAMES)
    data = build_text_data(DataConfig(source=str(path), lines=True))
    bos = data.vocab.bos_id
    assert data.tokenizer.adds_bos and data.train_ids[0] == bos and data.train_ids[-1] == bos
    assert (data.train_ids == bos).sum() == len(corpus.train) + 1
    assert data.train_characters == sum(map(len, corpus.train)) + len(corpus.train)  # each end counts
    assert data.tokenizer.decode(data.valid_ids, data.vocab) == "".join(corpus.valid)


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_every_level_frames_documents(tmp_path, level):
    path = tmp_path / "titles.txt"
    path.write_text("\n".join(f"the {n} of the {m}" for n in NAMES[:40] for m in ("cat", "dog")) + "\n")
    data = build_text_data(DataConfig(source=str(path), lines=True, level=level,
                                      vocab_size=300 if level == "bpe" else None))
    bos = data.vocab.bos_id
    assert data.train_ids[0] == bos and data.train_ids[-1] == bos
    assert (data.train_ids == bos).sum() == len(data.items.train) + 1


def test_a_validation_file_is_read_as_documents_too(tmp_path):
    (tmp_path / "train.txt").write_text("%\n".join(f"{n}\nsays hi\n" for n in NAMES[:30]))
    (tmp_path / "valid.txt").write_text("%\n".join(f"{n}\nsays bye\n" for n in NAMES[30:36]))
    corpus = load_corpus(str(tmp_path / "train.txt"), valid=str(tmp_path / "valid.txt"), doc_sep="%")
    assert len(corpus.train) == 30 and sorted(corpus.valid) == sorted(f"{n}\nsays bye" for n in NAMES[30:36])


def test_verdicts_compare_whole_items_as_the_model_reads_them(tmp_path):
    char = make_tokenizer("char", lower=True)
    record = ItemRecord.of(char, ["Emma", "Ava"], ["Mia"])
    assert [record.verdict(char, t) for t in ("emma", "AVA", "mia", "em", "emmas")] == [
        IN_TRAINING, IN_TRAINING, IN_VALIDATION, NEW, NEW]
    word = make_tokenizer("word")
    record = ItemRecord.of(word, ["a cat, a hat"], [])
    assert record.verdict(word, "a cat , a hat") == IN_TRAINING
    record.save(tmp_path)
    again = load_items(tmp_path)
    assert np.array_equal(again.train, record.train) and len(again.valid) == 0
    assert load_items(tmp_path / "nowhere") is None
    (tmp_path / "documents.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RnnlmError, match="damaged"):
        load_items(tmp_path)


@pytest.mark.parametrize("settings,field", [
    (dict(lines=True, doc_sep="%"), "doc_sep"),
    (dict(doc_sep="  "), "doc_sep"),
    (dict(doc_sep="a\nb"), "doc_sep"),
    (dict(valid_docs=10), "valid_docs"),
    (dict(lines=True, valid_docs=0), "valid_docs"),
])
def test_document_settings_are_checked(settings, field):
    with pytest.raises(SettingError) as e:
        DataConfig(**settings).validate()
    assert e.value.field == field


def test_a_config_written_before_lists_still_loads():
    old = {"data": {"source": "x.txt", "level": "char", "valid_frac": 0.2}, "model": {}, "train": {}}
    data = RunConfig.from_dict(old).data
    assert not data.documents and data.doc_sep is None and data.valid_docs is None


def test_each_document_is_scored_alone_from_a_fresh_state():
    from rnnlm.config import ModelConfig
    from rnnlm.data.vocab import SPECIALS, Vocab
    from rnnlm.evaluation.documents import boundary_state, evaluate_documents
    from rnnlm.models import RecurrentLM

    torch.manual_seed(0)
    model = RecurrentLM(12, ModelConfig(cell="lstm", layers=1, emb=8, hidden=16, dropout=0.0)).eval()
    ids = np.array([2, 5, 6, 7, 2, 8, 2, 9, 9, 9, 10, 11, 2])
    vocab = Vocab(list(SPECIALS) + list("abcdefghi"))
    start = boundary_state(model, vocab)
    assert torch.equal(start[0], boundary_state(model, vocab)[0]) and start[0].abs().sum() > 0  # fixed, not zero
    scores = evaluate_documents(model, ids, vocab, torch.device("cpu"), characters=9)
    total = 0.0
    for doc in ([2, 5, 6, 7, 2], [2, 8, 2], [2, 9, 9, 9, 10, 11, 2]):  # each alone from the start, its end included
        with torch.inference_mode():
            logits, _ = model(torch.tensor([doc[:-1]]), start)
        total += torch.nn.functional.cross_entropy(logits[0], torch.tensor(doc[1:]), reduction="sum").item()
    assert scores.documents == 3 and scores.tokens == 12
    assert scores.loss * scores.tokens == pytest.approx(total, rel=1e-5)
    assert scores.loss_per_document == pytest.approx(total / 3, rel=1e-5)
    assert scores.nats_per_char == pytest.approx(total / 9, rel=1e-5)
    assert json.loads(json.dumps(scores.as_dict()))["documents"] == 3
