"""The generation session: streams, the batched step, stop rules, finish reasons, logprobs."""

import random

import pytest
import torch

from rnnlm.errors import SettingError
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
from rnnlm.generation.stream import Stream, stop_prefix_length
from rnnlm.train.run import train
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def session(tiny_run):
    return GenerationSession.load(tiny_run, device="cpu")


def written(session, prompt="the ", n=80, **options):
    (stream,) = session.start(prompt, max_tokens=n, **options)
    pieces = [piece for (piece,) in session.run_streams([stream])]
    return stream, pieces


def test_same_seed_same_text_and_another_seed_another(session):
    a, _ = written(session, seed=3)
    b, _ = written(session, seed=3)
    c, _ = written(session, seed=4)
    assert a.text == b.text != c.text
    assert len(a.text) == 80 and a.finish_reason == "length" and a.tokens == 80 and a.seed == 3


def test_greedy_writes_the_text_it_learned(session):
    stream, _ = written(session, "the cat sat on the m", 3, sampling=Sampling(greedy=True))
    assert stream.text == "at."


def test_the_pieces_streamed_add_up_to_the_text(session):
    stream, pieces = written(session, seed=5, stop=["dog"])
    assert "".join(p.text for p in pieces) == stream.text
    assert [p.finish_reason for p in pieces][-1] == stream.finish_reason
    assert all(p.finish_reason is None for p in pieces[:-1])


def test_each_sample_is_the_stream_its_seed_gives_alone(session):
    streams = session.start("the ", n=4, max_tokens=60, seed=10, sampling=Sampling(temperature=1.5))
    for _ in session.run_streams(streams):
        pass
    assert [s.seed for s in streams] == [10, 11, 12, 13]
    assert len({s.text for s in streams}) > 1
    for s in streams:
        alone, _ = written(session, n=60, seed=s.seed, sampling=Sampling(temperature=1.5))
        assert alone.text == s.text


def test_streams_join_and_leave_between_steps(session):
    """Continuous batching: a stream's text does not depend on when others joined or left."""
    settings = dict(max_tokens=50, sampling=Sampling(temperature=1.2))
    (first,) = session.start("the ", seed=1, **settings)
    for _ in range(10):
        session.step([first])
    (second,) = session.start("a dog ", seed=2, **settings)
    (third,) = session.start("the mat", seed=3, max_tokens=5, sampling=Sampling(top_k=3))
    (cancelled,) = session.start("on ", seed=4, **settings)
    live = [first, second, third, cancelled]
    steps = 0
    while not all(s.finished for s in live):
        pieces = session.step(live)
        steps += 1
        if steps == 3:
            cancelled.cancel()
        assert all(p.token is None for p, s in zip(pieces, live) if s.finished and p.finish_reason is None)
    assert third.tokens == 5 and cancelled.tokens == 3 and cancelled.state is None
    for stream, prompt, seed, extra in [(first, "the ", 1, settings), (second, "a dog ", 2, settings),
                                        (third, "the mat", 3, dict(max_tokens=5, sampling=Sampling(top_k=3)))]:
        alone, _ = written(session, prompt, seed=seed, n=extra["max_tokens"], sampling=extra["sampling"])
        assert alone.text == stream.text


def test_a_stop_string_ends_the_sample_before_it(session):
    free, _ = written(session, n=200, seed=7)
    stop = next(w for w in (" dog", "at", "og.", "the") if w in free.text)
    cut, pieces = written(session, n=200, seed=7, stop=["zzz", stop])
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.finish_reason == "stop" and all(stop not in p.text for p in pieces)


def test_the_earliest_of_several_stop_strings_wins(session):
    free, _ = written(session, n=200, seed=8)
    found = sorted((free.text.index(w), w) for w in ("cat", "dog", "mat", "log") if w in free.text)
    cut, _ = written(session, n=200, seed=8, stop=[w for _, w in found[::-1]])
    assert cut.text == free.text[: found[0][0]] and cut.finish_reason == "stop"


def test_text_held_back_for_a_stop_string_that_never_comes_is_released(session):
    free, _ = written(session, n=40, seed=9)
    tail = free.text[-2:]
    held, pieces = written(session, n=40, seed=9, stop=[tail + "\x00never"])
    assert held.text == free.text and held.finish_reason == "length"
    assert "".join(p.text for p in pieces) == free.text


def test_max_chars_cuts_the_text(session):
    stream, _ = written(session, n=200, seed=1, max_chars=17)
    assert len(stream.text) == 17 and stream.finish_reason == "length"


def test_no_tokens_asked_for(session):
    (stream,) = session.start("the ", max_tokens=0)
    assert stream.finished and stream.text == "" and list(session.run_streams([stream])) == []


def test_logprobs_agree_with_one_pass_over_the_whole_text(session):
    stream, _ = written(session, "the cat", 30, seed=2, logprobs=4, sampling=Sampling(temperature=1.3, top_k=6))
    prompt_ids = session.encode_prompt("the cat")[0].tolist()
    ids = prompt_ids + [r.id for r in stream.records]
    with torch.inference_mode():
        logits, _ = session.model(torch.tensor([ids]))
    logp = logits[0].log_softmax(-1)
    for t, record in enumerate(stream.records):
        row = logp[len(prompt_ids) - 1 + t]
        assert record.logprob == pytest.approx(float(row[record.id]), abs=1e-5)
        best = row.topk(4)
        assert [tok for tok, _ in record.top] == [session.token_text(i) for i in best.indices.tolist()]
        assert [lp for _, lp in record.top] == pytest.approx(best.values.tolist(), abs=1e-5)
    assert "".join(r.text for r in stream.records) == stream.text


