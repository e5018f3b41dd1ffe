"""The API's requests (validated by pydantic, named as OpenAI's completions API names them) and
the JSON of its answers."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rnnlm.generation.sampling import MAX_SAMPLING_SEED
from rnnlm.generation.stream import MAX_LOGPROBS, MAX_STOP_CHARS, MAX_STOPS, Stream, TokenRecord

MAX_N = 16  # choices per prompt
MAX_PROMPTS = 16  # prompts in one request
MAX_TEMPERATURE = 100.0
MAX_SCORE_TOP = 10
OPENAI_FINISH = {"length": "length", "stop": "stop", "end": "stop"}  # the model ending a document is a stop


class Strict(BaseModel):
    """JSON types as they are (no "5" for 5), and no field the API does not know (a typo is an error)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class StreamOptions(Strict):
    include_usage: bool = False


class CompletionRequest(Strict):
    model: str | None = Field(None, description="a model id from /v1/models (may be left out when one is served)")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        "", description="the text to continue: a string, a list of strings, token ids or a list of those")
    max_tokens: int | None = Field(16, ge=0, description="tokens to generate per choice (at most)")
    temperature: float | None = Field(1.0, ge=0, le=MAX_TEMPERATURE, description="0: always the most likely token")
    top_p: float | None = Field(1.0, ge=0, le=1, description="sample among the tokens holding this probability mass")
    top_k: int | None = Field(None, ge=-1, description="rnnlm extension: sample among the k most likely tokens "
                                                       "(0 or -1: all)")
    n: int = Field(1, ge=1, le=MAX_N, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOPS} strings that end a choice "
                                                                "(not included in its text)")
    seed: int | None = Field(None, ge=0, le=MAX_SAMPLING_SEED, description="same seed, same text; choice i draws with seed + i")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS,
                                 description="each token's log-probability and this many most likely alternatives")
    echo: bool = Field(False, description="put the prompt before each choice's text")
    stream: bool = Field(False, description="server-sent events, one per token, ending in data: [DONE]")
    stream_options: StreamOptions | None = None
    best_of: int | None = Field(None, description="accepted when equal to n (rnnlm returns every choice it makes)")
    frequency_penalty: float | None = Field(None, description="accepted when 0 (not supported)")
    presence_penalty: float | None = Field(None, description="accepted when 0 (not supported)")
    logit_bias: dict[str, float] | None = Field(None, description="accepted when empty (not supported)")
    suffix: str | None = Field(None, description="accepted when null (not supported)")
    user: str | None = Field(None, description="ignored")

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        """One clear message instead of pydantic's four (one per form of the union)."""
        def ids(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)

        if isinstance(value, str) or ids(value):
            return value
        if isinstance(value, list) and value and (all(isinstance(p, str) for p in value)
                                                  or all(ids(p) for p in value)):
            return value
        raise ValueError("must be a string, a non-empty list of strings, a list of token ids or a list of such lists")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_shape(cls, value: Any) -> Any:
        if value is None:
            return value
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError("must be a string or a list of strings")
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop strings (got {len(stops)})")
        for s in stops:
            if not s:
                raise ValueError("a stop string must not be empty")
            if len(s) > MAX_STOP_CHARS:
                raise ValueError(f"a stop string must be at most {MAX_STOP_CHARS} characters (got {len(s)})")
        return value

    def prompts(self) -> list:
        """The prompts, each a string or a list of token ids."""
        p = self.prompt
        if isinstance(p, str) or (p and isinstance(p[0], int)) or p == []:
            return [p]
        return list(p)

    def stops(self) -> tuple[str, ...]:
        return () if self.stop is None else (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def unsupported(self) -> tuple[str, str] | None:
        """(field, message) of an OpenAI option set to a value rnnlm cannot honour."""
        if self.best_of is not None and self.best_of != self.n:
            return "best_of", "best_of must equal n (rnnlm returns every choice it generates)"
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                return name, f"{name} is not supported (leave it out or send 0)"
        if self.logit_bias:
            return "logit_bias", "logit_bias is not supported (leave it out)"
        if self.suffix is not None:
            return "suffix", "suffix is not supported (a recurrent model writes left to right only)"
        if self.echo and self.logprobs is not None:
            return "echo", "echo cannot be combined with logprobs (the prompt's tokens are not scored)"
        return None


class ScoreRequest(Strict):
    model: str | None = Field(None, description="a model id from /v1/models (may be left out when one is served)")
    text: str = Field(..., description="the text to score, read as one stream")
    top: int = Field(5, ge=0, le=MAX_SCORE_TOP, description="most likely alternatives reported per token")
    layer: int | None = Field(None, ge=1, description="trace a hidden unit of this layer (1-based; default: the last)")
    unit: int | None = Field(None, ge=0, description="the hidden unit to trace (its activation after each token)")


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


def logprobs_json(records: list[TokenRecord], offset: int) -> dict:
    """Token log-probabilities in the completions API's shape; offsets count from ``offset``."""
    tokens, offsets = [], []
    for r in records:
        tokens.append(r.text)
        offsets.append(offset)
        offset += len(r.text)
    return {"tokens": tokens, "token_logprobs": [r.logprob for r in records],
            "top_logprobs": [top_json(r) for r in records], "text_offset": offsets}


def top_json(record: TokenRecord) -> dict[str, float]:
    """The alternatives of a token, written as the token itself was (with the space that joins a
    word to the one before it)."""
    joint = record.text[: len(record.text) - len(record.token)] if record.text.endswith(record.token) else ""
    return {joint + token: lp for token, lp in record.top}


def kept_records(stream: Stream) -> list[TokenRecord]:
    """The tokens behind a choice's text: those after a stop string are dropped (they wrote
    nothing the client sees)."""
    if stream.finish_reason != "stop":
        return stream.records
    kept, at = [], 0
    for r in stream.records:
        if at >= len(stream.text) and kept:
            break
        kept.append(r)
        at += len(r.text)
    return kept


def completion_json(cid: str, created: int, model: str, prompts: list[str], streams: list[Stream], n: int,
                    echo: bool, prompt_tokens: list[int]) -> dict:
    choices = []
    for i, stream in enumerate(streams):
        prompt = prompts[i // n]
        text = prompt + stream.text if echo else stream.text
        lp = None if stream.logprobs is None else logprobs_json(kept_records(stream), len(prompt))
        choices.append({"text": text, "index": i, "logprobs": lp,
                        "finish_reason": OPENAI_FINISH.get(stream.finish_reason or "length")})
    completion = sum(s.tokens for s in streams)
    return {"id": cid, "object": "text_completion", "created": created, "model": model, "choices": choices,
            "usage": usage_json(sum(prompt_tokens), completion)}


def usage_json(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class ChunkWriter:
    """Server-sent events of one streamed completion, each chunk built from a prefix made once
    (a token costs one small JSON string, not a whole object's serialisation)."""

    def __init__(self, cid: str, model: str, created: int | None = None):
        created = int(time.time()) if created is None else created
        head = json.dumps({"id": cid, "object": "text_completion", "created": created, "model": model})[:-1]
        self.head = head
        self.prefix = head + ', "choices": [{"index": '

    def chunk(self, index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> str:
        reason = "null" if finish_reason is None else f'"{OPENAI_FINISH.get(finish_reason, finish_reason)}"'
        lp = "null" if logprobs is None else json.dumps(logprobs)
        return (f'data: {self.prefix}{index}, "text": {json.dumps(text)}, "logprobs": {lp}, '
                f'"finish_reason": {reason}}}]}}\n\n')

    def usage(self, prompt: int, completion: int) -> str:
        return f'data: {self.head}, "choices": [], "usage": {json.dumps(usage_json(prompt, completion))}}}\n\n'

    @staticmethod
    def error(message: str, type_: str = "server_error") -> str:
        return f"data: {json.dumps(error_body(message, type_))}\n\n"


DONE = "data: [DONE]\n\n"


def model_json(model_id: str, created: int, card: dict | None = None) -> dict:
    obj: dict[str, Any] = {"id": model_id, "object": "model", "created": created, "owned_by": "rnnlm"}
    if card is not None:
        obj["card"] = card
    return obj

