"""BatchedStep: one token for a batch of streams, the same as a call of the model, for every cell."""

import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.models import RecurrentLM
from rnnlm.generation.batched_step import BatchedStep
from rnnlm.generation.single_stream_step import SingleStreamStep, TorchSingleStep


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("locked", [False, True])
def test_one_step_is_the_models_step(cell, locked):
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, locked_dropout=locked, tie=False)).eval()
    state = model.init_state(3)
    state = tuple(s.normal_() for s in state) if isinstance(state, tuple) else state.normal_()
    ids = torch.tensor([1, 5, 39])
    with torch.inference_mode():
        logits, expected = model(ids[:, None], state)
        got_logits, got = BatchedStep(model).step(ids, state)
    assert torch.allclose(got_logits, logits[:, 0], atol=1e-5)
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("locked", [False, True])
def test_single_step_is_the_models_step(cell, locked):
    """The batch-1 step: its probabilities are those of the model's forward, step after step."""
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, locked_dropout=locked, tie=False)).eval()
    state = model.init_state(1)
    state = tuple(s.normal_() for s in state) if isinstance(state, tuple) else state.normal_()
    before = tuple(s.clone() for s in state) if isinstance(state, tuple) else state.clone()
    stepper, ours = SingleStreamStep(model), state
    with torch.inference_mode():
        logits, expected = model(torch.tensor([[1, 5, 39, 0, 7]]), state)
        for t, token in enumerate([1, 5, 39, 0, 7]):
            got_logits, ours = stepper.step(token, ours)
            assert got_logits.shape == (40,)
            assert torch.allclose(got_logits.softmax(0), logits[0, t].softmax(0), atol=1e-5)
            assert torch.allclose(got_logits, logits[0, t], atol=1e-5)
    for a, b in zip(parts(ours), parts(expected), strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    for a, b in zip(parts(state), parts(before), strict=True):
        assert torch.equal(a, b)  # the state it was given is never written to


def parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_step_in_place_on_a_block_of_slots(cell):
    """``step_into`` on the first rows of a larger slot buffer: the rows of the block get the new
    state, the slots after it are left alone."""
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, tie=False)).eval()
    slots = model.init_state(5)
    slots = tuple(s.normal_() for s in slots) if isinstance(slots, tuple) else slots.normal_()
    before = [s.clone() for s in parts(slots)]
    ids = torch.tensor([1, 5, 39])
    stepper = BatchedStep(model)
    with torch.inference_mode():
        block = tuple(s[:, :3] for s in slots) if isinstance(slots, tuple) else slots[:, :3]
        expected_logits, expected = stepper.step(ids, block)
        logits = stepper.step_into(ids, block)
    assert torch.equal(logits, expected_logits)
    for got, want, old in zip(parts(slots), parts(expected), before, strict=True):
        assert torch.equal(got[:, :3], want) and not torch.equal(got[:, :3], old[:, :3])
        assert torch.equal(got[:, 3:], old[:, 3:])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_scripted_step_is_the_eager_step_bit_for_bit(cell):
    """The step runs as TorchScript (one call): compiled here, with the eager function's numbers
    exactly, into a block of slots with rows past the streams' (token 0 there)."""
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, tie=False)).eval()
    scripted, eager = BatchedStep(model), BatchedStep(model, script=False)
    assert isinstance(scripted.run, torch.jit.ScriptFunction) and not isinstance(eager.run, torch.jit.ScriptFunction)
    slots = model.init_state(8)
    slots = tuple(s.normal_() for s in slots) if isinstance(slots, tuple) else slots.normal_()
    copy = [s.clone() for s in parts(slots)]
    theirs = tuple(copy) if isinstance(slots, tuple) else copy[0]
    ours_out, theirs_out = torch.zeros(8, 40), torch.zeros(8, 40)
    with torch.inference_mode():
        for ids in ([1, 5, 39], [2, 2, 2, 7, 0, 3], [39]):
            block = tuple(s[:, :8] for s in parts(slots))
            scripted.step_into(torch.tensor(ids), block if isinstance(slots, tuple) else block[0], out=ours_out)
            eager.step_into(torch.tensor(ids), tuple(s[:, :8] for s in copy) if isinstance(slots, tuple) else copy[0],
                            out=theirs_out)
            assert torch.equal(ours_out, theirs_out) and ours_out.abs().sum() > 0
            for a, b in zip(parts(slots), parts(theirs)):
                assert torch.equal(a, b)
        padded = torch.tensor([39, 0, 0, 0, 0, 0, 0, 0])
        assert torch.equal(scripted.step(padded, theirs)[0], eager.step(padded, theirs)[0])


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_the_scripted_single_step_is_the_eager_one_bit_for_bit(cell):
    """The batch-1 step of an LSTM or RNN runs as TorchScript (one call): compiled here, with the
    eager function's logits and state exactly, token after token."""
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, tie=False)).eval()
    scripted, eager = TorchSingleStep(model), TorchSingleStep(model, script=False)
    assert isinstance(scripted.run, torch.jit.ScriptFunction) and not isinstance(eager.run, torch.jit.ScriptFunction)
    state = model.init_state(1)
    ours = theirs = tuple(s.normal_() for s in state) if isinstance(state, tuple) else state.normal_()
    with torch.inference_mode():
        for token in [1, 5, 39, 0, 7, 7]:
            (a, ours), (b, theirs) = scripted.step(token, ours), eager.step(token, theirs)
            assert torch.equal(a, b)
            for x, y in zip(parts(ours), parts(theirs), strict=True):
                assert torch.equal(x, y)
