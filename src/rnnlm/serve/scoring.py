"""/v1/score over ``rnnlm score``'s library function (rnnlm.inspect.score): per-token surprisal,
the top alternatives and a hidden unit's trace, as JSON, computed on the model's scoring thread."""

from __future__ import annotations

import math
import time

from rnnlm.errors import RnnlmError, SettingError
from rnnlm.runfolder import Run
from rnnlm.serve.requests import ScoreRequest
from rnnlm.serve.service import Service


async def score(service: Service, body: ScoreRequest) -> dict:
    """The request's text scored. A setting the library refuses is named by its field; any
    other refusal is about the text itself."""
    model = service.model(body.model)
    body.check_text(service.options)
    started = time.perf_counter()
    run = model.session.run
    try:
        result = await service.workers[model.id].score(
            lambda: score_json(run, body.text, body.top, body.layer, body.unit))
    except SettingError:
        raise
    except RnnlmError as e:
        raise SettingError("text", str(e)) from None
    service.metrics.request_seconds.labels(model.id, "score").observe(time.perf_counter() - started)
    return result


def score_json(run: Run, text: str, top: int, layer: int | None, unit: int | None) -> dict:
    """Score ``text`` under ``run``'s model (on the caller's thread: the server calls this on the
    model's scoring thread). Raises SettingError for a setting the model cannot take, RnnlmError
    for a text."""
    from rnnlm.inspect.score import score_text, trace_choice

    scoring = score_text(run, text, top=top, unit=trace_choice(layer, unit))
    vocab, tokenizer = scoring.vocab, run.tokenizer
    values = None if scoring.trace is None else scoring.trace.values[:, 0].tolist()
    tokens = []
    for i in range(scoring.token_count):
        lp = float(scoring.logprobs[i])
        token = {"text": scoring.token_text(i), "start": int(scoring.starts[i]), "end": int(scoring.ends[i]),
                 "logprob": None if math.isnan(lp) else lp,
                 "top": [] if i == 0 else [[tokenizer.piece(vocab.itos[int(t)]), float(v)]
                                           for t, v in zip(scoring.top_ids[i], scoring.top_logprobs[i])]}
        if values is not None:
            token["value"] = values[i]
        tokens.append(token)
    trace = None
    if scoring.trace is not None:
        t = scoring.trace
        trace = {"layer": t.layer, "layers": t.layers, "kind": t.kind, "unit": t.units[0]}
    return {"object": "score", "model": run.folder.name, "level": scoring.level, "text": scoring.text,
            "tokens": tokens, "predicted": scoring.predicted, "total_nats": scoring.total_nats,
            "loss": scoring.loss, "perplexity": scoring.perplexity, "bits_per_char": scoring.bits_per_char,
            "unknown_tokens": scoring.unknown, "trace": trace}
