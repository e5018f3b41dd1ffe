"""The batch-1 step and draw in C (rnnlm.generation.native_step, rnnlm/native/recurrent_step.c):
the model's numbers to float rounding, the draw's tokens, and the build that falls back."""

import gc
import io
import os
import threading
from dataclasses import replace

import pytest
import torch

from conftest import TINY_TEXT, tiny_config
from rnnlm.config import ModelConfig
from rnnlm.generation.native_step import NativeStep
from rnnlm.generation.sampling import Sampling, draw
from rnnlm.generation.session import GenerationSession
from rnnlm.generation.single_stream_step import SingleStreamStep
from rnnlm.models import RecurrentLM
from rnnlm.native import build
from rnnlm.train.run import train

needs_kernel = pytest.mark.skipif(build.library("recurrent_step") is None,
                                  reason=f"no native kernel here: {build.unavailable.get('recurrent_step')}")


def model_of(cell="lstm", layers=2, emb=16, hidden=32, locked=False, vocab=40):
    torch.manual_seed(0)
    return RecurrentLM(vocab, ModelConfig(cell=cell, layers=layers, emb=emb, hidden=hidden, locked_dropout=locked,
                                          tie=False)).eval()


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def random_state(model):
    state = model.init_state(1)
    return tuple(s.normal_() for s in state) if isinstance(state, tuple) else state.normal_()


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lstm")
    (root / "tiny.txt").write_text(TINY_TEXT, encoding="utf-8")
    config = replace(tiny_config(str(root / "tiny.txt"), epochs=2),
                     model=ModelConfig(cell="lstm", layers=2, emb=16, hidden=48, dropout=0.0))
    return train(config, root / "run", log=io.StringIO(), progress=False).folder


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers,emb,hidden,locked", [(1, 16, 32, False), (2, 16, 32, True), (3, 24, 20, False)])
def test_the_native_step_is_the_models_step(cell, layers, emb, hidden, locked):
    """Token after token, the logits and state of the model's forward, and the state it was
    given left as it was."""
    model = model_of(cell, layers, emb, hidden, locked)
    state = random_state(model)
    before = tuple(s.clone() for s in parts(state))
    stepper, ours, tokens = NativeStep.of(model), state, [1, 5, 39, 0, 7]
    with torch.inference_mode():
        logits, expected = model(torch.tensor([tokens]), state)
        for t, token in enumerate(tokens):
            got, ours = stepper.step(token, ours)
            assert got.shape == (40,) and torch.allclose(got, logits[0, t], atol=1e-5)
    for a, b in zip(parts(ours), parts(expected), strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    for a, b in zip(parts(state), before, strict=True):
        assert torch.equal(a, b)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_table_of_input_parts_gives_the_same_numbers_bit_for_bit(cell):
    model = model_of(cell)
    with_table, without = NativeStep.of(model), NativeStep.of(model, table=False)
    assert with_table.table is not None and without.table is None
    a = b = random_state(model)
    for token in [3, 3, 17, 39, 0]:
        (la, a), (lb, b) = with_table.step(token, a), without.step(token, b)
        assert torch.equal(la, lb)
        for x, y in zip(parts(a), parts(b), strict=True):
            assert torch.equal(x, y)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_share_a_step_with_the_same_numbers_bit_for_bit(cell, threads):
    """A step shared by a pool of threads (each its blocks of units and of logits) gives the
    numbers of one thread alone, exactly: sizes that are not whole blocks included."""
    model = model_of(cell, layers=2, emb=12, hidden=37, vocab=131)
    stepper, before = NativeStep.of(model), torch.get_num_threads()
    alone = shared = random_state(model)
    try:
        for token in [3, 130, 17, 0, 64]:
            torch.set_num_threads(1)
            la, alone = stepper.step(token, alone)
            torch.set_num_threads(threads)
            lb, shared = stepper.step(token, shared)
            assert torch.equal(la, lb)
            for a, b in zip(parts(alone), parts(shared), strict=True):
                assert torch.equal(a, b)
        assert stepper.pools[(threads, os.getpid())]
    finally:
        torch.set_num_threads(before)


@needs_kernel
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_a_pools_threads_end_with_its_step():
    def threads():
        return len(os.listdir("/proc/self/task"))

    before_threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        model = model_of()
        state = random_state(model)
        torch.mm(torch.ones(256, 256), torch.ones(256, 256))  # torch's own threads, if any, made before counting
        count = threads()
        stepper = NativeStep.of(model)
        stepper.step(5, state)
        assert threads() == count + 2  # the caller and two helpers share a step
        del stepper
        gc.collect()
        assert threads() == count
    finally:
        torch.set_num_threads(before_threads)


@needs_kernel
def test_the_step_keeps_its_own_copy_of_the_weights():
    """Built from the model as it stood: a change to the model afterwards (its embedding, which
    the kernel reads row by row, included) changes nothing the step gives."""
    model = model_of()
    stepper, state = NativeStep.of(model, table=False), random_state(model)
    before, _ = stepper.step(5, state)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(1.0)
    after, _ = stepper.step(5, state)
    assert torch.equal(before, after)


@needs_kernel
def test_a_token_outside_the_vocabulary_is_refused():
    stepper = NativeStep.of(model_of())
    with pytest.raises(IndexError, match="outside the vocabulary of 40"):
        stepper.step(40, random_state(model_of()))


@needs_kernel
def test_what_the_kernel_reads_is_checked_first():
    """The kernel trusts the addresses it is given: a state of the wrong size is refused, and
    one of another type or layout is read as float32 first, with the same numbers."""
    model = model_of()
    stepper, (h, c) = NativeStep.of(model), random_state(model)
    with pytest.raises(ValueError, match="expected 64 numbers"):
        stepper.step(5, (h[:1], c))
    logits, _ = stepper.step(5, (h, c))
    again, _ = stepper.step(5, (h.double(), c.transpose(0, 2).contiguous().transpose(0, 2)))
    assert torch.equal(logits, again)
    bias = torch.zeros(40)
    assert stepper.draw(logits.double(), bias, 1.0, 0.5) == stepper.draw(logits, bias, 1.0, 0.5)
    with pytest.raises(ValueError, match="expected 40 numbers"):
        stepper.draw(logits[:39], bias[:39], 1.0, 0.5)


def test_no_native_step_for_a_model_not_in_float32():
    assert NativeStep.of(model_of().double()) is None


@needs_kernel
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_the_native_draw_is_draws_token_but_for_rounding(temperature):
    """For the same uniform number, torch's draw's token, except where the number lies within
    rounding of the boundary between two tokens; a banned token never."""
    stepper = NativeStep.of(model_of())
    generator = torch.Generator().manual_seed(1)
    banned = torch.zeros(40, dtype=torch.bool)
    banned[[0, 1, 39]] = True
    bias = torch.zeros(40).masked_fill_(banned, float("-inf"))
    compared = 0
    for _ in range(20):
        logits = torch.randn(40, generator=generator) * 3
        cdf = ((logits + bias) / temperature).softmax(0).double().cumsum(0)
        for u in torch.rand(100, generator=generator, dtype=torch.float64).tolist() + [0.0, 1 - 1e-12]:
            ours = stepper.draw(logits, bias, temperature, u)
            theirs = int(draw(logits[None], [Sampling(temperature)], [u], banned)[0])
            assert not banned[ours]
            if (cdf - u).abs().min() > 1e-5:
                assert ours == theirs, (u, ours, theirs)
                compared += 1
    assert compared > 1900


@needs_kernel
def test_a_session_writes_the_same_text_with_the_native_step_as_with_torchs(lstm_run, one_thread):
    """One stream at a time on one thread takes the C step and draw; the same seeds give the
    text of the torch step and draw (a token would differ only where a draw falls within float
    rounding of a boundary between two tokens)."""
    native, plain = GenerationSession.load(lstm_run, device="cpu"), GenerationSession.load(lstm_run, device="cpu")
    plain.single = SingleStreamStep(plain.model, native=False)
    texts = {}
    for name, session in (("native", native), ("torch", plain)):
        texts[name] = ["".join(p.text for p in session.complete("the ", max_tokens=200, seed=seed, temperature=t))
                       for seed, t in ((0, 1.0), (1, 0.7), (2, 1.3))]
    assert native.single.native is not None and plain.single.native is None
    assert texts["native"] == texts["torch"] and all(len(t) >= 150 for t in texts["native"])


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("options", [dict(max_tokens=37), dict(max_tokens=16, temperature=0.8),
                                     dict(max_tokens=200, stop=["e t"]), dict(max_tokens=100, max_chars=41)])
def test_a_stream_alone_writes_runs_of_tokens_as_it_would_token_by_token(lstm_run, threads, options):
    """``run_streams`` of one stream draws and steps RUN_TOKENS tokens to a call: the same pieces
    and finish reason as ``step_one`` token by token, bit for bit, whatever ends the stream."""
    session, before = GenerationSession.load(lstm_run, device="cpu"), torch.get_num_threads()
    sampling = Sampling(options.pop("temperature", 1.0))
    torch.set_num_threads(threads)
    try:
        (runs,) = session.start("the ", seed=4, sampling=sampling, **options)
        (steps,) = session.start("the ", seed=4, sampling=sampling, **options)
        assert session.runs_alone(runs)
        by_runs = [(p.text, p.finish_reason) for (p,) in session.run_streams([runs])]
        by_steps = []
        while not steps.finished:
            piece = session.step_one(steps)
            by_steps.append((piece.text, piece.finish_reason))
    finally:
        torch.set_num_threads(before)
    assert by_runs == by_steps and runs.text == steps.text and runs.tokens == steps.tokens
    assert runs.finish_reason == steps.finish_reason and len(by_runs) > 5


@needs_kernel
def test_two_threads_step_at_once_as_each_would_alone():
    model = model_of(hidden=64)
    stepper, start = NativeStep.of(model), random_state(model)

    def run(tokens):
        state, out = start, []
        for token in tokens:
            logits, state = stepper.step(token, state)
            out.append(logits)
        return torch.stack(out)

    tokens = [[(7 * i + k) % 40 for i in range(300)] for k in range(2)]
    alone = [run(t) for t in tokens]
    together = [None, None]
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, run(tokens[k]))) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))


