import io

import torch

from rnnlm.generate import generate_text, pick_next
from rnnlm.runfolder import load_run


def test_same_seed_same_text(tiny_run):
    run = load_run(tiny_run, device="cpu")
    a = generate_text(run.model, run.tokenizer, run.vocab, "the ", 80, seed=3)
    b = generate_text(run.model, run.tokenizer, run.vocab, "the ", 80, seed=3)
    c = generate_text(run.model, run.tokenizer, run.vocab, "the ", 80, seed=4)
    assert a == b and a != c
    assert a[0].startswith("the ") and len(a[0]) == 84


def test_learned_text_shows_in_greedy_samples(tiny_run):
    run = load_run(tiny_run, device="cpu")
    text = generate_text(run.model, run.tokenizer, run.vocab, "the cat sat on the m", 3, greedy=True)[0]
    assert text == "the cat sat on the mat."


def test_several_samples_in_one_batch(tiny_run):
    run = load_run(tiny_run, device="cpu")
    texts = generate_text(run.model, run.tokenizer, run.vocab, "the", 60, samples=4, seed=1, temperature=1.5)
    assert len(texts) == 4 and len(set(texts)) > 1


def test_unknown_prime_characters_warn_and_still_generate(tiny_run):
    run = load_run(tiny_run, device="cpu")
    warn = io.StringIO()
    text = generate_text(run.model, run.tokenizer, run.vocab, "Zürich ", 20, seed=0, warn=warn)[0]
    assert "xxunk" in warn.getvalue() and len(text) == 27


def test_top_k_one_and_tiny_top_p_are_greedy():
    torch.manual_seed(0)
    logits = torch.randn(5, 30)
    best = logits.argmax(-1)
    assert torch.equal(pick_next(logits, top_k=1), best)
    assert torch.equal(pick_next(logits, top_p=1e-6), best)
    assert torch.equal(pick_next(logits, greedy=True), best)


def test_top_k_never_draws_outside_the_k_best():
    logits = torch.arange(10.0).repeat(200, 1)
    draws = pick_next(logits, top_k=3, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) <= {7, 8, 9} and len(set(draws.tolist())) == 3
