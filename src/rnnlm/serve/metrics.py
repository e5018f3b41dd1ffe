"""The server's Prometheus metrics, in a registry of its own (one per app, never the global one,
so that several apps in one process count apart)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class ModelGauges:
    """One model's gauges and step histograms, their labels looked up once (a step observes them)."""

    active: Gauge
    queued: Gauge
    batch_size: Histogram
    step_seconds: Histogram

    def observe_step(self, batch: int, seconds: float) -> None:
        self.batch_size.observe(batch)
        self.step_seconds.observe(seconds)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rnnlm_requests", "HTTP requests answered, by route and status",
                                ["method", "route", "status"], registry=r)
        self.prompt_tokens = Counter("rnnlm_prompt_tokens", "Prompt tokens read", ["model"], registry=r)
        self.completion_tokens = Counter("rnnlm_completion_tokens", "Tokens generated", ["model"], registry=r)
        self.active_streams = Gauge("rnnlm_active_streams", "Streams in the batch", ["model"], registry=r)
        self.queued_requests = Gauge("rnnlm_queued_requests", "Requests waiting for a slot", ["model"], registry=r)
        self.batch_size = Histogram("rnnlm_batch_size", "Streams advanced by one step", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.step_seconds = Histogram("rnnlm_step_seconds", "Time of one batched step (sampling and forward)",
                                      ["model"], buckets=STEP_BUCKETS, registry=r)
        self.time_to_first_token = Histogram("rnnlm_time_to_first_token_seconds",
                                             "From a request's arrival to its first token", ["model"],
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram("rnnlm_request_seconds", "Time to answer a completion or score request",
                                         ["model", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("rnnlm_rejected", "Requests refused for want of room (503)", ["model"], registry=r)

    def for_model(self, model: str) -> ModelGauges:
        return ModelGauges(self.active_streams.labels(model), self.queued_requests.labels(model),
                           self.batch_size.labels(model), self.step_seconds.labels(model))

    def render(self) -> bytes:
        return generate_latest(self.registry)
