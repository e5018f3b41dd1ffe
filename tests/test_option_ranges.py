"""Every numeric option of every command is checked, and its message gives the range; limits
where memory or time would run out; --prime, --out and very long values."""

import sys

import pytest

from rnnlm.cli import main

from conftest import TINY, one_error_line


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("options") / "text.txt"
    path.write_text("the cat sat on the mat. " * 200)
    return path


TRAINING = [  # options shared by train and lr-find: (argv, message)
    (["--min-freq", "0"], "--min-freq must be >= 1 (got 0)"),
    (["--max-size", "0"], "--max-size must be >= 1 (got 0)"),
    (["--valid-frac", "0"], "--valid-frac must be in (0, 1) (got 0.0)"),
    (["--valid-frac", "1"], "--valid-frac must be in (0, 1) (got 1.0)"),
    (["--valid-frac", "nan"], "--valid-frac must be in (0, 1) (got nan)"),
    (["--layers", "0"], "--layers must be >= 1 (got 0)"),
    (["--emb", "0"], "--emb must be >= 1 (got 0)"),
    (["--hidden", "-3"], "--hidden must be >= 1 (got -3)"),
    (["--dropout", "1"], "--dropout must be in [0, 1) (got 1.0)"),
    (["--emb-dropout", "-0.1"], "--emb-dropout must be in [0, 1) (got -0.1)"),
    (["--weight-dropout", "2"], "--weight-dropout must be in [0, 1) (got 2.0)"),
    (["--ar", "-1"], "--ar must be >= 0 (got -1.0)"),
    (["--tar", "nan"], "--tar must be >= 0 (got nan)"),
    (["--wd", "inf"], "--wd must be >= 0 (got inf)"),
    (["--bs", "0"], "--bs must be >= 1 (got 0)"),
    (["--bptt", "-1"], "--bptt must be >= 1 (got -1)"),
    (["--clip", "-1"], "--clip must be >= 0 (got -1.0)"),
    (["--seed", "-1"], "--seed must be in 0..4294967295 (got -1)"),
    (["--seed", str(2**32)], "--seed must be in 0..4294967295 (got 4294967296)"),
    (["--bs", "lots"], "argument --bs: invalid int value: 'lots'"),
    (["--encoding", "rot13"], "--encoding 'rot13': not a text encoding"),
    (["--hidden", str(10**7)], "needs about"),
    (["--emb", str(10**12)], "use a smaller --hidden, --emb, --layers, --bs or --bptt"),
    (["--layers", str(10**5)], "needs about"),
    (["--bs", str(10**9)], "fewer than one batch (--bs 1000000000 x --bptt 20 + 1 = 20000000001)"),
    (["--bptt", str(10**12)], "fewer than one batch"),
    (["--min-freq", str(10**30)], "no token occurs --min-freq 1000000000000000000000000000000 times"),
]