def test_without_a_compiler_the_step_falls_back_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    build.forget()
    try:
        assert NativeStep.of(model_of()) is None
        assert "no-such-cc" in build.unavailable["recurrent_step"]
        assert SingleStreamStep(model_of()).native is None
        monkeypatch.setenv("RNNLM_NATIVE", "0")
        build.forget()
        assert build.library("recurrent_step") is None and "RNNLM_NATIVE=0" in build.unavailable["recurrent_step"]
    finally:
        build.forget()


@needs_kernel
def test_the_build_is_kept_and_reused(tmp_path, monkeypatch):
    """Built once into the cache folder, named by its hash, nothing else left there; a second
    process (here: a forgotten load) loads it without building again."""
    monkeypatch.setenv("RNNLM_CACHE_DIR", str(tmp_path))
    build.forget()
    try:
        assert build.library("recurrent_step") is not None
        (built,) = (tmp_path / "native").iterdir()
        assert built.name.startswith("recurrent_step-") and built.suffix in (".so", ".dylib")
        stamp = built.stat().st_mtime_ns
        build.forget()
        monkeypatch.setattr(build.subprocess, "run", None)  # a rebuild would fail
        assert build.library("recurrent_step") is not None
        assert [p.name for p in (tmp_path / "native").iterdir()] == [built.name]
        assert built.stat().st_mtime_ns == stamp
    finally:
        build.forget()
