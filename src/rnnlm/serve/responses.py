"""The API's answers as JSON: a completion (whole, or as server-sent events), its log-probabilities
and usage, a model, and OpenAI's error object."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from rnnlm.generation.stream import Stream, TokenRecord

OPENAI_FINISH = {"length": "length", "stop": "stop", "end": "stop"}  # the model ending a document is a stop


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

