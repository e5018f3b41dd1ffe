"""Text from the wild: encodings, line ends, NUL bytes, odd characters, odd corpora, odd paths.

Each either works as a user would expect or gives one clear line and exit status 2.
"""

import os
import signal

import pytest

from rnnlm.cli import main
from rnnlm.config import DataConfig
from rnnlm.data.corpus import read_documents, read_text_file
from rnnlm.data.textdata import build_text_data
from rnnlm.data.tokenizers import CharTokenizer
from rnnlm.errors import RnnlmError
from rnnlm.runfolder import load_run

from conftest import TINY, one_error_line

TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 40


@pytest.mark.parametrize("encode", [
    lambda t: t.encode("utf-8"),
    lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),  # UTF-8 with a BOM
    lambda t: t.replace("\n", "\r\n").encode("utf-8"),  # Windows line ends
    lambda t: t.replace("\n", "\r").encode("utf-8"),  # old Mac line ends
    lambda t: t.encode("utf-16"),  # UTF-16 with a BOM, as Windows editors save "Unicode"
    lambda t: t.encode("utf-32"),
])
def test_encodings_and_line_ends_read_as_the_same_text(tmp_path, encode):
    path = tmp_path / "t.txt"
    path.write_bytes(encode(TEXT))
    assert read_text_file(path) == TEXT


