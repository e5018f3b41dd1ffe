import pytest

from rnnlm.data.corpus import load_corpus, read_documents, split_by_position
from rnnlm.errors import RnnlmError


def test_split_by_position_keeps_every_character():
    docs = ["abcdefghij", "klmnopqrst"]
    train, valid = split_by_position(docs, 0.25, "char")
    assert "".join(train) + "".join(valid) == "".join(docs)
    assert "".join(valid) == "pqrst"


def test_word_split_does_not_cut_a_word():
    train, valid = split_by_position(["alpha beta gamma delta"], 0.5, "word")
    assert train == ["alpha beta gamma"] and valid == [" delta"]


def test_folder_gives_one_document_per_txt_file(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "notes.md").write_text("ignored")
    assert read_documents(tmp_path) == ["first", "second"]


def test_bom_and_crlf_are_normalised(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree")
    assert read_documents(path) == ["one\ntwo\nthree"]


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"\x00\x01\x02binary", "binary"),
    (b"caf\xe9", "not UTF-8"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(RnnlmError, match=message):
        read_documents(path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(RnnlmError, match="no such file"):
        read_documents(tmp_path / "nope.txt")
    with pytest.raises(RnnlmError, match="no .txt files"):
        read_documents(tmp_path)


def test_explicit_valid_file(tmp_path):
    (tmp_path / "train.txt").write_text("aaaa")
    (tmp_path / "valid.txt").write_text("bb")
    corpus = load_corpus(str(tmp_path / "train.txt"), valid=str(tmp_path / "valid.txt"))
    assert corpus.train == ["aaaa"] and corpus.valid == ["bb"] and corpus.level == "char"
