"""The batching worker in-process: a fault ends only the jobs it touched, with a 500, and the
model goes on serving the requests after them."""

import asyncio
from types import SimpleNamespace

from rnnlm.generation.sampling import Sampling
from rnnlm.generation.slots import StreamSlots
from rnnlm.serve.batcher import ModelWorker
from rnnlm.serve.errors import http_error
from rnnlm.serve.jobs import CompletionJob, Failure
from rnnlm.serve.metrics import ServerMetrics
from rnnlm.generation.session import GenerationSession


def completion(prompt: str, max_tokens: int = 5) -> tuple[CompletionJob, asyncio.Future]:
    done = asyncio.get_running_loop().create_future()
    job = CompletionJob([prompt], n=1, max_tokens=max_tokens, stop=(), sampling=Sampling(), seed=1, logprobs=None,
                        stream=False, deliver=lambda event: done.done() or done.set_result(event))
    return job, done


def run_worker(session: GenerationSession, body) -> None:
    async def main() -> None:
        worker = ModelWorker("tiny", session, asyncio.get_running_loop(), ServerMetrics(), max_streams=4, queue=4)
        worker.thread.start()
        try:
            await asyncio.wait_for(body(worker), timeout=60)
        finally:
            worker.close()
            worker.thread.join(10)
        assert not worker.thread.is_alive()

    asyncio.run(main())


def test_a_fault_in_a_step_ends_the_jobs_in_flight_and_the_model_goes_on(tiny_run, capfd, monkeypatch):
    session = GenerationSession.load(tiny_run, device="cpu")
    real_step, faults = StreamSlots.step, [1]

    def faulty_step(slots, steps=1):
        if faults:
            faults.pop()
            raise RuntimeError("a fault in the step")
        return real_step(slots, steps)

    monkeypatch.setattr(StreamSlots, "step", faulty_step)

    async def body(worker: ModelWorker) -> None:
        job, done = completion("the ")
        worker.submit(job)
        kind, failure = await done
        assert kind == "error" and isinstance(failure, Failure)
        assert http_error(failure).status == 500 and "a fault in the step" in failure.message
        assert worker.used == 0 and not worker.active
        after, done = completion("the ")
        worker.submit(after)
        assert await done == ("done", None)
        assert after.streams[0].tokens == 5 and worker.used == 0

    run_worker(session, body)
    assert "RuntimeError: a fault in the step" in capfd.readouterr().err


def test_a_prompt_that_cannot_be_read_ends_its_job_alone(tiny_run, capfd):
    session = GenerationSession.load(tiny_run, device="cpu")
    real_encode = session.encode_prompt

    def encode(prompt):
        if prompt == "bad":
            raise ValueError("cannot encode this one")
        return real_encode(prompt)

    session.encode_prompt = encode

    async def body(worker: ModelWorker) -> None:
        (good, good_done), (bad, bad_done) = completion("the ", 8), completion("bad")
        worker.submit(good)
        worker.submit(bad)
        kind, failure = await bad_done
        assert kind == "error" and http_error(failure).status == 500 and "cannot encode this one" in failure.message
        assert await good_done == ("done", None) and good.streams[0].tokens == 8
        assert worker.used == 0

    run_worker(session, body)
    assert "ValueError: cannot encode this one" in capfd.readouterr().err


def test_a_step_writes_several_tokens_a_stream_unless_a_request_waits(tiny_run, monkeypatch):
    """While no request could join, a step writes the tokens that fit in about RUN_SECONDS (at
    most MAX_RUN_STEPS a stream); a request waiting with a free slot, or for its prompt, makes
    it one; after a join the steps grow from one token, doubling. The texts are each seed's
    alone."""
    from rnnlm.serve.batcher import MAX_RUN_STEPS, RUN_SECONDS

    session = GenerationSession.load(tiny_run, device="cpu")
    asked, real_step = [], StreamSlots.step

    def counted(slots, steps=1):
        asked.append(steps)
        return real_step(slots, steps)

    monkeypatch.setattr(StreamSlots, "step", counted)

    async def body(worker: ModelWorker) -> None:
        jobs = [CompletionJob(["the "], n=2, max_tokens=60, stop=(), sampling=Sampling(temperature=0.9), seed=s,
                              logprobs=None, stream=False, deliver=lambda event: None) for s in (3, 11)]
        ended = [asyncio.get_running_loop().create_future() for _ in jobs]
        for job, end in zip(jobs, ended):
            job.deliver = lambda event, end=end: end.done() or end.set_result(event)
            worker.submit(job)
        assert await asyncio.gather(*ended) == [("done", None)] * 2
        for job in jobs:
            for i, stream in enumerate(job.streams):
                (alone,) = session.start("the ", max_tokens=60, seed=job.seed + i, sampling=Sampling(temperature=0.9))
                for _ in session.run_streams([alone]):
                    pass
                assert stream.text == alone.text

    run_worker(session, body)
    assert asked[0] == 1 and max(asked) > 1 and max(asked) <= MAX_RUN_STEPS
    assert all(b <= 2 * a for a, b in zip(asked, asked[1:]))  # growing by doubling at most
    worker = ModelWorker("tiny", session, None, ServerMetrics(), max_streams=4, queue=4)
    worker.step_seconds, worker.run_cap = RUN_SECONDS / 3.5, MAX_RUN_STEPS
    assert worker.run_steps() == 3
    worker.step_seconds = RUN_SECONDS / 1000
    assert worker.run_steps() == MAX_RUN_STEPS
    worker.run_cap = 4  # streams joined three steps ago: 1, 2, then 4 tokens a stream
    assert worker.run_steps() == 4
    worker.run_cap = MAX_RUN_STEPS
    worker.waiting.append(SimpleNamespace(size=2, cancelled=False))  # a request with a free slot
    assert worker.run_steps() == 1
    worker.used = 3  # it waits for a stream to end: nothing would join sooner
    assert worker.run_steps() == MAX_RUN_STEPS


def test_start_up_is_frozen_out_of_the_garbage_collectors_walk():
    import gc

    from rnnlm.serve.server import freeze_start_up

    try:
        freeze_start_up()
        assert gc.get_freeze_count() > 1000  # torch and the test's own modules: far more than a few
        before = gc.get_freeze_count()
        made = [[i] for i in range(100)]  # objects made after start-up stay collectable
        assert gc.get_freeze_count() == before and gc.is_tracked(made[0])
    finally:
        gc.unfreeze()
