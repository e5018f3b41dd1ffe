"""``rnnlm generate``: primes from files, stop strings, finish reasons, JSON and logprobs."""

import json

import pytest

from rnnlm.cli import main
from tests.conftest import one_error_line


def generate_json(run, capsys, *args):
    assert main(["generate", str(run), "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_gives_one_object_per_sample_with_its_seed(tiny_run, capsys):
    samples = generate_json(tiny_run, capsys, "--prime", "the ", "-n", "30", "--samples", "3", "--seed", "5")
    assert [s["seed"] for s in samples] == [5, 6, 7] and [s["sample"] for s in samples] == [1, 2, 3]
    assert all(s["finish_reason"] == "length" and s["tokens"] == 30 and len(s["text"]) == 30 for s in samples)
    alone = generate_json(tiny_run, capsys, "--prime", "the ", "-n", "30", "--seed", "6")
    assert alone[0]["text"] == samples[1]["text"]


def test_stop_strings_end_samples_and_are_not_printed(tiny_run, capsys):
    (free,) = generate_json(tiny_run, capsys, "--prime", "the ", "-n", "150", "--seed", "3")
    stop = next(w for w in ("sat", "the", "on") if w in free["text"])
    (cut,) = generate_json(tiny_run, capsys, "--prime", "the ", "-n", "150", "--seed", "3", "--stop", stop)
    assert cut["text"] == free["text"][: free["text"].index(stop)] and cut["finish_reason"] == "stop"
    assert main(["generate", str(tiny_run), "--prime", "the ", "-n", "150", "--seed", "3", "--stop", stop]) == 0
    assert capsys.readouterr().out == "the " + cut["text"] + "\n"


def test_max_chars(tiny_run, capsys):
    (s,) = generate_json(tiny_run, capsys, "-n", "100", "--max-chars", "12", "--seed", "0")
    assert len(s["text"]) == 12 and s["finish_reason"] == "length"


def test_logprobs_in_json(tiny_run, capsys):
    (s,) = generate_json(tiny_run, capsys, "--prime", "the", "-n", "8", "--seed", "1", "--logprobs", "3")
    assert len(s["logprobs"]) == 8
    for token in s["logprobs"]:
        assert token["logprob"] <= 0 and len(token["top"]) == 3
        assert token["top"][0]["logprob"] >= token["logprob"] - 1e-6
        assert [t["logprob"] for t in token["top"]] == sorted((t["logprob"] for t in token["top"]), reverse=True)
    assert "".join(t["text"] for t in s["logprobs"]) == s["text"]


def test_a_multi_line_prime_from_a_file(tiny_run, tmp_path, capsys):
    prime = tmp_path / "prime.txt"
    prime.write_bytes(b"the cat sat.\r\nthe dog ")
    assert main(["generate", str(tiny_run), "--prime-file", str(prime), "-n", "20", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the cat sat.\nthe dog ") and len(out) == len("the cat sat.\nthe dog ") + 21


def test_a_prime_from_standard_input(tiny_run, monkeypatch, capsys):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the mat ")))
    assert main(["generate", str(tiny_run), "--prime-file", "-", "-n", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the mat ")


def test_a_prime_too_large_for_memory_is_refused_before_it_is_read(tiny_run, tmp_path, monkeypatch, capsys):
    import rnnlm.data.corpus
    import rnnlm.device

    prime = tmp_path / "prime.txt"
    prime.write_text("the cat " * 1000)  # 8 KB of text, 128 KB with its ids; the model takes 42 KB
    monkeypatch.setattr(rnnlm.device, "memory_bytes", lambda device: 100_000)

    def never(*args, **kwargs):
        raise AssertionError("the prime was read")

    monkeypatch.setattr(rnnlm.data.corpus, "read_file", never)
    err = one_error_line(["generate", str(tiny_run), "--prime-file", str(prime)], capsys)
    assert "--prime-file" in err and "use a shorter prime" in err


@pytest.mark.parametrize("args,message", [
    (["--stop", ""], "--stop must not be empty"),
    (["--logprobs", "2"], "--logprobs needs --json"),
    (["--json", "--logprobs", "21"], "--logprobs must be in 0..20"),
    (["--json", "--logprobs", "-1"], "--logprobs must be in 0..20"),
    (["--max-chars", "0"], "--max-chars must be >= 1"),
    (["--prime", "a", "--prime-file", "x"], "not allowed with argument"),
    (["--prime-file", "{tmp}/missing.txt"], "no such file"),
    (["--prime-file", "{tmp}/binary.bin"], "binary"),
    (["--prime-file", "{tmp}/empty.txt"], "is empty"),
    (["--prime-file", "{tmp}/latin1.txt"], "not UTF-8"),
    (["--prime-file", "{tmp}"], "is a folder"),
    (["--encoding", "base64", "--prime-file", "{tmp}/empty.txt"], "not a text encoding"),
])
def test_generate_mistakes(tiny_run, tmp_path, capsys, args, message):
    (tmp_path / "binary.bin").write_bytes(b"\x7fELF\x00\x00\x01\x02" * 50)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("café ".encode("latin-1"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert message in one_error_line(["generate", str(tiny_run), *args], capsys)


def test_a_latin1_prime_file_with_its_encoding(tiny_run, tmp_path, capsys):
    (tmp_path / "latin1.txt").write_bytes("the café ".encode("latin-1"))
    assert main(["generate", str(tiny_run), "--prime-file", str(tmp_path / "latin1.txt"), "--encoding", "latin-1",
                 "-n", "3", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("the café ") and "2 token(s) of the prime are not in the vocab" in captured.err  # f and é


def test_novelty_of_a_sample_against_its_training_text(tiny_run, capsys):
    from tests.conftest import TINY_TEXT

    (s,) = generate_json(tiny_run, capsys, "--prime", "the cat sat on the m", "-n", "40", "--greedy", "--novelty")
    text, report = s["text"], s["novelty"]
    training = TINY_TEXT[: round(len(TINY_TEXT) * 0.8)]  # the run's training split
    longest = max(j - i for i in range(len(text)) for j in range(i + 1, len(text) + 1) if text[i:j] in training)
    assert report["longest"]["length"] == longest >= 20  # greedy retells what it learned
    tens = [text[i:i + 10] for i in range(len(text) - 9)]
    assert report["shared"][0] == {"n": 10, "found": sum(t in training for t in tens), "total": len(tens),
                                   "fraction": pytest.approx(sum(t in training for t in tens) / len(tens))}
    assert main(["generate", str(tiny_run), "--prime", "the ", "-n", "30", "--seed", "1", "--novelty"]) == 0
    out = capsys.readouterr().out
    assert "--- novelty (the text after the prime) ---" in out and "longest substring found" in out
