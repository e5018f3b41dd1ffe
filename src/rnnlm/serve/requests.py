"""The API's requests, named as OpenAI's completions API names them. pydantic checks each
field's JSON type and the API's own ranges; a completion request then turns itself into the
batcher's job (``to_job``), checked against the server's limits (prompts, characters, tokens
per request, streams) and, for the generation settings, by the generation library itself.
Every refusal is a SettingError naming the JSON field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rnnlm.errors import SettingError
from rnnlm.generation.sampling import MAX_SAMPLING_SEED, Sampling
from rnnlm.generation.session import check_stream_options
from rnnlm.generation.stream import MAX_LOGPROBS, MAX_STOPS, check_stops
from rnnlm.serve.jobs import CompletionJob
from rnnlm.serve.options import ServeOptions

if TYPE_CHECKING:
    from rnnlm.serve.models import ServedModel

MAX_N = 16  # choices per prompt
MAX_PROMPTS = 16  # prompts in one request
MAX_TEMPERATURE = 100.0
MAX_SCORE_TOP = 10
DEFAULT_MAX_TOKENS = 16  # OpenAI's, for a request that sends max_tokens as null


def json_field(field: str) -> str:
    """A library setting as the request's JSON field. The requests name their fields as the
    library names its settings (``n``, ``max_tokens``, ``stop``, ``seed``, ``unit``, ...), so
    this is where a field that one day differs gets its JSON name."""
    return field


class Unsupported(SettingError):
    """An OpenAI option set to a value rnnlm cannot honour."""


class Strict(BaseModel):
    """JSON types as they are (no "5" for 5), and no field the API does not know (a typo is an error)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class StreamOptions(Strict):
    include_usage: bool = False


class CompletionRequest(Strict):
    model: str | None = Field(None, description="a model id from /v1/models (may be left out when one is served)")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        "", description="the text to continue: a string, a list of strings, token ids or a list of those")
    max_tokens: int | None = Field(DEFAULT_MAX_TOKENS, description="tokens to generate per choice (at most)")
    temperature: float | None = Field(1.0, ge=0, le=MAX_TEMPERATURE, description="0: always the most likely token")
    top_p: float | None = Field(1.0, ge=0, le=1, description="sample among the tokens holding this probability mass")
    top_k: int | None = Field(None, ge=-1, description="rnnlm extension: sample among the k most likely tokens "
                                                       "(0 or -1: all)")
    n: int = Field(1, ge=1, le=MAX_N, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOPS} strings that end a choice "
                                                                "(not included in its text)")
    seed: int | None = Field(None, description=f"0..{MAX_SAMPLING_SEED}: same seed, same text; choice i draws with "
                                               "seed + i")
    logprobs: int | None = Field(None, description=f"each token's log-probability and this many (0..{MAX_LOGPROBS}) "
                                                   "most likely alternatives")
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
        """A string or a list of strings, which the generation library's stop rule takes."""
        if value is None:
            return value
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError("must be a string or a list of strings")
        try:
            check_stops(stops)
        except SettingError as e:
            raise ValueError(e.spelled(json_field)) from None
        return value

    def prompts(self) -> list:
        """The prompts, each a string or a list of token ids."""
        p = self.prompt
        if isinstance(p, str) or (p and isinstance(p[0], int)) or p == []:
            return [p]
        return list(p)

    def stops(self) -> tuple[str, ...]:
        return () if self.stop is None else (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def sampling(self) -> Sampling:
        """OpenAI's sampling fields as the library's: temperature 0 or top_p 0 is greedy, top_p 1
        and top_k 0 or -1 cut nothing."""
        temperature = 1.0 if self.temperature is None else self.temperature
        top_p = None if self.top_p is None or self.top_p >= 1 else self.top_p
        top_k = None if self.top_k is None or self.top_k <= 0 else self.top_k
        greedy = temperature == 0 or top_p == 0
        return Sampling(temperature if temperature > 0 else 1.0, top_k, None if greedy else top_p, greedy)

    def to_job(self, model: ServedModel, limits: ServeOptions) -> CompletionJob:
        """The batcher's job for this request to ``model``. Raises SettingError (naming the JSON
        field) for what rnnlm does not support, what goes beyond this server's limits, or a
        generation setting the library refuses."""
        self.check_supported()
        prompts = self.prompts()
        check_prompts(prompts, len(model.session.vocab), limits.max_prompt_chars)
        max_tokens = DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens
        if max_tokens > limits.max_tokens:
            raise SettingError("max_tokens", f"{{max_tokens}}: at most {limits.max_tokens:,} on this server "
                                             f"(got {max_tokens:,})")
        if len(prompts) * self.n > limits.max_streams:
            raise SettingError("n", f"{{n}}: {len(prompts) * self.n} choices in all, more than the "
                                    f"{limits.max_streams} streams this server runs per model")
        sampling, stops = self.sampling(), self.stops()
        check_stream_options(self.n, max_tokens, stops, self.seed, self.logprobs, None)
        sampling.validate()
        return CompletionJob(prompts, self.n, max_tokens, stops, sampling, self.seed, self.logprobs, self.stream,
                             deliver=lambda event: None)

    def check_supported(self) -> None:
        """Raise Unsupported for an OpenAI option set to a value rnnlm cannot honour."""
        if self.best_of is not None and self.best_of != self.n:
            raise Unsupported("best_of", "{best_of} must equal {n} (rnnlm returns every choice it generates)")
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                raise Unsupported(name, f"{{{name}}} is not supported (leave it out or send 0)")
        if self.logit_bias:
            raise Unsupported("logit_bias", "{logit_bias} is not supported (leave it out)")
        if self.suffix is not None:
            raise Unsupported("suffix", "{suffix} is not supported (a recurrent model writes left to right only)")
        if self.echo and self.logprobs is not None:
            raise Unsupported("echo", "{echo} cannot be combined with {logprobs} (the prompt's tokens are not scored)")


def check_prompts(prompts: list, vocab_size: int, max_chars: int) -> None:
    """This server's limits on a request's prompts, and token ids the model's vocab holds."""
    if len(prompts) > MAX_PROMPTS:
        raise SettingError("prompt", f"{{prompt}}: at most {MAX_PROMPTS} prompts in one request (got {len(prompts)})")
    for p in prompts:
        if len(p) > max_chars:
            what = "characters" if isinstance(p, str) else "tokens"
            raise SettingError("prompt", f"{{prompt}}: at most {max_chars:,} {what} (got {len(p):,})")
        if isinstance(p, str):
            continue
        if not p:
            raise SettingError("prompt", "{prompt}: a list of token ids must not be empty")
        bad = next((t for t in p if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise SettingError("prompt", f"{{prompt}}: token id {bad} is not in 0..{vocab_size - 1}, the model's vocab")


class ScoreRequest(Strict):
    model: str | None = Field(None, description="a model id from /v1/models (may be left out when one is served)")
    text: str = Field(..., description="the text to score, read as one stream")
    top: int = Field(5, ge=0, le=MAX_SCORE_TOP, description="most likely alternatives reported per token")
    layer: int | None = Field(None, description="trace a hidden unit of this layer (1-based; default: the last)")
    unit: int | None = Field(None, description="the hidden unit to trace (0-based; its activation after each token)")

    def check_text(self, limits: ServeOptions) -> None:
        """This server's limit on the text's length."""
        if len(self.text) > limits.max_prompt_chars:
            raise SettingError("text", f"{{text}}: at most {limits.max_prompt_chars:,} characters "
                                       f"(got {len(self.text):,})")
