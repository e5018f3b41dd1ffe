import os

import pytest

from rnnlm.atomic import WriteFailed, append_line, write_bytes


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "weights.bin", b"abc")
    finally:
        os.umask(old)
    assert (tmp_path / "weights.bin").stat().st_mode & 0o777 == 0o644


def test_replace_keeps_no_temporary_files(tmp_path):
    write_bytes(tmp_path / "f", b"old")
    write_bytes(tmp_path / "f", b"new")
    append_line(tmp_path / "log", "one")
    append_line(tmp_path / "log", "two")
    assert (tmp_path / "f").read_bytes() == b"new"
    assert (tmp_path / "log").read_text() == "one\ntwo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "log"]


def test_missing_folder_is_a_clear_failure(tmp_path):
    with pytest.raises(WriteFailed, match="cannot write"):
        write_bytes(tmp_path / "nope" / "f", b"x")
