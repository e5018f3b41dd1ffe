"""rnnlm.generation.sampling: each row of a batch drawn with its own settings and its own uniform number."""

import random

import pytest
import torch

from rnnlm.generation.sampling import Sampling, draw, draw_one


def uniforms(n, seed=0):
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def test_top_k_one_tiny_top_p_and_greedy_take_the_most_likely_token():
    torch.manual_seed(0)
    logits = torch.randn(5, 30)
    best = logits.argmax(-1)
    for settings in (Sampling(top_k=1), Sampling(top_p=1e-6), Sampling(greedy=True), Sampling(temperature=1e-6)):
        assert torch.equal(draw(logits, [settings] * 5, uniforms(5)), best), settings


def test_top_k_never_draws_outside_the_k_best():
    logits = torch.arange(10.0).repeat(300, 1)
    ids = draw(logits, [Sampling(top_k=3, temperature=5.0)] * 300, uniforms(300)).tolist()
    assert set(ids) == {7, 8, 9}


def test_top_p_keeps_the_smallest_set_holding_that_mass():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(400, 1)
    ids = draw(logits, [Sampling(top_p=0.75)] * 400, uniforms(400)).tolist()
    assert set(ids) == {0, 1}  # 0.5 < 0.75 needs the second; 0.8 >= 0.75 needs no third


def test_draws_follow_the_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 20000
    ids = draw(probs.log().repeat(n, 1), [Sampling()] * n, uniforms(n, seed=3))
    freq = torch.bincount(ids, minlength=4).float() / n
    assert torch.allclose(freq, probs, atol=0.015), freq


def test_each_row_uses_its_own_settings():
    logits = torch.arange(10.0).repeat(4, 1)
    rows = [Sampling(greedy=True), Sampling(top_k=2), Sampling(), Sampling(top_p=1e-9)]
    for seed in range(20):
        ids = draw(logits, rows, uniforms(4, seed)).tolist()
        assert ids[0] == 9 and ids[1] in (8, 9) and ids[3] == 9


def test_a_row_does_not_depend_on_the_rows_beside_it():
    torch.manual_seed(1)
    logits = torch.randn(6, 50)
    rows = [Sampling(top_k=5), Sampling(temperature=0.5), Sampling(top_p=0.9), Sampling(), Sampling(top_k=2),
            Sampling(temperature=2.0)]
    u = uniforms(6, 9)
    together = draw(logits, rows, u).tolist()
    alone = [int(draw(logits[i:i + 1], rows[i:i + 1], u[i:i + 1])) for i in range(6)]
    assert together == alone


def test_minus_infinity_is_never_drawn():
    logits = torch.zeros(1000, 5)
    logits[:, [0, 3]] = float("-inf")
    ids = draw(logits, [Sampling(temperature=3.0)] * 1000, uniforms(1000)).tolist()
    assert set(ids) == {1, 2, 4}
    assert set(draw(logits[:3], [Sampling()] * 3, [0.0, 0.0, 0.0]).tolist()) == {1}


@pytest.mark.parametrize("top_p", [None, 0.5])
def test_a_temperature_too_small_for_float32_draws_the_most_likely_token(top_p):
    """3.9e-291 is 0 in float32: the logits divided by it were NaN, and the draw ran past the
    vocab (a server's 500, found by test_serve_hostile)."""
    logits = torch.randn(4, 17)
    ids = draw(logits, [Sampling(temperature=3.9e-291, top_p=top_p)] * 4, [0.0, 0.3, 0.7, 0.999])
    assert ids.tolist() == logits.argmax(-1).tolist()


@pytest.mark.parametrize("settings,message", [
    (Sampling(temperature=0), "temperature must be a finite number > 0"),
    (Sampling(temperature=float("inf")), "temperature"),
    (Sampling(top_k=0), "top_k must be >= 1"),
    (Sampling(top_p=0), "top_p must be in (0, 1]"),
    (Sampling(top_p=1.5), "top_p must be in (0, 1]"),
])
def test_settings_out_of_range_are_refused(settings, message):
    from rnnlm.errors import RnnlmError

    with pytest.raises(RnnlmError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        settings.validate()


def test_a_uniform_number_next_to_one_still_draws_a_possible_token():
    logits = torch.tensor([[0.0, 0.0, float("-inf")]])
    assert int(draw(logits, [Sampling()], [1 - 1e-12])) == 1


def test_draw_one_draws_the_token_draw_draws():
    """The single-stream draw picks, for every uniform number, the token of the batched one."""
    g, rng = torch.Generator().manual_seed(0), random.Random(0)
    for _ in range(300):
        logits = torch.randn(rng.choice([5, 82, 1000]), generator=g) * rng.choice([0.1, 1.0, 30.0])
        logits[rng.randrange(len(logits))] = float("-inf")
        settings = Sampling(temperature=rng.choice([1.0, 1.0, 0.7]), top_k=rng.choice([None, None, 3]))
        for u in (rng.random(), 0.0, 1 - 1e-12):
            assert draw_one(logits, settings, u) == int(draw(logits[None], [settings], [u])[0])


def test_the_scripted_draw_is_the_eager_draw_bit_for_bit():
    """Rows drawn by temperature alone go through TorchScript (one call, the GIL given up once):
    it is compiled here, and it draws what the eager function draws, banned tokens never."""
    from rnnlm.generation.sampling import draw_by_temperature
    from rnnlm.generation.scripted import scripted

    compiled = scripted(draw_by_temperature)
    assert isinstance(compiled, torch.jit.ScriptFunction)
    g, rng = torch.Generator().manual_seed(1), random.Random(1)
    banned = torch.zeros(33, dtype=torch.bool)
    banned[[0, 1]] = True
    for _ in range(50):
        n = rng.choice([1, 8, 32])
        logits = torch.randn(n, 33, generator=g) * rng.choice([0.3, 3.0])
        temps, u = [rng.choice([0.7, 1.0, 1.3]) for _ in range(n)], uniforms(n, rng.random())
        got = compiled(logits, banned, temps, u)
        assert torch.equal(got, draw_by_temperature(logits, banned, temps, u))
        assert not banned[got].any()
        assert got.tolist() == [draw_one(logits[i].masked_fill(banned, float("-inf")), Sampling(temps[i]), u[i])
                                for i in range(n)]