def test_a_word_level_sample_ends_at_the_end_of_a_document(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"{i:02}.txt").write_text("one two three four five . " * (1 + i % 3))
    config = tiny_config(str(docs), epochs=8)
    config.data.level = "word"
    folder = train(config, tmp_path / "run", log=None, progress=False).folder
    session = GenerationSession.load(folder, device="cpu")
    streams = session.start("", n=20, max_tokens=200, seed=0)
    for _ in session.run_streams(streams):
        pass
    ended = [s for s in streams if s.finish_reason == "end"]
    assert ended, [s.text for s in streams]
    assert all(s.tokens < 200 and "xxbos" not in s.text for s in ended)


def test_a_character_sample_never_draws_the_document_token(tiny_run):
    session = GenerationSession.load(tiny_run, device="cpu")
    with torch.no_grad():  # a character-level run: the begin-of-document token is never drawn
        session.model.head.bias[session.vocab.bos_id] = 1e4
    stream, _ = written(session, n=20, seed=0)
    assert stream.finish_reason == "length" and stream.tokens == 20


def test_stop_prefix_length():
    assert stop_prefix_length("the ca", ["cat"]) == 2
    assert stop_prefix_length("the c", ["dog", "cow"]) == 1
    assert stop_prefix_length("abc", ["x"]) == 0
    assert stop_prefix_length("aab", ["aabx", "b"]) == 3


def test_release_never_shows_a_stop_string_split_over_pieces():
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice("ab") for _ in range(30))
        stops = ("".join(rng.choice("ab") for _ in range(rng.randint(1, 4))),)
        stream = Stream(Sampling(), 0, 100, stops)
        shown = ""
        at = 0
        while at < len(text) and not stream.finished:
            size = rng.randint(1, 3)
            shown += stream.release(text[at:at + size])
            at += size
        if not stream.finished:
            shown += stream.end("length")
        expected = text[: text.find(stops[0])] if stops[0] in text else text
        assert shown == stream.text == expected, (text, stops)


@pytest.mark.parametrize("options,field,message", [
    (dict(stop=[""]), "stop", "stop must not be empty"),
    (dict(stop=["x"] * 17), "stop", "stop may be given at most 16 times"),
    (dict(logprobs=21), "logprobs", "logprobs must be in 0..20"),
    (dict(max_chars=0), "max_chars", "max_chars must be >= 1"),
    (dict(n=0), "n", "n must be in"),
    (dict(max_tokens=-1), "max_tokens", "max_tokens must be in"),
    (dict(seed=-1), "seed", "seed must be in"),
    (dict(sampling=Sampling(top_p=0)), "top_p", "top_p"),
])
def test_stream_options_out_of_range(session, options, field, message):
    """Each bad setting is named by its parameter (the command line spells it as its option)."""
    with pytest.raises(SettingError, match=message) as error:
        session.start("the ", **options)
    assert error.value.field == field


def test_a_prompt_read_in_pieces_continues_as_one_read_at_once(session):
    ids = session.encode_prompt("the cat sat on the mat. the dog ")[0]
    reading = session.begin_prompt(ids)
    fed = []
    while not reading.done:
        fed.append(session.read_prompts([reading], 5))
    assert fed == [5] * 6 + [2]
    (pieced,) = session.start(reading, max_tokens=40, seed=6)
    (whole,) = session.start(ids, max_tokens=40, seed=6)
    for _ in session.run_streams([pieced, whole]):
        pass
    assert pieced.text == whole.text and pieced.prompt_tokens == len(ids)
    with pytest.raises(ValueError):
        session.start(session.begin_prompt(ids), max_tokens=4)


def test_prompts_read_together_continue_as_each_read_alone(session):
    prompts = ["the cat sat", "a dog ", "on the log. the dog sat on", "the cat sat"]
    readings = [session.begin_prompt(p) for p in prompts]
    session.read_prompts([readings[2]], 4)  # one already part read
    while not all(r.done for r in readings):
        session.read_prompts(readings, 5)
    for prompt, reading in zip(prompts, readings):
        (together,) = session.start(reading, max_tokens=30, seed=3)
        alone, _ = written(session, prompt, 30, seed=3)
        for _ in session.run_streams([together]):
            pass
        assert together.text == alone.text


def test_the_single_stream_step_draws_as_the_batched_step(session):
    """One stream alone takes the single-stream step; beside a finished stream, the batched one:
    the same seed gives the same text both ways, and again."""
    (done,) = session.start("the ", max_tokens=0)
    texts = []
    for partner in ([], [], [done]):
        (stream,) = session.start("the ", max_tokens=80, seed=21)
        for _ in session.run_streams([stream, *partner]):
            pass
        texts.append(stream.text)
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) == 80


def test_stop_prefix_length_is_the_longest_end_that_starts_a_stop():
    """Against the definition, every end of the text tried, on random texts and stop strings."""
    rng = random.Random(0)
    for _ in range(5000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 10)))
        if any(s in text for s in stops):
            continue  # release cuts at a whole stop string before it asks
        ends = [n for n in range(1, len(text) + 1) if any(s.startswith(text[-n:]) for s in stops)]
        assert stop_prefix_length(text, stops) == max(ends, default=0), (text, stops)
