import pytest

from rnnlm.data.chunks import read_chunks
from rnnlm.data.corpus import read_text_file
from rnnlm.errors import RnnlmError

# BOM, CRLF and lone CR, 2-, 3- and 4-byte characters, no-break and ideographic spaces.
RAW = ("\ufeffÜbermensch—café\r\nnaïve  ΟΔΥΣΣΕΥΣ\rstraße 🙂🙂 漢字\u3000x\u00a0y\t"
       "a long wordwithoutanyspaces_at_all_here!\r\n").encode("utf-8") * 150
TEXT = RAW.decode("utf-8-sig")


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


@pytest.mark.parametrize("data,encoding,errors", [
    (TEXT.encode("utf-16"), "utf-8", "strict"),  # a UTF-16 BOM is followed
    (TEXT.encode("utf-32"), "utf-8", "strict"),
    (TEXT.encode("utf-16-le"), "utf-16-le", "strict"),
    ("café crème, à la française\n".encode("latin-1") * 500, "latin-1", "strict"),
    (RAW.replace(b"caf", b"c\xff\xfe") + b"\xe2\x82", "utf-8", "replace"),  # bad bytes, a cut-off end
    (RAW.replace(b"caf", b"c\xff\xfe") + b"\xe2\x82", "utf-8", "ignore"),
    (RAW.replace(b"x", b"\0", 20), "utf-8", "strict"),  # a few NULs are text
])
def test_encodings_and_errors_as_reading_whole(tmp_path, data, encoding, errors):
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    for chunk_bytes in (3, 1000):
        assert "".join(read_chunks(path, chunk_bytes, encoding, errors)) == read_text_file(path, encoding, errors)


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


@pytest.mark.parametrize("data,message", [
    (b"abc\x00def" * 50, "binary"),
    ("plain text here ".encode("utf-16-le") * 100, "UTF-16 text without a BOM"),
])
def test_binary_file_is_refused_before_any_piece(tmp_path, data, message):
    path = tmp_path / "b.txt"
    path.write_bytes(data)
    with pytest.raises(RnnlmError, match=message):
        read_text_file(path)
    with pytest.raises(RnnlmError, match=message):
        next(read_chunks(path, 2))
