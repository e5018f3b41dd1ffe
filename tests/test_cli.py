import json
import shutil
import subprocess
import sys

import pytest

from rnnlm.cli import main

TINY_MODEL = ["--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "4", "--bptt", "8",
              "--epochs", "1", "--device", "cpu"]


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code, err, needle):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.bin").write_bytes(b"\x7fELF\x00\x00\x01\x02" * 50)
    (tmp_path / "latin1.txt").write_bytes("café crème ".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("just a few characters")
    (tmp_path / "file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize("args,needle", [
    (["{d}/missing.txt"], "no such file"),
    (["{d}/empty.txt"], "is empty"),
    (["{d}/binary.bin"], "binary"),
    (["{d}/latin1.txt"], "not UTF-8"),
    (["{d}/short.txt"], "fewer than one batch"),
    (["--bptt", "0"], "--bptt must be >= 1"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "-0.001"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be > 0"),
    (["--model", "transformer"], "invalid choice: 'transformer'"),
    (["--dropout", "1"], "--dropout must be in [0, 1)"),
    (["--dropout", "-0.5"], "--dropout must be in [0, 1)"),
    (["--bs", "many"], "invalid int value"),
    (["--valid-frac", "1.5"], "--valid-frac must be in (0, 1)"),
    (["--tie", "--emb", "8", "--hidden", "16"], "--tie needs"),
    (["--out", "{d}/file"], "is a file"),
    (["--valid", "{d}/missing.txt"], "no such file"),
])
def test_train_mistakes_exit_2_with_one_line(files, capsys, args, needle):
    argv = ["train", *[a.format(d=files) for a in args]]
    if "--out" not in args:
        argv += ["--out", str(files / "run")]
    code, _, err = run_cli(argv, capsys)
    assert_usage_error(code, err, needle)
    assert not (files / "run").exists()  # nothing half-written
    assert (files / "file").read_text() == "not a folder"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clirun")
    text = root / "text.txt"
    text.write_text("abcabdabe " * 300)
    assert main(["train", str(text), *TINY_MODEL, "--out", str(root / "run")]) == 0
    return root / "run"


def test_train_prints_table_and_sample(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 100)
    code, out, _ = run_cli(["train", str(text), *TINY_MODEL, "--epochs", "2", "--out", str(tmp_path / "r")], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "bpc", "time"]
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"]
    assert any(line.startswith("sample: ") for line in lines)


def test_generate_is_reproducible_with_a_seed(cli_run, capsys):
    argv = ["generate", str(cli_run), "--prime", "ab", "-n", "50", "--seed", "7"]
    first = run_cli(argv, capsys)
    second = run_cli(argv, capsys)
    assert first[0] == 0 and first[1] == second[1]
    assert first[1].startswith("ab") and len(first[1].rstrip("\n")) == 52


def test_generate_samples(cli_run, capsys):
    code, out, _ = run_cli(["generate", str(cli_run), "-n", "10", "--samples", "3", "--seed", "1"], capsys)
    assert code == 0 and out.count("--- sample") == 3


def test_evaluate_json(cli_run, capsys):
    code, out, _ = run_cli(["evaluate", str(cli_run), "--json"], capsys)
    scores = json.loads(out)
    assert code == 0
    assert set(scores) >= {"loss", "perplexity", "bits", "accuracy", "tokens"}
    assert scores["tokens"] > 0 and scores["perplexity"] == pytest.approx(2.718281828 ** scores["loss"], rel=1e-6)


@pytest.mark.parametrize("args,needle", [
    (["generate", "{d}"], "not a run folder"),
    (["evaluate", "{d}"], "not a run folder"),
    (["generate", "{d}/nope"], "no such run folder"),
    (["generate", "{run}", "-n", "-1"], "-n must be in"),
    (["generate", "{run}", "--temperature", "0"], "--temperature must be a finite number > 0"),
    (["generate", "{run}", "--top-p", "2"], "--top-p must be in (0, 1]"),
    (["generate", "{run}", "--top-k", "0"], "--top-k must be >= 1"),
    (["generate", "{run}", "--samples", "0"], "--samples must be in"),
    (["evaluate", "{run}", "{d}/missing.txt"], "no such file"),
])
def test_generate_and_evaluate_mistakes_exit_2(cli_run, tmp_path, capsys, args, needle):
    code, _, err = run_cli([a.format(d=tmp_path, run=cli_run) for a in args], capsys)
    assert_usage_error(code, err, needle)


def test_damaged_checkpoint_exits_2(cli_run, tmp_path, capsys):
    run = shutil.copytree(cli_run, tmp_path / "run")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(["generate", str(run)], capsys)
    assert_usage_error(code, err, "damaged")


def test_console_script_exit_status_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rnnlm", "train", str(tmp_path / "missing.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"rnnlm train: error: {tmp_path / 'missing.txt'}: no such file or folder"


def test_datasets_lists_the_builtins(capsys):
    code, out, _ = run_cli(["datasets"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["human-numbers", "nietzsche", "tinyshakespeare"]
