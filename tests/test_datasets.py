import hashlib
import json
import urllib.error
import urllib.request

import pytest

from rnnlm.data import datasets
from rnnlm.errors import RnnlmError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_DATA", str(tmp_path))
    return tmp_path


def test_cached_file_with_a_known_hash_is_used_offline(cache, monkeypatch):
    data = b"to be or not to be\n"
    monkeypatch.setitem(datasets.DATASETS, "tinyshakespeare", datasets.Dataset(
        "tinyshakespeare", "test", "char", "https://example.invalid/x",
        frozenset({hashlib.sha256(data).hexdigest()}), pinned=True))
    (cache / "tinyshakespeare.txt").write_bytes(data)
    assert datasets.fetch("tinyshakespeare") == cache / "tinyshakespeare.txt"


def test_offline_download_is_one_clear_error(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RnnlmError, match="cannot download nietzsche.*pass the file path"):
        datasets.fetch("nietzsche", quiet=True)


class FakeResponse:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_first_download_of_an_unknown_hash_is_recorded_then_enforced(cache, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"first copy"))
    path = datasets.fetch("nietzsche", quiet=True)
    assert path.read_bytes() == b"first copy"
    recorded = json.loads((cache / "hashes.json").read_text())["nietzsche"]
    assert recorded == hashlib.sha256(b"first copy").hexdigest()
    path.write_bytes(b"tampered")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"another copy"))
    with pytest.raises(RnnlmError, match="sha256"):
        datasets.fetch("nietzsche", quiet=True)
    assert path.read_bytes() == b"tampered"  # nothing overwritten by a mismatching download


def test_pinned_dataset_refuses_a_wrong_hash(cache, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"not shakespeare"))
    with pytest.raises(RnnlmError, match="expected one of"):
        datasets.fetch("tinyshakespeare", quiet=True)
    assert not (cache / "tinyshakespeare.txt").exists()
