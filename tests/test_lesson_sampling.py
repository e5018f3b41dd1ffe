"""The lessons' sliding-window sampling against rnnlm's stateful generation."""

import random

import torch

from rnnlm.lessons.sampling import get_next, get_next_n
from rnnlm.lessons import models as m
from rnnlm.runfolder import load_run
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession


def stateful(run, prime, n, greedy=False, seed=0):
    """rnnlm's own generation: the prime read once, then one step a token."""
    session = GenerationSession(run)
    (stream,) = session.start(prime, max_tokens=n, seed=seed, logprobs=0,
                              sampling=Sampling(greedy=greedy))
    for _ in session.run_streams([stream]):
        pass
    return [r.id for r in stream.records]


def test_greedy_without_a_window_limit_is_stateful_generation(tiny_run):
    """Re-reading everything for every token gives what carrying the state gives, at O(n) a token."""
    run = load_run(tiny_run, device="cpu")
    prime = run.tokenizer.encode("the dog sat on ", run.vocab).tolist()
    lesson_way = get_next_n(run.model, prime, 40, greedy=True, window=None)
    assert lesson_way == stateful(run, prime, 40, greedy=True)
    assert run.tokenizer.decode(lesson_way, run.vocab).startswith("the ")  # it learned the text


def test_draws_match_with_the_same_seed(tiny_run):
    run = load_run(tiny_run, device="cpu")
    prime = run.tokenizer.encode("the ", run.vocab).tolist()
    lesson_way = get_next_n(run.model, prime, 60, greedy=False, window=None, rng=random.Random(5))
    assert lesson_way == stateful(run, prime, 60, seed=5)
    other = get_next_n(run.model, prime, 60, greedy=False, window=None, rng=random.Random(6))
    assert other != lesson_way


def test_the_lessons_window_forgets_what_slid_out(tiny_run):
    """With the lessons' fixed window the first token is the same; later ones see less context."""
    run = load_run(tiny_run, device="cpu")
    prime = run.tokenizer.encode("the cat sat on the ", run.vocab).tolist()
    windowed = get_next_n(run.model, prime, 30, greedy=True)  # window = len(prime), as the lessons
    assert windowed[0] == stateful(run, prime, 1, greedy=True)[0]
    short = get_next_n(run.model, prime[-2:], 30, greedy=True)  # a 2-character window
    assert len(windowed) == len(short) == 30 and short != windowed


def test_get_next_reads_each_window_from_a_zero_state():
    torch.manual_seed(0)
    model = m.CharSeqStatefulGRU(20, 4, 8)
    first = get_next(model, [1, 2, 3], greedy=False, rng=random.Random(0))
    model(torch.randint(0, 20, (1, 50)))  # leave some state behind
    again = get_next(model, [1, 2, 3], greedy=False, rng=random.Random(0))
    assert first == again


def test_window_models_sample_one_token_at_a_time():
    torch.manual_seed(0)
    model = m.CharLoopModel(20, 4, 8)
    new = get_next_n(model, [1, 2, 3, 4, 5, 6, 7, 8], 10)
    logits = model(torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]))
    assert len(new) == 10 and new[0] == int(logits.argmax())
