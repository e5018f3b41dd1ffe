"""The plan of a ``--budget`` run, in words, as it is printed before training starts."""

from __future__ import annotations

from typing import Callable, Sequence

from rnnlm.config import RunConfig, duration_text
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.train.budget import Speed, cycle_ends


def describe_plan(config: RunConfig, data: TextData, speed: Speed, params: int, memory: str, yours: Sequence[str],
                  spell: Callable[[str], str]) -> str:
    """The plan, as printed before training starts; ``spell`` names the budget's setting, and
    ``yours`` lists the user's settings as they wrote them."""
    plan, t, m = config.plan, config.train, config.model
    unit = {"char": "characters", "word": "words"}.get(data.tokenizer.level, "tokens")
    batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    n = len(batches)
    tokens = round(plan.steps * batches.tokens / n)
    validations = len(plan.valid_at)
    lines = [
        f"plan for {spell('budget')} {duration_text(plan.limit)}: {data.name}, {len(data.train_ids):,} training "
        f"{unit} ({len(data.vocab)} tokens in the vocab), {len(data.valid_ids):,} held out"
        + (f", validated on {plan.valid_tokens:,} spread over them (a whole pass would take "
           f"{plan.valid_s * len(data.valid_ids) / plan.valid_tokens:.0f} s)" if plan.valid_tokens else ""),
        f"  model     {m.cell}, {m.layers} layer{'s' if m.layers > 1 else ''} of {m.hidden}, emb {m.emb}, dropout "
        f"{m.dropout:g}" + (f", weight dropout {m.weight_dropout:g}" if m.weight_dropout else "")
        + f": {params:,} parameters; training needs about {memory}",
        f"  batches   bs {t.bs} x bptt {t.bptt} = {t.bs * t.bptt:,} tokens a step, {n:,} steps an epoch",
        f"  speed     {plan.tokens_per_s:,.0f} tokens/s measured in {t.precision} (probe {speed.seconds:.1f} s; "
        f"reading and probing took {plan.setup_s:.1f} s); one validation about {plan.valid_s:.1f} s",
        f"  schedule  {schedule_text(config)} over {plan.steps:,} steps = {tokens:,} tokens = "
        f"{plan.steps / n:.1f} epochs that fit; validated {validations} time{'s' if validations > 1 else ''}"
        + (f", every {plan.valid_at[0]:,} steps" if validations > 2 else "")
        + (f"; ends after {duration_text(plan.budget)}" if plan.asked else ""),
    ]
    if plan.chosen:
        lines.append(f"  chosen    {', '.join(plan.chosen)}" + (f": {plan.recipe}" if plan.recipe else ""))
    if yours:
        lines.append(f"  yours     {' '.join(yours)}")
    return "\n".join(lines)


def schedule_text(config: RunConfig) -> str:
    t, plan = config.train, config.plan
    if len(plan.phases) > 1:
        parts = ", then ".join(f"lr {lr:g} for {steps:,} steps" for lr, steps in plan.phases)
        return f"{t.schedule_name} phases: {parts};"
    lr = plan.phases[0][0]
    if t.schedule_name == "onecycle":
        return f"onecycle up to lr {lr:g}, annealed to its end,"
    if t.schedule_name == "sgdr":
        cycles = cycle_ends(plan.cycle_steps[0], t.cycle_mult, plan.steps)
        lengths = [b - a for a, b in zip([0, *cycles], cycles)]
        return f"sgdr from lr {lr:g}, {len(lengths)} cycle{'s' if len(lengths) > 1 else ''} of " \
               f"{', '.join(f'{c:,}' for c in lengths)} steps,"
    return f"constant lr {lr:g}"
