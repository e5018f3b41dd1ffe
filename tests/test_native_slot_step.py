"""The step of many streams in slots in C (rnnlm.generation.native_slot_step): each stream's
draw, scores and state bit for bit those of the batch-1 kernel stepping it alone, whatever the
streams beside it, the cell, the table of input parts or the number of threads."""

import pytest
import torch

from rnnlm.generation.native_slot_step import NativeSlotStep
from rnnlm.generation.native_step import NativeStep, kernels
from rnnlm.generation.session import GenerationSession
from test_native_step import model_of, needs_kernel

VOCAB = 40


def buffers(model, slots, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    state = [torch.randn(cfg.layers, slots, cfg.hidden, generator=g) for _ in range(2 if cfg.cell == "lstm" else 1)]
    return state, torch.randn(slots, model.vocab_size, generator=g) * 3


def alone(native, state, logits, r, token):
    """Stream r stepped alone by the batch-1 kernel on ``token``: its scores and state."""
    mine = tuple(s[:, r : r + 1].clone() for s in state)
    got, new = native.step(token, mine if len(mine) == 2 else mine[0])
    return got, new if isinstance(new, tuple) else (new,)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_each_stream_is_drawn_and_stepped_as_it_would_be_alone(cell, table, threads):
    model = model_of(cell, layers=2, emb=16, hidden=40)  # 40: a last block of 8 units
    native = NativeStep(model, kernels(), table=table)
    bias = torch.zeros(VOCAB)
    bias[[0, 3]] = float("-inf")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n in (1, 2, 5, 9):  # whole groups of streams and parts of one
            state, logits = buffers(model, n + 3, seed=n)
            kernel = NativeSlotStep(native, bias, [s.clone() for s in state], logits.clone())
            temperatures, uniforms = [0.5 + 0.2 * r for r in range(n)], [(0.31 * r + 0.05) % 1 for r in range(n)]
            ids = kernel(n, n + 3, temperatures, uniforms)
            for r in range(n):
                assert ids[r] == native.draw(logits[r], bias, temperatures[r], uniforms[r]) and ids[r] not in (0, 3)
                scores, new = alone(native, state, logits, r, ids[r])
                assert torch.equal(kernel.logits[r], scores)
                for buffer, part in zip(kernel.state, new, strict=True):
                    assert torch.equal(buffer[:, r], part[:, 0])
            for buffer, old in zip(kernel.state, state, strict=True):  # the free slots are left alone
                assert torch.equal(buffer[:, n:], old[:, n:])
            assert torch.equal(kernel.logits[n:], logits[n:])
    finally:
        torch.set_num_threads(before)


@needs_kernel
def test_a_step_on_given_tokens_is_the_step_alone():
    model = model_of("lstm")
    native = NativeStep.of(model)
    state, logits = buffers(model, 8, seed=1)
    kernel = NativeSlotStep(native, torch.zeros(VOCAB), [s.clone() for s in state], logits.clone())
    ids = [4, 39, 0, 17, 4, 2]
    kernel.step(ids)
    for r, token in enumerate(ids):
        scores, new = alone(native, state, logits, r, token)
        assert torch.equal(kernel.logits[r], scores) and torch.equal(kernel.state[1][:, r], new[1][:, 0])


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_steps_run_in_one_call_are_the_steps_one_call_each_bit_for_bit(threads):
    model = model_of("lstm", layers=2, emb=16, hidden=40)
    native = NativeStep.of(model)
    bias = torch.zeros(VOCAB)
    bias[5] = float("-inf")
    state, logits = buffers(model, 9, seed=4)
    in_one = NativeSlotStep(native, bias, [s.clone() for s in state], logits.clone())
    each = NativeSlotStep(native, bias, [s.clone() for s in state], logits.clone())
    temperatures = [0.6, 1.0, 1.4, 0.8, 1.1, 0.9]
    uniforms = [[(0.37 * t + 0.13 * r) % 1 for r in range(6)] for t in range(7)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ran = in_one.run_steps(6, temperatures, uniforms)
        stepped = [each(6, 8, temperatures, row) for row in uniforms]
    finally:
        torch.set_num_threads(before)
    assert ran == stepped and len({tuple(ids) for ids in ran}) > 1 and all(5 not in ids for ids in ran)
    assert torch.equal(in_one.logits, each.logits)
    assert all(torch.equal(a, b) for a, b in zip(in_one.state, each.state, strict=True))
    with pytest.raises(ValueError, match="every step draws for the 6 streams"):
        in_one.run_steps(6, temperatures, [[0.5] * 5])


@needs_kernel
def test_what_the_slot_kernel_reads_is_checked_first():
    model = model_of("lstm")
    native = NativeStep.of(model)
    state, logits = buffers(model, 4, seed=2)
    kernel = NativeSlotStep(native, torch.zeros(VOCAB), state, logits)
    with pytest.raises(ValueError, match="do not fit 4 slots"):
        kernel(5, 8, [1.0] * 5, [0.5] * 5)
    with pytest.raises(IndexError, match="outside the vocabulary of 40"):
        kernel.step([1, VOCAB])
    kernel.state = [torch.zeros(2, 4, 16), state[1]]  # a hidden size not the model's
    with pytest.raises(ValueError, match="state buffer of shape"):
        kernel.step([1])
    kernel.state, kernel.logits = state, logits.double()
    with pytest.raises(ValueError, match="contiguous float32"):
        kernel.step([1])
    kernel.logits = torch.zeros(4, VOCAB + 1)
    with pytest.raises(ValueError, match="not \\(slots, 40\\)"):
        kernel.step([1])


@needs_kernel
def test_prompts_read_together_are_read_as_each_alone_bit_for_bit(tiny_run):
    session = GenerationSession.load(tiny_run, device="cpu")
    prompts = ["the cat sat", "a", "on the mat and the dog ran off"]
    alone = [session.read(p) for p in prompts]
    together = [session.begin_prompt(p) for p in prompts]
    while not all(r.done for r in together):
        session.read_prompts([r for r in together if not r.done], 4)  # pieces of 4, with whichever are left
    for mine, theirs in zip(together, alone, strict=True):
        assert torch.equal(mine.logits, theirs.logits)
        assert all(torch.equal(a, b) for a, b in zip(mine.state, theirs.state, strict=True))


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
def test_tokens_read_layer_by_layer_are_steps_one_at_a_time_bit_for_bit(cell, threads):
    model = model_of(cell, layers=3, emb=16, hidden=40)
    native = NativeStep.of(model)
    state, logits = buffers(model, 5, seed=3)
    tokens = [[1, 7, 39, 2, 2, 5, 0], [4, 4, 4, 4, 4, 4, 4], [38, 1, 0, 12, 9, 3, 6]]
    together = NativeSlotStep(native, torch.zeros(VOCAB), [s.clone() for s in state], logits.clone())
    one_at_a_time = NativeSlotStep(native, torch.zeros(VOCAB), [s.clone() for s in state], logits.clone())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        together.read(tokens)
        for t in range(len(tokens[0])):
            one_at_a_time.step([row[t] for row in tokens])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(together.logits, one_at_a_time.logits)
    assert all(torch.equal(a, b) for a, b in zip(together.state, one_at_a_time.state, strict=True))
    with pytest.raises(ValueError, match="as many tokens"):
        together.read([[1, 2], [3]])


@needs_kernel
def test_streams_stepped_together_are_stepped_as_in_a_servers_slots_bit_for_bit(tiny_run):
    """``complete``'s streams of one request stepped together, and the same streams in slots
    beside others that truncate (the slots' step then draws with torch for those rows and steps
    them all in C): the same tokens, and the same scores and state bit for bit."""
    from rnnlm.generation.sampling import Sampling
    from rnnlm.generation.slots import StreamSlots

    session = GenerationSession.load(tiny_run, device="cpu")
    options = dict(n=3, max_tokens=100, seed=5, sampling=Sampling(temperature=1.3))
    together, in_slots = session.start("the ", **options), session.start("the ", **options)
    others = session.start("a cat", n=2, max_tokens=100, seed=9, sampling=Sampling(top_k=5))
    slots = StreamSlots(session)
    slots.join(in_slots + others)
    for _ in range(12):
        session.step(together)
        slots.step()
    assert not any(s.finished for s in together + in_slots + others) and slots.streams[:3] == in_slots
    assert [s.text for s in in_slots] == [s.text for s in together]
    for i, stream in enumerate(together):
        assert torch.equal(slots.logits[i], stream.logits)
        parts = stream.state if isinstance(stream.state, tuple) else (stream.state,)
        assert all(torch.equal(buffer[:, i], part[:, 0]) for buffer, part in zip(slots.state, parts, strict=True))


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_a_vocabulary_of_several_head_blocks_is_stepped_as_alone(threads):
    model = model_of("lstm", layers=1, emb=24, hidden=48, vocab=150)  # 64 + 64 + 22 logits
    native = NativeStep.of(model)
    state, logits = buffers(model, 6, seed=4)
    bias = torch.zeros(150)
    kernel = NativeSlotStep(native, bias, [s.clone() for s in state], logits.clone())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ids = kernel(6, 6, [0.9] * 6, [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
        for r in range(6):
            assert ids[r] == native.draw(logits[r], bias, 0.9, [0.1, 0.3, 0.5, 0.7, 0.9, 0.99][r])
            scores, new = alone(native, state, logits, r, ids[r])
            assert torch.equal(kernel.logits[r], scores) and torch.equal(kernel.state[0][:, r], new[0][:, 0])
    finally:
        torch.set_num_threads(before)
