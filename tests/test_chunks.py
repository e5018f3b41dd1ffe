import pytest

from rnnlm.data.chunks import read_chunks
from rnnlm.data.corpus import read_text_file
from rnnlm.errors import RnnlmError

# BOM, CRLF and lone CR, 2-, 3- and 4-byte characters, no-break and ideographic spaces.
RAW = ("\ufeffÜbermensch—café\r\nnaïve  ΟΔΥΣΣΕΥΣ\rstraße 🙂🙂 漢字\u3000x\u00a0y\t"
       "a long wordwithoutanyspaces_at_all_here!\r\n").encode("utf-8") * 3


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_pieces_join_to_the_whole_file(tmp_path, chunk_bytes):
    path = tmp_path / "t.txt"
    path.write_bytes(RAW)
    pieces = list(read_chunks(path, chunk_bytes))
    assert "".join(pieces) == read_text_file(path)
    for piece in pieces[:-1]:
        assert piece[-1].isspace(), "a piece may only end after whitespace"
    if chunk_bytes < 64:
        assert len(pieces) > 5


def test_invalid_utf8_reports_the_same_offset_as_reading_whole(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("é".encode() * 20 + b"\xff" + b"abc" * 10)
    with pytest.raises(RnnlmError, match="offset 40"):
        read_text_file(path)
    with pytest.raises(RnnlmError, match="offset 40"):
        list(read_chunks(path, 7))


def test_truncated_character_at_the_end_is_an_error(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes("ok 🙂".encode()[:-1])
    with pytest.raises(RnnlmError, match="not UTF-8"):
        list(read_chunks(path, 2))


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes(b"abc\x00def")
    with pytest.raises(RnnlmError, match="binary"):
        list(read_chunks(path, 2))
