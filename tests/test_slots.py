"""StreamSlots: the streams a server steps together, their states in slots. Streams that join and
leave at different steps, past the buffers' first size, each write the text its seed gives alone."""

import pytest
import torch

from rnnlm.generation.native_slot_step import NativeSlotStep
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
from rnnlm.generation.single_stream_step import SingleStreamStep
from rnnlm.generation.slots import FIRST_SLOTS, StreamSlots

SETTINGS = [Sampling(), Sampling(temperature=0.7), Sampling(top_k=5), Sampling(top_p=0.9), Sampling(greedy=True)]


def alone_text(session: GenerationSession, prompt: str, **options) -> tuple[str, str]:
    (stream,) = session.start(prompt, **options)
    for _ in session.run_streams([stream]):
        pass
    return stream.text, stream.finish_reason


def test_streams_joining_and_leaving_write_their_seeds_text(tiny_run):
    session = GenerationSession.load(tiny_run, device="cpu")
    slots, requests, got = StreamSlots(session), [], {}
    for i in range(3 * FIRST_SLOTS):
        options = dict(max_tokens=3 + (7 * i) % 23, seed=100 + i, sampling=SETTINGS[i % len(SETTINGS)],
                       stop=("e ",) if i % 3 == 0 else ())
        requests.append(("the " if i % 2 else "a cat", options))
    waiting, step, grew = list(enumerate(requests)), 0, False
    while waiting or len(slots):
        if waiting and step % 2 == 0:  # two join every other step
            for i, (prompt, options) in waiting[:2]:
                (stream,) = session.start(prompt, **options)
                stream.request = i
                slots.join([stream])
            waiting = waiting[2:]
        grew = grew or slots.capacity > FIRST_SLOTS
        for piece in slots.step():
            if piece.finish_reason is not None:
                got[piece.stream.request] = (piece.stream.text, piece.finish_reason)
        assert all(not s.finished for s in slots.streams)
        step += 1
        assert step < 1000
    assert grew and len(got) == len(requests)
    for i, (prompt, options) in enumerate(requests):
        assert got[i] == alone_text(session, prompt, **options), i
    assert {reason for _, reason in got.values()} >= {"length", "stop"}


def test_a_stream_removed_frees_its_slot_and_the_others_go_on(tiny_run):
    session = GenerationSession.load(tiny_run, device="cpu")
    slots = StreamSlots(session)
    streams = session.start("the ", n=4, max_tokens=30, seed=7)
    slots.join(streams)
    assert all(s.state is None for s in streams)  # the slots hold them now
    slots.step()
    slots.remove([streams[1]])
    assert slots.streams == [streams[0], streams[2], streams[3]] and streams[1].finish_reason == "length"
    while len(slots):
        slots.step()
    for i in (0, 2, 3):
        assert streams[i].text == alone_text(session, "the ", max_tokens=30, seed=7 + i)[0]


def test_the_slots_state_is_the_streams_state(tiny_run):
    """After a step the first slots hold exactly what the streams stepped alone would hold."""
    session = GenerationSession.load(tiny_run, device="cpu")
    slots = StreamSlots(session)
    streams = session.start("a cat", n=3, max_tokens=5, seed=1, sampling=Sampling(greedy=True))
    alone = session.start("a cat", n=3, max_tokens=5, seed=1, sampling=Sampling(greedy=True))
    slots.join(streams)
    slots.step()
    session.step(alone)
    for i, stream in enumerate(alone):
        assert torch.allclose(slots.logits[i], stream.logits, atol=1e-5)
        assert torch.allclose(slots.state[0][:, i], stream.state[:, 0], atol=1e-5)


