"""The service the routes share: the models served, one batching worker each, the options and
the metrics; started and stopped with the app (its lifespan), or at once on a signal."""

from __future__ import annotations

import asyncio
import time

from rnnlm.errors import RnnlmError, SettingError, literal
from rnnlm.serve.batcher import ModelWorker
from rnnlm.serve.metrics import ServerMetrics
from rnnlm.serve.models import ServedModel
from rnnlm.serve.options import ServeOptions


class UnknownModel(RnnlmError):
    """A request named a model this server does not serve."""


class Service:
    def __init__(self, models: dict[str, ServedModel], options: ServeOptions = ServeOptions()):
        self.models, self.options, self.metrics = models, options, ServerMetrics()
        self.workers: dict[str, ModelWorker] = {}
        self.closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for model_id, model in self.models.items():
            worker = ModelWorker(model_id, model.session, loop, self.metrics, self.options.max_streams,
                                 self.options.queue)
            worker.thread.start()
            self.workers[model_id] = worker

    def close(self) -> None:
        """Stop accepting; the workers end the streams in flight at their next step."""
        self.closing = True
        for worker in self.workers.values():
            worker.close()

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.thread.join(max(0.0, deadline - time.monotonic()))

    def model(self, model_id: str | None) -> ServedModel:
        """The model a request names; one left unnamed is the only one served."""
        if model_id is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise SettingError("model", f"{{model}} is required: this server has {len(self.models)} models "
                                        f"({literal(', '.join(sorted(self.models)))})")
        try:
            return self.models[model_id]
        except KeyError:
            raise UnknownModel(f"the model {model_id!r} does not exist; GET /v1/models lists the ones served") from None
