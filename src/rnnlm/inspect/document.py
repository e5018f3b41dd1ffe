"""A scoring as JSON: what ``rnnlm score --json`` prints and what the HTML page draws.

    {"run", "level", "text", "characters", "token_count", "predicted", "unknown",
     "total_nats", "loss" (nats/token), "perplexity", "bits_per_char",
     "surprising": [{"start", "end", "text", "nats", "expected"}],
     "traces": [{"layer", "layers", "state", "unit", "values": [one per token]}],
     "feature": {"regex", "layer", "state", "marked", "tokens", "matches", "units": [...]} or null,
     "tokens": [{"text", "token", "start", "end", "logprob", "top": [[token, logprob], ...]}]}

Token 0 has ``logprob`` null and no ``top``: nothing precedes it (see rnnlm.inspect.score).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterator, TextIO

if TYPE_CHECKING:  # a scoring shows itself as this page (Scoring._repr_html_)
    from rnnlm.inspect.feature import FeatureRanking
    from rnnlm.inspect.score import Scoring

BEST_UNITS = 5  # units of a feature ranking whose traces a document carries


def token_records(scoring: Scoring) -> Iterator[dict]:
    """One object per token, made as they are asked for (a long text's never all at once)."""
    itos = scoring.shown_tokens
    for i in range(scoring.token_count):
        first = i == 0
        lp = None if first else round(float(scoring.logprobs[i]), 6)
        top = [] if first else [[itos[t], round(float(v), 6)]
                                for t, v in zip(scoring.top_ids[i].tolist(), scoring.top_logprobs[i].tolist())]
        yield {"text": scoring.token_text(i), "token": itos[int(scoring.ids[i])], "start": int(scoring.starts[i]),
               "end": int(scoring.ends[i]), "logprob": lp, "top": top}


def shown_units(scoring: Scoring, ranking: FeatureRanking | None, unit: int | None) -> list[int]:
    """The units a document carries the traces of: ``unit`` if given, then the best of the ranking
    (or the one unit traced)."""
    if scoring.trace is None:
        return []
    units = [unit] if unit is not None else []
    if ranking is not None:
        units += [u.unit for u in ranking.units[:BEST_UNITS] if u.unit != unit]
    elif unit is None and len(scoring.trace.units) == 1:
        units = list(scoring.trace.units)
    return units


def summary(scoring: Scoring, ranking: FeatureRanking | None = None, unit: int | None = None,
            spans: int = 5) -> dict:
    """Everything but the tokens."""
    itos = scoring.shown_tokens
    surprising = [{"start": s.start, "end": s.end, "text": scoring.text[s.start : s.end], "nats": round(s.nats, 4),
                   "expected": itos[int(scoring.top_ids[s.first, 0])] if scoring.top_ids.shape[1] and s.first else None}
                  for s in scoring.surprising_spans(spans)]
    trace = scoring.trace
    traces = [{"layer": trace.layer, "layers": trace.layers, "state": trace.kind, "unit": u,
               "values": [round(v, 4) for v in trace.of(u).tolist()]} for u in shown_units(scoring, ranking, unit)]
    return {"run": scoring.run, "level": scoring.level, "text": scoring.text, "characters": len(scoring.text),
            "token_count": scoring.token_count, "predicted": scoring.predicted, "unknown": scoring.unknown,
            "total_nats": scoring.total_nats, "loss": scoring.loss, "perplexity": scoring.perplexity,
            "bits_per_char": scoring.bits_per_char, "surprising": surprising, "traces": traces,
            "feature": ranking.as_dict() if ranking is not None else None}


def document(scoring: Scoring, ranking: FeatureRanking | None = None, unit: int | None = None) -> dict:
    """The whole JSON document, tokens included."""
    return {**summary(scoring, ranking, unit), "tokens": list(token_records(scoring))}


def write_document(out: TextIO, scoring: Scoring, ranking: FeatureRanking | None = None,
                   unit: int | None = None) -> None:
    """``document`` written to ``out`` as one line of JSON, a token at a time."""
    head = json.dumps(summary(scoring, ranking, unit), ensure_ascii=False)
    out.write(head[:-1] + ', "tokens": [')
    for i, record in enumerate(token_records(scoring)):
        out.write(("" if i == 0 else ", ") + json.dumps(record, ensure_ascii=False))
    out.write("]}\n")
