"""/v1/completions: a request's job submitted to its model's worker, then either the whole
completion once every choice has ended, or its server-sent events as they come.

A streamed answer starts only once the job's first events have come, so a request refused
while it waited (the server stopping) still gets its error with its status, not a 200 stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.types import Receive

from rnnlm.serve.events import JobEvents
from rnnlm.serve.requests import CompletionRequest
from rnnlm.serve.responses import completion_id, completion_json
from rnnlm.serve.service import Service
from rnnlm.serve.streaming import CompletionChunks, server_sent_events


class Completions:
    def __init__(self, service: Service):
        self.service = service

    def start(self, body: CompletionRequest, receive: Receive) -> JobEvents:
        """The request's job, submitted to its model's worker; its events to await."""
        model = self.service.model(body.model)
        job = body.to_job(model, self.service.options)
        events = JobEvents(job, self.service.workers[model.id], receive)
        events.submit()
        return events

    async def complete(self, body: CompletionRequest, receive: Receive) -> dict | None:
        """The whole completion as JSON; None when the client went away first."""
        events = self.start(body, receive)
        try:
            kind, payload = (await events.next())[0]
        finally:
            events.close()
        if kind == "error":
            raise payload
        if kind != "done":
            return None
        job, model_id = events.job, events.worker.model_id
        self.observe(events)
        answer = completion_json(completion_id(), int(time.time()), model_id, job.prompt_texts, job.streams, job.n,
                                 body.echo, job.prompt_tokens)
        session = events.worker.session
        if session.tokenizer.documents:  # a list's items: each choice (prompt and text) judged whole
            for choice, stream in zip(answer["choices"], job.streams):
                choice["verdict"] = session.verdict(job.prompt_texts[choice["index"] // job.n] + stream.text)
        return answer

    async def stream(self, body: CompletionRequest, receive: Receive) -> AsyncIterator[str] | None:
        """The completion's server-sent events, from its first on; None when the client went
        away first."""
        events = self.start(body, receive)
        try:
            first = await events.next()
            failure = next((payload for kind, payload in first if kind == "error"), None)
            if failure is not None:
                raise failure
        except BaseException:
            events.close()
            raise
        if events.client_gone:
            events.close()
            return None
        model_id = events.worker.model_id
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = CompletionChunks(events.job, model_id, body.echo, include_usage)
        return server_sent_events(events, first, chunks, lambda: self.observe(events))

    def observe(self, events: JobEvents) -> None:
        """The time from the job's submission to its answer's end."""
        seconds = time.perf_counter() - events.job.submitted
        self.service.metrics.request_seconds.labels(events.worker.model_id, "completions").observe(seconds)
