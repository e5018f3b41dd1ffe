"""Continuous batching: one worker thread per model advances every active stream together.

    request -> submit (queue) -> admitted when slots are free -> prompt read a piece at a time
            -> its streams take slots -> one call per step for every active stream
            -> tokens back to the request on the event loop -> a finished stream leaves at once

The worker owns the model: the event loop never runs it, and only the worker touches a stream
once it has been handed over. The loop and the worker share the queue (under ``cond``) and one
flag per job (``cancelled``, set by the loop when a client goes away). Everything a step gives
goes back through one outbox (not one call per stream), and the loop is woken only when it has
taken what came before: waking it costs the same for one stream or a hundred, and a loop that
falls behind takes several steps at once (each stream's text then goes out as one event). torch
releases the GIL in its kernels, so the loop writes the last step's tokens while the worker
computes the next. The streams' states live in slots (``rnnlm.generation.slots``).

While no request could join, a step writes several tokens a stream in that one call (where
the C kernel steps the model: ``run_steps``), as many as take about ``RUN_SECONDS``: the worker's
Python around a step, the loop's wake-up and each stream's event are paid once for them all, as
vLLM's multi-step scheduling pays its scheduler once for several steps. A request that arrives
with a free slot waits for the step in flight, then the steps are of one token until it has
joined.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from rnnlm.generation.session import GenerationSession
from rnnlm.generation.slots import StreamSlots
from rnnlm.generation.stream import Stream
from rnnlm.serve.jobs import Busy, CompletionJob, Fault, ShuttingDown
from rnnlm.serve.metrics import ServerMetrics

PREFILL_TOKENS = 256  # tokens of each prompt read between two steps: a long prompt does not stall the others
RUN_SECONDS = 0.002  # while no request could join, a step writes several tokens a stream, for about this long
MAX_RUN_STEPS = 16  # tokens a stream, at most, in one such step
SCORE_QUEUE = 4  # score requests per model being run or waiting; more are refused (busy)


class ModelWorker:
    """The thread that drives one model's streams; ``submit`` and ``cancel`` come from the loop."""

    def __init__(self, model_id: str, session: GenerationSession, loop: asyncio.AbstractEventLoop,
                 metrics: ServerMetrics, max_streams: int, queue: int):
        self.model_id, self.session, self.loop, self.metrics = model_id, session, loop, metrics
        self.max_streams, self.queue_limit = max_streams, queue
        self.cond = threading.Condition()
        self.waiting: deque[CompletionJob] = deque()  # under cond
        self.used = 0  # slots of the admitted jobs, under cond
        self.closing = False
        self.reading: list[CompletionJob] = []  # the worker's own from here on
        self.slots = StreamSlots(session)  # the active streams, their states in slots
        self.owners: dict[int, tuple[CompletionJob, int]] = {}  # id(stream) -> (job, choice) of each active stream
        self.live: dict[int, list] = {}  # id(job) -> [job, streams not yet ended]
        self.outbox: list[tuple[CompletionJob, tuple]] = []  # events for the loop, under outbox_lock
        self.outbox_lock = threading.Lock()
        self.posted = False  # a call of deliver is on its way to the loop, under outbox_lock
        self.thread = threading.Thread(target=self.run, name=f"rnnlm-worker-{model_id}", daemon=True)
        self.scorer = ThreadPoolExecutor(1, thread_name_prefix=f"rnnlm-score-{model_id}")
        self.scoring = 0  # score requests running or waiting (loop thread only)
        self.gauges = metrics.for_model(model_id)
        self.step_seconds = math.inf  # of one token a stream, in the last step (the worker's own)
        self.run_cap = 1  # tokens a stream the next step may write: 1 after a join, then doubling (the worker's own)

    # --- the event loop's side

    def submit(self, job: CompletionJob) -> None:
        """Queue a job, or raise Busy when it can neither start now nor wait."""
        with self.cond:
            if self.closing:
                raise self.refuse("the server is shutting down")
            waiting_slots = sum(j.size for j in self.waiting)
            if self.used + waiting_slots + job.size > self.max_streams and len(self.waiting) >= self.queue_limit:
                raise self.refuse(f"model {self.model_id} is busy: {self.used} streams running and "
                                  f"{len(self.waiting)} requests waiting; try again shortly")
            self.waiting.append(job)
            self.gauges.queued.set(len(self.waiting))
            self.cond.notify()

    def refuse(self, reason: str) -> Busy:
        """A request turned away for want of room, counted."""
        self.metrics.rejected.labels(self.model_id).inc()
        return Busy(reason)

    def cancel(self, job: CompletionJob) -> None:
        """The client went away: the job's streams leave at the next step."""
        job.cancel()
        with self.cond:
            self.cond.notify()

    def close(self) -> None:
        """Stop: refuse new jobs, end the streams in flight at the next step, then leave."""
        with self.cond:
            self.closing = True
            self.cond.notify()

    async def score(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (which reads the model) on this model's scoring thread, never on the loop."""
        if self.scoring >= SCORE_QUEUE:
            raise self.refuse(f"model {self.model_id} is busy scoring {self.scoring} texts; try again shortly")
        self.scoring += 1
        try:
            return await self.loop.run_in_executor(self.scorer, fn)
        finally:
            self.scoring -= 1

    # --- the worker's side

    def run(self) -> None:
        """The thread's life. It only ever steps models and keeps their streams' books, so it stays
        in inference mode throughout (the mode is per thread) rather than switching in and out
        at every step."""
        with torch.inference_mode():
            self.serve_jobs()

    def serve_jobs(self) -> None:
        while True:
            with self.cond:
                while not (self.waiting or self.reading or self.active or self.closing):
                    self.cond.wait()
                if self.closing:
                    break
                admitted = self.admit()
            out: list[tuple[CompletionJob, tuple]] = []
            for job in admitted:  # tokenized outside the lock: the event loop never waits for it
                try:
                    self.begin(job)
                except Exception as error:  # noqa: BLE001 - one job's fault ends that job, not the model
                    self.fail([job], error, out)
            try:
                self.drop_cancelled(out)
                self.read_prompts(out)
                if self.active:
                    self.step(out)
            except Exception as error:  # noqa: BLE001 - the jobs in flight end; the model goes on serving
                self.fail(self.in_flight(), error, out)
            self.send(out)
        self.shut_down()

    def admit(self) -> list[CompletionJob]:
        """Take waiting jobs (first come, first served) while slots are free; a cancelled one
        leaves the queue. Called under ``cond``."""
        admitted = []
        while self.waiting and (self.waiting[0].cancelled or self.used + self.waiting[0].size <= self.max_streams):
            job = self.waiting.popleft()
            if job.cancelled:
                continue
            self.used += job.size
            admitted.append(job)
        self.gauges.queued.set(len(self.waiting))
        return admitted

    @property
    def active(self) -> list[Stream]:
        """The streams being stepped, in slot order."""
        return self.slots.streams

    def in_flight(self) -> list[CompletionJob]:
        return list({id(job): job for job in [*self.reading, *(job for job, _ in self.owners.values())]}.values())

    def fail(self, jobs: list[CompletionJob], error: Exception, out: list) -> None:
        """End ``jobs`` with a Fault (the traceback goes to the server's stderr); the others go on."""
        traceback.print_exception(error, file=sys.stderr)
        failed = {id(job) for job in jobs}
        self.reading = [job for job in self.reading if id(job) not in failed]
        gone = [s for s in self.active if id(self.owners[id(s)][0]) in failed]
        self.slots.remove(gone)
        for stream in gone:
            del self.owners[id(stream)]
        for job in jobs:
            self.live.pop(id(job), None)
        self.release(jobs)
        self.gauges.active.set(len(self.active))
        out.extend((job, ("error", Fault.of(error))) for job in jobs if not job.cancelled)

    def begin(self, job: CompletionJob) -> None:
        for prompt in job.prompts:
            reading = self.session.begin_prompt(prompt)
            job.unknown_tokens += reading.unknown
            job.prompt_texts.append(reading.text)
            job.prompt_tokens.append(len(reading.ids))
            job.readings.append(reading)
        self.reading.append(job)

    def drop_cancelled(self, out: list) -> None:
        gone = [job for job in self.reading if job.cancelled]
        if gone:
            self.reading = [job for job in self.reading if not job.cancelled]
            self.release(gone)
        cancelled = [s for s in self.active if self.owners[id(s)][0].cancelled]
        if cancelled:
            self.slots.remove(cancelled)
            self.leave(cancelled, out)

    def read_prompts(self, out: list) -> None:
        """Read the next PREFILL_TOKENS of every prompt being read (together, as far as they
        can go); a job whose prompts are all read joins the batch."""
        if not self.reading:
            return
        self.session.read_prompts([r for job in self.reading for r in job.readings if not r.done], PREFILL_TOKENS)
        ready = [job for job in self.reading if all(r.done for r in job.readings)]
        if ready:
            self.reading = [job for job in self.reading if not all(r.done for r in job.readings)]
            for job in ready:
                self.join(job, out)

    def join(self, job: CompletionJob, out: list) -> None:
        seed = job.seed
        for p, reading in enumerate(job.readings):
            streams = self.session.start(reading, n=job.n, max_tokens=job.max_tokens, stop=job.stop,
                                         sampling=job.sampling, seed=None if seed is None else seed + p * job.n,
                                         logprobs=job.logprobs)
            job.streams.extend(streams)
        job.readings = []
        self.metrics.prompt_tokens.labels(self.model_id).inc(sum(job.prompt_tokens))
        running = [s for s in job.streams if not s.finished]
        if not running:  # max_tokens 0
            self.finish(job, out)
            return
        self.live[id(job)] = [job, len(running)]
        for i, stream in enumerate(job.streams):
            if not stream.finished:
                self.owners[id(stream)] = (job, i)
        self.slots.join(running)
        self.run_cap = 1

    def run_steps(self) -> int:
        """The tokens a stream the next step writes: one while a prompt is being read or a
        request waiting has a free slot (it joins at the next step); else as many as fit in
        about ``RUN_SECONDS`` at the last step's speed, so the worker and the event loop wake up
        once for several tokens (each stream's go out as one event), and a newcomer waits no
        longer (a request waiting for a stream to end waits at most that long more). After a
        join the steps grow from one token, doubling: the newcomer's first tokens go out at once,
        not behind a long call on a machine whose cores the loop and the clients share."""
        if self.reading or (self.waiting and self.used + self.waiting[0].size <= self.max_streams):
            return 1
        return max(1, min(self.run_cap, MAX_RUN_STEPS, int(RUN_SECONDS / self.step_seconds)))

    def step(self, out: list) -> None:
        started = time.perf_counter()
        batch = len(self.active)
        pieces = self.slots.step(self.run_steps())
        self.run_cap = min(2 * self.run_cap, MAX_RUN_STEPS)
        took = time.perf_counter() - started
        ran = max(1, -(-len(pieces) // batch))  # the tokens a stream it wrote (one where the kernel writes one)
        self.step_seconds = took / ran
        self.gauges.observe_step(batch, self.step_seconds)
        streamed: dict[int, list] = {}
        now = time.perf_counter()
        for piece in pieces:
            job, choice = self.owners[id(piece.stream)]
            if job.first_token is None:
                job.first_token = now
                self.metrics.time_to_first_token.labels(self.model_id).observe(now - job.submitted)
            if job.stream:
                streamed.setdefault(id(job), [job]).append((choice, piece.text, piece.token, piece.finish_reason))
        for events in streamed.values():
            out.append((events[0], ("tokens", events[1:])))
        self.leave([piece.stream for piece in pieces if piece.finish_reason is not None], out)

    def leave(self, ended: list[Stream], out: list) -> None:
        """``ended`` have left their slots; a job whose streams have all ended is done."""
        for stream in ended:
            job, _ = self.owners.pop(id(stream))
            entry = self.live[id(job)]
            entry[1] -= 1
            if entry[1] == 0:
                del self.live[id(job)]
                self.finish(job, out)
        self.gauges.active.set(len(self.active))

    def finish(self, job: CompletionJob, out: list) -> None:
        self.metrics.completion_tokens.labels(self.model_id).inc(sum(s.tokens for s in job.streams))
        self.release([job])
        if not job.cancelled:
            out.append((job, ("done", None)))

    def release(self, jobs: list[CompletionJob]) -> None:
        with self.cond:
            self.used -= sum(job.size for job in jobs)

    def send(self, out: list) -> None:
        """Hand ``out`` to the event loop: it joins the outbox, and the loop is woken only when
        it has not been yet (a busy loop takes every step since its last wake-up at once)."""
        if not out:
            return
        self.gauges.active.set(len(self.active))
        with self.outbox_lock:
            self.outbox.extend(out)
            if self.posted:
                return
            self.posted = True
        self.loop.call_soon_threadsafe(self.deliver)

    def deliver(self) -> None:
        """On the event loop: every event in the outbox to its job."""
        with self.outbox_lock:
            out, self.outbox, self.posted = self.outbox, [], False
        deliver_all(out)

    def shut_down(self) -> None:
        """End every stream in flight (finish reason ``length``: it was cut short) and refuse the
        jobs that had not started."""
        out: list = []
        with self.cond:
            waiting, self.waiting = list(self.waiting), deque()
        for job in waiting + self.reading:
            out.append((job, ("error", ShuttingDown())))
        self.reading = []
        streamed: dict[int, list] = {}
        for stream in self.active:
            job, choice = self.owners[id(stream)]
            tail = stream.end("length")
            if job.stream:
                streamed.setdefault(id(job), [job]).append((choice, tail, None, "length"))
        for events in streamed.values():
            out.append((events[0], ("tokens", events[1:])))
        for job, _ in self.live.values():
            out.append((job, ("done", None)))
        self.slots.leave()
        self.owners, self.live = {}, {}
        self.gauges.active.set(0)
        self.gauges.queued.set(0)
        try:
            self.send(out)
        except RuntimeError:  # the loop has already closed
            pass
        self.scorer.shutdown(wait=False, cancel_futures=True)


def deliver_all(out: list[tuple[CompletionJob, tuple]]) -> None:
    """On the event loop: hand each job its events (a job whose client left gets nothing)."""
    for job, event in out:
        if not job.cancelled:
            job.deliver(event)
