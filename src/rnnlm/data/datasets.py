"""Built-in datasets: generated in code, or downloaded once into a cache checked by SHA-256.

The cache folder is ``$RNNLM_DATA`` (default ``~/.cache/rnnlm``). A file already there with a
known hash is used without touching the network. For a download whose hash rnnlm does not know
yet (the public Nietzsche copy is not byte-identical everywhere), the hash seen is recorded in
``hashes.json`` beside it and later copies must match it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rnnlm.errors import RnnlmError


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    level: str
    url: str | None = None
    sha256: frozenset[str] = field(default_factory=frozenset)
    pinned: bool = False  # True: only the known hashes are accepted, nothing is recorded

    @property
    def builtin(self) -> bool:
        return self.url is None


DATASETS = {
    d.name: d
    for d in (
        Dataset(
            "human-numbers",
            "numbers one .. nine thousand nine hundred ninety nine in words (lesson 7), "
            "generated in code",
            "word",
        ),
        Dataset(
            "nietzsche",
            "Nietzsche in English translation, ~600k characters (the lessons' character corpus)",
            "char",
            "https://s3.amazonaws.com/text-datasets/nietzsche.txt",
            frozenset({"1f6258f517f66e336983f76bdb66d53614701e511100908b8eada9bccd1d1300"}),
        ),
        Dataset(
            "tinyshakespeare",
            "Shakespeare, ~1.1M characters (karpathy's char-rnn corpus)",
            "char",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            frozenset({"86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}),
            pinned=True,
        ),
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get("RNNLM_DATA") or Path.home() / ".cache" / "rnnlm")


# hashlib, rnnlm.atomic and rnnlm.reading are imported where they are used: `rnnlm --help` and
# `rnnlm datasets` read this module and need none of them (hashlib alone loads OpenSSL).


def sha256_of(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _recorded_hashes(folder: Path) -> dict[str, str]:
    """The hashes recorded at first downloads; a damaged record is refused, not silently dropped
    (it says which downloads to trust)."""
    from rnnlm.reading import read_json

    path = folder / "hashes.json"
    if not os.path.lexists(path):
        return {}
    obj = read_json(path, 1 << 20, "hash record")
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise RnnlmError(f"{path}: damaged hash record (not an object of names to sha256 hashes); delete it "
                         "to record the hashes again at the next download")
    return obj


def _accepted(dataset: Dataset, folder: Path) -> set[str]:
    recorded = _recorded_hashes(folder).get(dataset.name)
    return set(dataset.sha256) | ({recorded} if recorded else set())


def fetch(name: str, quiet: bool = False) -> Path:
    """The local path of a downloadable dataset, downloading it on first use."""
    from rnnlm.atomic import write_bytes, write_json
    from rnnlm.reading import read_file

    dataset = DATASETS[name]
    folder = cache_dir()
    target = folder / f"{name}.txt"
    if target.is_file() and sha256_of(read_file(target)) in _accepted(dataset, folder):
        return target
    offline_hint = (
        f"download {dataset.url} yourself and pass the file path instead of '{name}', "
        f"or put it at {target}"
    )
    import urllib.error  # here, not at the top: listing the datasets never needs the network code
    import urllib.request

    try:
        if not quiet:
            print(f"downloading {name} from {dataset.url} ...", flush=True)
        with urllib.request.urlopen(dataset.url, timeout=30) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise RnnlmError(f"cannot download {name} ({reason}); {offline_hint}") from None
    digest = sha256_of(data)
    recorded = _recorded_hashes(folder).get(name)
    accepted = _accepted(dataset, folder)
    if digest not in accepted and (dataset.pinned or recorded):
        raise RnnlmError(
            f"downloaded {name} has sha256 {digest}, expected one of {', '.join(sorted(accepted))}; "
            f"{offline_hint}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)
        if digest not in accepted:
            write_json(folder / "hashes.json", {**_recorded_hashes(folder), name: digest})
            print(f"{name}: first download, recorded sha256 {digest}")
    except OSError as e:
        raise RnnlmError(f"cannot write the dataset cache {folder}: {e.strerror}") from None
    return target
