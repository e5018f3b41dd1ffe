"""How rnnlm's objects show in a notebook: a training's result, the learning-rate sweep, a run's
card and a scored text (their _repr_html_ / _repr_png_), checked without a kernel."""

import base64
import html
import io
import re

import pytest
from conftest import TINY_TEXT, tiny_config

from rnnlm.inspect.score import UnitChoice, score_text
from rnnlm.runfolder import load_run
from rnnlm.train.lr_find import find_lr
from rnnlm.train.run import train

PNG = b"\x89PNG\r\n\x1a\n"
pytest.importorskip("matplotlib")


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_a_training_result_shows_how_it_ended_and_its_loss_curve(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text(TINY_TEXT)
    result = train(tiny_config(str(data), epochs=2), tmp_path / "run", log=io.StringIO(), progress=False)
    page = result._repr_html_()
    assert f"best valid_loss {result.best['valid_loss']:.4f}" in page and str(result.folder) in html.unescape(page)
    (curve,) = images(page)
    assert curve.startswith(PNG) and curve == (result.folder / "loss.png").read_bytes()


def test_a_run_shows_its_card(tiny_run):
    run = load_run(tiny_run, device="cpu")
    page = run._repr_html_()
    card = run.card()
    assert card["parameters"] > 1000 and f"{card['parameters']:,}" in page
    assert f"{card['best_valid_loss']:,.4f}" in page and images(page)[0].startswith(PNG)


def test_the_learning_rate_sweep_shows_as_a_picture(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text(TINY_TEXT)
    finding = find_lr(tiny_config(str(data)), batches=12)
    assert finding._repr_png_().startswith(PNG)


def test_a_scored_text_shows_its_page_in_a_sandboxed_frame(tiny_run):
    scoring = score_text(load_run(tiny_run, device="cpu"), "the cat sat on the mat", top=2, unit=UnitChoice(unit=1))
    frame = scoring._repr_html_()
    assert frame.startswith("<iframe sandbox=")
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frame)[1])
    assert page.lower().startswith("<!doctype html>") and "the cat sat on the mat" in page and "\"unit\": 1" in page
