"""TensorBoard's event files of a run, read back as TensorBoard reads them."""

import io

import pytest
from conftest import TINY, TINY_TEXT, one_error_line, tiny_config
from test_resume import InterruptAt

from rnnlm.cli import main
from rnnlm.errors import SettingError
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def samples(accumulator: EventAccumulator) -> list[str]:
    return [e.tensor_proto.string_val[0].decode() for e in accumulator.Tensors("sample/text_summary")]


def test_each_validation_writes_its_scalars_and_a_sample(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text(TINY_TEXT)
    result = train(tiny_config(str(data), epochs=3), tmp_path / "run", log=io.StringIO(), progress=False,
                   tensorboard=tmp_path / "tb")
    found = events(tmp_path / "tb")
    valid = found.Scalars("loss/valid")
    assert [e.step for e in valid] == [row["step"] for row in result.history]
    assert [e.value for e in valid] == pytest.approx([row["valid_loss"] for row in result.history], rel=1e-6)
    assert [e.value for e in found.Scalars("bits_per_char")] == pytest.approx(
        [row["bpc"] for row in result.history], rel=1e-6)
    assert all(e.value > 0 for e in found.Scalars("tokens_per_s"))
    assert len(found.Scalars("loss/train_running")) > len(valid)  # the running loss at every sync
    texts = samples(found)
    assert len(texts) == 3 and all(len(t) == 200 for t in texts)  # a char-level sample of 200 tokens
    assert set("".join(texts)) <= set(TINY_TEXT)  # written with the run's own vocab
    assert texts[-1].count("the ") > texts[0].count("the ")  # and the model learned between them


def test_a_resumed_session_adds_its_validations(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text(TINY_TEXT)
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(str(data), epochs=3), tmp_path / "run", log=io.StringIO(), progress=False,
              callbacks=[InterruptAt(1, 5)], tensorboard=tmp_path / "tb")
    assert len(events(tmp_path / "tb").Scalars("loss/valid")) == 1
    resumed = resume(tmp_path / "run", log=io.StringIO(), progress=False, tensorboard=tmp_path / "tb")
    valid = events(tmp_path / "tb").Scalars("loss/valid")
    assert [e.step for e in valid] == [row["step"] for row in resumed.history]  # 3: one before, two after


def test_a_file_where_the_folder_goes_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "tb").write_text("not a folder")
    data = tmp_path / "tiny.txt"
    data.write_text(TINY_TEXT)
    with pytest.raises(SettingError) as error:
        train(tiny_config(str(data)), tmp_path / "run", log=io.StringIO(), tensorboard=tmp_path / "tb")
    assert error.value.field == "tensorboard"
    err = one_error_line(["train", str(data), *TINY, "--out", str(tmp_path / "cli"), "--tensorboard",
                          str(tmp_path / "tb")], capsys)
    assert f"--tensorboard {tmp_path / 'tb'}: is a file, not a folder" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cli").exists()
    assert main(["train", str(data), *TINY, "--out", str(tmp_path / "cli"), "--tensorboard",
                 str(tmp_path / "events")]) == 0
    assert len(events(tmp_path / "events").Scalars("loss/valid")) == 1
