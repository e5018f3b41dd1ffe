"""How a server is set up: its limits per model and per request, its API key and the origins
whose pages may call it. Checked when made, each setting named by its field."""

from __future__ import annotations

from dataclasses import dataclass

from rnnlm.errors import invalid
from rnnlm.generation.session import MAX_TOKENS


@dataclass(frozen=True)
class ServeOptions:
    max_streams: int = 128  # active streams per model
    queue: int = 256  # requests per model that may wait for a slot
    max_tokens: int = 4096  # per choice
    max_prompt_chars: int = 32_768  # per prompt, and per scored text
    max_body: int = 1 << 20  # bytes of a request body
    api_key: str | None = None
    cors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field, least in (("max_streams", 1), ("queue", 0), ("max_tokens", 1), ("max_prompt_chars", 1),
                             ("max_body", 1)):
            value = getattr(self, field)
            if value < least:
                raise invalid(field, f"must be >= {least} (got {value})")
        if self.max_tokens > MAX_TOKENS:
            raise invalid("max_tokens", f"must be <= {MAX_TOKENS:,} (got {self.max_tokens})")
        key = self.api_key
        if key is not None and (not key.strip() or not key.isprintable() or " " in key):
            raise invalid("api_key", "must be printable characters without spaces")
