"""StreamSlots: the streams a server steps together, their states in slots. Streams that join and
leave at different steps, past the buffers' first size, each write the text its seed gives alone."""

import torch

from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
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
