"""A streamed completion's body: server-sent events, one per choice and per wake-up of the event
loop with what that choice wrote since its last event (one token while the client keeps up,
several when it reads slower than the model writes), sent as soon as the step that made it
ends; then the usage (with ``stream_options.include_usage``) and
``data: [DONE]``. A fault after the first event is told as an error event before ``[DONE]``
(the status, 200, has been sent by then)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from rnnlm.serve.events import JobEvents
from rnnlm.serve.jobs import CompletionJob
from rnnlm.serve.responses import DONE, ChunkWriter, completion_id, logprobs_json


class CompletionChunks:
    """A streamed job's events as the text of server-sent events."""

    def __init__(self, job: CompletionJob, model_id: str, echo: bool, include_usage: bool):
        self.job, self.echo, self.include_usage = job, echo, include_usage
        self.writer = ChunkWriter(completion_id(), model_id)
        self.begun, self.offsets = [False] * self.job.size, [0] * self.job.size

    def encode(self, events: list[tuple]) -> tuple[str, bool]:
        """The events' text, and whether the stream ends with them. The tokens of every step
        among ``events`` go out as one event per choice: what the client has not read yet
        (the events came while it read slower than the model writes) arrives as one chunk."""
        parts, finished, pending = [], False, {}
        for kind, payload in events:
            if kind == "tokens":
                for choice, text, record, finish in payload:
                    merged = pending.setdefault(choice, [[], [], None])
                    merged[0].append(text)
                    if record is not None:
                        merged[1].append(record)
                    merged[2] = finish or merged[2]
            elif kind in ("error", "done"):
                parts.extend(self.tokens(pending))
                pending = {}
                if kind == "error":
                    parts.append(self.writer.error(payload.message))
                finished = True
        parts.extend(self.tokens(pending))
        if finished:
            if self.include_usage:
                job = self.job
                parts.append(self.writer.usage(sum(job.prompt_tokens), sum(s.tokens for s in job.streams)))
            parts.append(DONE)
        return "".join(parts), finished

    def tokens(self, pending: dict) -> list[str]:
        """One event per choice with what it wrote since its last (the echoed prompt rides on
        a choice's first); ``pending``: choice -> [texts, records, finish reason]."""
        job, parts = self.job, []
        for choice, (texts, records, finish) in pending.items():
            text = "".join(texts)
            if not self.begun[choice]:
                self.begun[choice] = True
                prompt = job.prompt_texts[choice // job.n]
                self.offsets[choice] = len(prompt)
                if self.echo:
                    text = prompt + text
            if not records and not text and finish is None:
                continue
            lp = None
            if job.logprobs is not None:
                lp = logprobs_json(records, self.offsets[choice])
                self.offsets[choice] += sum(len(r.text) for r in records)
            parts.append(self.writer.chunk(choice, text, lp, finish))
        return parts


async def server_sent_events(events: JobEvents, first: list[tuple], chunks: CompletionChunks,
                             finished: Callable[[], None]) -> AsyncIterator[str]:
    """The body from the job's first events on; ``finished`` is called once the last is sent.
    However it ends (the last event, the client gone, the response cancelled), the job's
    streams leave the batch."""
    batch = first
    try:
        while True:
            text, last = chunks.encode(batch)
            if text:
                yield text
            if last:
                finished()
                return
            batch = await events.next()
            if events.client_gone:
                return
    finally:
        events.close()
