"""A streamed completion's body: server-sent events, one per token of each choice, sent as soon
as the step that made it ends; then the usage (with ``stream_options.include_usage``) and
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
        """The events' text, and whether the stream ends with them."""
        parts, finished = [], False
        for kind, payload in events:
            if kind == "error":
                parts.append(self.writer.error(payload.message))
                finished = True
            elif kind == "tokens":
                parts.extend(self.tokens(payload))
            elif kind == "done":
                finished = True
        if finished:
            if self.include_usage:
                job = self.job
                parts.append(self.writer.usage(sum(job.prompt_tokens), sum(s.tokens for s in job.streams)))
            parts.append(DONE)
        return "".join(parts), finished

    def tokens(self, pieces: list) -> list[str]:
        """One event per token of each choice (the echoed prompt rides on a choice's first)."""
        job, parts = self.job, []
        for choice, text, record, finish in pieces:
            if not self.begun[choice]:
                self.begun[choice] = True
                prompt = job.prompt_texts[choice // job.n]
                self.offsets[choice] = len(prompt)
                if self.echo:
                    text = prompt + text
            if record is None and not text and finish is None:
                continue
            lp = None
            if job.logprobs is not None:
                lp = logprobs_json([] if record is None else [record], self.offsets[choice])
                self.offsets[choice] += 0 if record is None else len(record.text)
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