@pytest.mark.parametrize("native, steps", [(True, 1), (True, 5), (False, 1), (False, 5)])
def test_streams_drawn_by_temperature_take_the_one_call_and_write_their_seeds_text(tiny_run, monkeypatch, native,
                                                                                  steps):
    """Streams that all draw by temperature are drawn and stepped by the slots' kernel (one call
    on the buffers: the C kernel where the lone stream steps in C, else TorchScript), through
    joins, leaves and the buffers' growth: each writes what its seed writes alone, also where a
    call writes several tokens a stream (the C kernel; TorchScript writes one)."""
    session = GenerationSession.load(tiny_run, device="cpu")
    session.single = SingleStreamStep(session.model, native=native)
    calls = []
    real = GenerationSession.slot_kernel

    def counted(self, state, logits):
        kernel = real(self, state, logits)
        in_c = session.single.native is not None
        assert isinstance(kernel, NativeSlotStep if in_c else torch.jit.ScriptModule)
        return Counted(kernel, calls)

    monkeypatch.setattr(GenerationSession, "slot_kernel", counted)
    slots, got, requests = StreamSlots(session), {}, []
    for i in range(2 * FIRST_SLOTS + 3):
        requests.append(("the " if i % 2 else "a cat", dict(max_tokens=2 + (5 * i) % 17, seed=7 + i,
                                                            sampling=Sampling(temperature=(0.6, 1.0, 1.4)[i % 3]))))
    for i, (prompt, options) in enumerate(requests):
        (stream,) = session.start(prompt, **options)
        stream.request = i
        slots.join([stream])
        if i % 3 == 2:  # one token a stream while they join: the buffers grow
            for piece in slots.step():
                if piece.finish_reason is not None:
                    got[piece.stream.request] = (piece.stream.text, piece.finish_reason)
    most = 0  # pieces of one stream in one call
    while len(slots):
        pieces = slots.step(steps)
        most = max(most, max(sum(p.stream is q.stream for p in pieces) for q in pieces))
        for piece in pieces:
            if piece.finish_reason is not None:
                got[piece.stream.request] = (piece.stream.text, piece.finish_reason)
    assert most == (steps if native else 1)
    assert len(calls) > (5 if steps > 1 else 10)
    assert slots.capacity > FIRST_SLOTS and isinstance(slots.kernel, Counted)
    assert slots.kernel.state[0] is slots.state[0] and slots.kernel.logits is slots.logits  # set again after growing
    for i, (prompt, options) in enumerate(requests):
        assert got[i] == alone_text(session, prompt, **options), i


class Counted:
    """A kernel whose calls (of one step or several) are counted; its buffers are the kernel's own."""

    def __init__(self, kernel, calls):
        self.__dict__.update(inner=kernel, calls=calls)

    def __call__(self, *args):
        self.calls.append(args[0])
        return self.inner(*args)

    def __getattr__(self, name):
        found = getattr(self.inner, name)
        if name != "run_steps":
            return found

        def run_steps(*args):
            self.calls.append(args[0])
            return found(*args)

        return run_steps

    def __setattr__(self, name, value):
        setattr(self.inner, name, value)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_kernel_draws_and_steps_as_draw_then_step_bit_for_bit(cell):
    """One call of the slots' kernel: the ids ``draw`` gives and the state and scores
    ``BatchedStep.step_into`` leaves, exactly, on a block larger than its streams."""
    from rnnlm.config import ModelConfig
    from rnnlm.generation.batched_step import BatchedStep
    from rnnlm.generation.sampling import draw
    from rnnlm.generation.slot_step import slot_step
    from rnnlm.models import RecurrentLM

    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, tie=False)).eval()
    banned = torch.zeros(40, dtype=torch.bool)
    banned[[0, 1]] = True
    state = [torch.randn(2, 16, 32) for _ in range(2 if cell == "lstm" else 1)]
    logits = torch.randn(16, 40) * 3
    theirs_state, theirs_logits = [s.clone() for s in state], logits.clone()
    kernel = slot_step(BatchedStep(model), banned, state, logits)
    assert isinstance(kernel, torch.jit.ScriptModule)
    temps, uniforms = [0.5 + 0.1 * i for i in range(11)], [0.09 * i for i in range(11)]
    with torch.inference_mode():
        for _ in range(3):
            ids = kernel(11, 16, temps, uniforms)
            expected = draw(theirs_logits[:11], [Sampling(t) for t in temps], uniforms, banned)
            block = tuple(s[:, :16] for s in theirs_state)
            BatchedStep(model).step_into(expected, block if len(block) == 2 else block[0], out=theirs_logits[:16])
            assert ids == expected.tolist() and not banned[ids].any()
            assert torch.equal(logits, theirs_logits) and all(torch.equal(a, b) for a, b in zip(state, theirs_state))