def test_utf16_without_a_bom_says_which_encoding_to_pass(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_bytes(TEXT.encode("utf-16-le"))
    err = one_error_line(["train", str(path), "--out", str(tmp_path / "run")], capsys)
    assert "looks like UTF-16 text without a BOM; pass --encoding utf-16-le" in err
    assert read_text_file(path, encoding="utf-16-le") == TEXT


def test_a_few_nul_bytes_are_text_many_are_binary(tmp_path, capsys):
    few = tmp_path / "few.txt"
    few.write_bytes(TEXT.replace("dog", "d\0g", 3).encode())
    assert read_text_file(few).count("\0") == 3  # kept as a character, like any other
    many = tmp_path / "many.txt"
    many.write_bytes(b"\0\0\0\0" + TEXT.encode().replace(b" ", b"\0"))
    err = one_error_line(["train", str(many), "--out", str(tmp_path / "run")], capsys)
    assert "looks like a binary file (it has NUL bytes)" in err
    zeros = tmp_path / "zeros.txt"
    zeros.write_bytes(bytes(5000))
    assert "binary" in one_error_line(["train", str(zeros), "--out", str(tmp_path / "run")], capsys)
    assert not (tmp_path / "run").exists()


def test_invalid_utf8_is_refused_or_read_as_asked(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("café crème " * 300).encode("latin-1"))
    err = one_error_line(["train", str(path), "--out", str(tmp_path / "run")], capsys)
    assert "not UTF-8 text (invalid byte at offset 3); convert it to UTF-8, or pass --encoding" in err
    assert "--errors replace" in err
    assert read_text_file(path, encoding="latin-1") == "café crème " * 300
    assert read_text_file(path, errors="replace") == "caf\ufffd cr\ufffdme " * 300
    assert read_text_file(path, errors="ignore") == "caf crme " * 300
    assert main(["train", str(path), *TINY, "--encoding", "latin-1", "--out", str(tmp_path / "run")]) == 0
    assert "é" in load_run(tmp_path / "run", device="cpu").vocab.itos
    assert main(["evaluate", str(tmp_path / "run"), str(path)]) == 0  # read as the run read its corpus
    err = one_error_line(["evaluate", str(tmp_path / "run"), str(path), "--encoding", "utf-8"], capsys)
    assert "not UTF-8 text" in err
    err = one_error_line(["train", str(path), "--encoding", "klingon", "--out", str(tmp_path / "r2")], capsys)
    assert "--encoding 'klingon': not a text encoding" in err


def test_emoji_combining_marks_and_cjk_are_characters(tmp_path, capsys):
    text = "naïve café, cafe\u0301 東京 👩‍👩‍👧 🇫🇷 \u05e9\u05c1\u05b8 " * 40
    path = tmp_path / "world.txt"
    path.write_text(text)
    data = build_text_data(DataConfig(str(path), valid_frac=0.5))
    tokenizer = data.tokenizer
    assert isinstance(tokenizer, CharTokenizer)
    assert tokenizer.decode(tokenizer.encode(text, data.vocab), data.vocab) == text
    assert {"東", "👩", "\u200d", "\u0301", "🇫"} <= set(data.vocab.itos)  # code points, as written
    assert main(["train", str(path), *TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "run"), "--prime", "東京", "-n", "20", "--seed", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("東京") and err == ""


def test_a_one_character_corpus_is_too_short_and_says_so(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_text("a")
    err = one_error_line(["train", str(path), "--out", str(tmp_path / "run")], capsys)
    assert "fewer than one batch" in err


def test_one_repeated_character_trains_and_writes_it(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_text("a" * 2000)
    assert main(["train", str(path), *TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "run"), "-n", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out == "a" * 30 + "\n"


def test_folders_without_text_or_with_unreadable_files(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "readme.md").write_text(TEXT)
    assert "folder has no .txt files" in one_error_line(["train", str(empty)], capsys)

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT)
    (corpus / "secret.txt").write_text(TEXT)
    real_open = os.open

    def refuse_secret(path, *args, **kwargs):  # tests run as root, where chmod stops no read
        if str(path).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_secret)
    err = one_error_line(["train", str(corpus), "--out", str(tmp_path / "run")], capsys)
    assert err.endswith("secret.txt: cannot read (Permission denied)\n")
    assert not (tmp_path / "run").exists()


def test_a_huge_single_line_is_fine(tmp_path):
    path = tmp_path / "line.txt"
    line = ("word " * 400_000).strip()  # 2 MB, no line end
    path.write_text(line)
    data = build_text_data(DataConfig(str(path), level="word"))
    assert len(data.train_ids) + len(data.valid_ids) == 400_000 + 2  # an xxbos before each split


@pytest.fixture
def watchdog():
    """Fail, rather than hang, when a test blocks (a regression reading a named pipe would)."""
    def timeout(signum, frame):
        raise AssertionError("blocked for 30 s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


NOT_A_FILE = "not a regular file; save the text to a file first"


@pytest.mark.parametrize("make,refusal", [
    (lambda p: os.mkfifo(p), f"is a named pipe, {NOT_A_FILE}"),
    (lambda p: os.symlink("/dev/zero", p), f"is a character device, {NOT_A_FILE}"),
    (lambda p: os.symlink(p, p), "symbolic link loop"),
    (lambda p: os.symlink(p.parent / "nowhere", p), "broken symbolic link"),
])
def test_paths_that_are_not_files_never_hang(tmp_path, capsys, watchdog, make, refusal):
    path = tmp_path / "data.txt"
    make(path)
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    for argv in (["train", str(path)], ["train", str(text), "--valid", str(path)], ["lr-find", str(path)]):
        err = one_error_line([*argv, "--out", str(tmp_path / "run")] if argv[0] == "train" else argv, capsys)
        assert err.endswith(f" error: {path}: {refusal}\n")
    assert not (tmp_path / "run").exists()


def test_odd_file_names_work_and_errors_stay_one_line(tmp_path, capsys):
    odd = tmp_path / "my notes – été 東京.txt"
    odd.write_text(TEXT)
    assert main(["train", str(odd), *TINY, "--out", str(tmp_path / "run dir ✓")]) == 0
    assert load_run(tmp_path / "run dir ✓", device="cpu").name == "my notes – été 東京.txt"
    capsys.readouterr()
    hostile = str(tmp_path / "evil\nname\x1b[2J.txt")  # a newline and a terminal escape
    err = one_error_line(["train", hostile], capsys)
    assert "evil\\nname\\x1b[2J.txt: no such file or folder" in err


def test_read_documents_of_a_folder_skips_hidden_files(tmp_path):
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second")
    assert read_documents(tmp_path) == ["first", "second"]
    with pytest.raises(RnnlmError, match="is empty"):
        (tmp_path / "e.txt").write_text("")
        read_documents(tmp_path / "e.txt")


def test_evaluate_on_an_empty_file_or_a_deleted_corpus(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    assert main(["train", str(path), *TINY, "--out", str(tmp_path / "run")]) == 0
    (tmp_path / "empty.txt").write_text("")
    assert "empty.txt: is empty" in one_error_line(["evaluate", str(tmp_path / "run"), str(tmp_path / "empty.txt")],
                                                   capsys)
    path.unlink()
    err = one_error_line(["evaluate", str(tmp_path / "run")], capsys)
    assert f"its corpus '{path}' is gone; name the text to evaluate on" in err


def test_a_corpus_larger_than_memory_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch):
    from rnnlm.data import corpus

    path = tmp_path / "big.txt"
    path.write_text(TEXT)  # 1,920 bytes, on a machine made to look like it had 3,000 of memory
    monkeypatch.setattr(corpus, "machine_memory", lambda: 3000)
    monkeypatch.setattr(corpus, "read_file", lambda *a: pytest.fail("read anyway"))
    err = one_error_line(["train", str(path), "--out", str(tmp_path / "run")], capsys)
    assert "big.txt: 1.9 KB of text, more than half of this machine's 3.0 KB of memory" in err