TRAIN_ONLY = [
    (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
    (["--lr", "0"], "--lr must be > 0 (got 0.0)"),
    (["--lr", "inf"], "--lr must be > 0 (got inf)"),
    (["--lr", "1e-3:0"], "--lr phase 0.001:0 needs a whole number of epochs >= 1"),
    (["--lr", "1e-3:2", "--epochs", "3"], "--epochs conflicts with --lr phases"),
    (["--cycle-len", "0"], "--cycle-len must be >= 1 (got 0)"),
    (["--cycle-mult", "0"], "--cycle-mult must be >= 1 (got 0)"),
    (["--max-minutes", "0"], "--max-minutes must be > 0 (got 0.0)"),
    (["--max-minutes", "inf"], "--max-minutes must be > 0 (got inf)"),
    (["--patience", "0"], "--patience must be >= 1 (got 0)"),
    (["--save-every", "0"], "--save-every must be >= 1 (got 0)"),
]

SWEEP = [
    (["--start-lr", "0"], "--start-lr must be > 0 and below --end-lr"),
    (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr must be > 0 and below --end-lr"),
    (["--end-lr", "inf"], "a finite number (got 1e-07 and inf)"),
    (["--batches", "1"], "--batches must be in 2..100000 (got 1)"),
    (["--batches", str(10**9)], "--batches must be in 2..100000 (got 1000000000)"),
    (["--plot", "/nonexistent/lr.png"], "--plot /nonexistent/lr.png: no folder /nonexistent to write it in"),
]


@pytest.mark.parametrize("args,message", TRAINING + TRAIN_ONLY)
def test_train_options(text, tmp_path, capsys, args, message):
    err = one_error_line(["train", str(text), *args, "--out", str(tmp_path / "run")], capsys)
    assert message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", TRAINING + SWEEP)
def test_lr_find_options(text, tmp_path, capsys, args, message):
    assert message in one_error_line(["lr-find", str(text), *args], capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("optrun") / "run"
    assert main(["train", str(text), *TINY, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("args,message", [
    (["-n", "-1"], "-n must be in 0..100000 (got -1)"),
    (["-n", str(10**9)], "-n must be in 0..100000 (got 1000000000)"),
    (["--samples", "0"], "--samples must be in 1..1000 (got 0)"),
    (["--samples", str(10**6)], "--samples must be in 1..1000 (got 1000000)"),
    (["-n", "100000", "--samples", "1000"], "-n x --samples must be at most 10,000,000 tokens (got 100,000,000)"),
    (["--temperature", "0"], "--temperature must be a finite number > 0 (got 0.0)"),
    (["--temperature", "nan"], "--temperature must be a finite number > 0 (got nan)"),
    (["--temperature", "inf"], "--temperature must be a finite number > 0 (got inf)"),
    (["--top-k", "0"], "--top-k must be >= 1 (got 0)"),
    (["--top-p", "0"], "--top-p must be in (0, 1] (got 0.0)"),
    (["--top-p", "nan"], "--top-p must be in (0, 1] (got nan)"),
    (["--seed", "-1"], "--seed must be in 0..18446744073709551615 (got -1)"),
    (["--seed", str(2**64)], "--seed must be in 0..18446744073709551615"),
])
def test_generate_options(run, capsys, args, message):
    assert message in one_error_line(["generate", str(run), *args], capsys)


@pytest.mark.parametrize("args", [
    ["--temperature", "1e-45"],  # a tiny temperature is greedy, not a crash
    ["--temperature", "1e30"],
    ["--top-k", str(10**12)],
    ["--top-p", "1e-300"],
    ["--seed", str(2**64 - 1)],
    ["-n", "0"],
])
def test_extreme_but_valid_sampling_works(run, capsys, args):
    length = [] if "-n" in args else ["-n", "20"]
    assert main(["generate", str(run), "--prime", "the ", *length, *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ") and len(out) == len("the ") + (0 if length == [] else 20) + 1


def test_a_long_prime_with_unknown_characters_warns_and_generates(run, capsys):
    prime = "the cat sat on the mat. Über 東京 " * 3000  # about 100,000 characters: run in pieces
    unknown = sum(c not in "the cat sat on the mat. " for c in prime)
    assert main(["generate", str(run), "--prime", prime, "-n", "30", "--seed", "0", "--samples", "2"]) == 0
    out, err = capsys.readouterr()
    assert err == f"warning: {unknown} token(s) of the prime are not in the vocab; read as xxunk\n"
    samples = out.split("--- sample ")[1:]
    assert len(samples) == 2 and all(s.split("\n", 1)[1].startswith(prime) for s in samples)
    assert all(len(s.split("\n", 1)[1].rstrip("\n")) == len(prime) + 30 for s in samples)


def test_a_long_prime_gives_what_a_short_window_of_it_would_not(run):
    """The prime is fed in pieces, each carrying the state of the one before: the same as one
    pass over the whole prime."""
    import torch

    from rnnlm.generation.prompt import WHOLE_PIECE
    from rnnlm.generation.session import GenerationSession

    session = GenerationSession.load(run, device="cpu")
    prime = torch.randint(3, 14, (WHOLE_PIECE * 2 + 5,)).tolist()
    reading = session.read(prime)
    with torch.inference_mode():
        whole, whole_state = session.model(torch.tensor([prime]))
    assert torch.allclose(reading.logits, whole[0, -1], atol=1e-5)
    assert torch.allclose(reading.state[:, 0], whole_state[:, 0], atol=1e-5)


def test_out_never_overwrites(text, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("keep me")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.md").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "file.txt")
    for out, message in [(tmp_path / "file.txt", "is a file, not a folder"),
                         (tmp_path / "link", "is a file, not a folder"),
                         (tmp_path / "folder", "folder already holds files"),
                         (tmp_path / "file.txt" / "run", "cannot create folder (Not a directory)"),
                         (tmp_path / ("x" * 5000), "xxx...: cannot create folder (File name too long)")]:
        assert message in one_error_line(["train", str(text), *TINY, "--out", str(out)], capsys)
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["notes.md"]


def test_an_existing_empty_folder_is_kept_when_training_fails(text, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "fewer than one batch" in one_error_line(
        ["train", str(text), *TINY, "--bs", "100000", "--out", str(tmp_path / "empty")], capsys)
    assert (tmp_path / "empty").is_dir() and list((tmp_path / "empty").iterdir()) == []


def test_a_very_long_value_gives_a_short_message(text, tmp_path, capsys):
    err = one_error_line(["train", "y" * 100_000, "--out", str(tmp_path / "run")], capsys)
    assert "file name too long" in err and len(err) < 300
    err = one_error_line(["train", str(text), "--encoding", "z" * 100_000], capsys)
    assert "not a text encoding" in err and len(err) < 300


def test_unexpected_failures_are_one_line_too(text, tmp_path, capsys, monkeypatch):
    """The safety net of the command line: a bug is one line and status 1, memory and disk
    trouble one line and status 2 (RNNLM_DEBUG=1 shows the traceback)."""
    import rnnlm.train.planning as run_module

    for error, status, message in [
        (ValueError("surprise"), 1, "internal error (ValueError: surprise); this is a bug in rnnlm"),
        (MemoryError(), 2, "out of memory; try a smaller --bs"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), 2, "out of memory"),
        (OSError(28, "No space left on device", "/x/y"), 2, "/x/y: No space left on device"),
    ]:
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(run_module, "load_data", fail)
        code = main(["train", str(text), "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == status and err.count("\n") == 1 and message in err, err
    monkeypatch.setenv("RNNLM_DEBUG", "1")
    with pytest.raises(OSError):
        main(["train", str(text), "--out", str(tmp_path / "run")])


def test_generated_text_cannot_drive_a_terminal(run, capsys, monkeypatch):
    """Control characters (here an escape sequence that sets the clipboard) reach a terminal
    escaped; piped output stays byte for byte what the model wrote."""
    prime = "the \x1b]52;c;cm0gLXJmIH4=\x07cat\ttab"
    assert main(["generate", str(run), "--prime", prime, "-n", "0"]) == 0
    assert capsys.readouterr().out == prime + "\n"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["generate", str(run), "--prime", prime, "-n", "0"]) == 0
    assert capsys.readouterr().out == "the \\x1b]52;c;cm0gLXJmIH4=\\x07cat\ttab\n"
