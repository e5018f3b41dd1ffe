"""Planning a ``--budget`` run: the recipe of the table for the settings left to it, a probe of
the model and batch that will train, the plan of the steps that fit (rnnlm.train.budget), and
the pacer that keeps the run to it (rnnlm.train.pacing)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from rnnlm.config import BudgetPlan, RunConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.device import size_text
from rnnlm.distributed import Distributed
from rnnlm.models.recurrent import parameter_count
from rnnlm.train.base import BaseRun
from rnnlm.train.base_vocab import base_text_data, describe_start
from rnnlm.train.budget import Speed, make_plan
from rnnlm.train.memory import check_training_memory, training_memory
from rnnlm.train.pacing import Pacer
from rnnlm.train.plan_text import describe_plan
from rnnlm.train.plots import has_matplotlib
from rnnlm.train.probe import probe_speed, probe_time
from rnnlm.train.recipe import (EPOCH_LEVELS, LADDERS, MAX_EPOCHS, MAX_PARAMS_PER_TOKEN, MIN_EPOCHS,
                                RECIPE_FIELDS, REFERENCES, SMALL_CORPUS_EPOCHS, Choice, apply_recipe, dropout_for,
                                walk_ladder)
from rnnlm.train.session import Session
from rnnlm.train.setup import check_sizes, load_data


def load_and_plan(config: RunConfig, dist: Distributed, yours: Sequence[str], session: Session,
                  base: BaseRun | None = None) -> tuple[RunConfig, TextData, Pacer | None]:
    """The data (read with the tokenizer and vocab of ``base``, the run a fine-tuned one starts
    from), and for a --budget run its plan (printed by rank 0, listing ``yours``) and the pacer
    that keeps the run to it. A fine-tuned run's model is its base's: the table chooses nothing."""
    budget = config.train.budget is not None
    if base is None:
        config, data = load_data(config, check=not budget)
    else:
        config, data, change = base_text_data(config, base, dist, check=not budget)
        if dist.is_main:
            session.say("\n".join(describe_start(config, base, change, session.spell)))
    if not budget:
        return config, data, None
    plot_s = dist.from_main(plot_warm_up(session) if dist.is_main else 0.0)
    choose = frozenset() if base is not None else left_to_rules(config)
    config, speed = plan_budget(config, data, dist, choose, session, plot_s)
    if dist.is_main:
        print_plan(config, data, speed, yours, session)
    return config, data, make_pacer(config, data, dist, 0.0, session)


def plot_warm_up(session: Session) -> float:
    """Seconds the loss plot's first drawing takes, in the time the plan counts (none without
    matplotlib): more than the next drawings take (no fonts to load), a safe guess for each."""
    if not has_matplotlib():
        return 0.0
    from rnnlm.train.plots import warm_up

    start = session.clock()
    warm_up()
    return session.clock() - start


def plan_budget(config: RunConfig, data: TextData, dist: Distributed, choose: frozenset[str], session: Session,
                plot_s: float = 0.0) -> tuple[RunConfig, Speed]:
    """The plan of a --budget run: the recipe for the settings in ``choose`` (rnnlm.train.recipe:
    the models of its ladder probed on this machine) or a probe of the model given, and the steps
    that fit (rnnlm.train.budget), each validation followed by a drawing of the loss plot that
    takes ``plot_s``. A model the rules chose trains at most ``MAX_EPOCHS`` epochs (the run ends
    early), and its dropout, where chosen, follows the epochs it trains (fewer for a model of
    fewer parameters than training tokens: rnnlm.train.recipe.dropout_for; where weight dropout
    comes with it, those at the speed the model is probed at again with it; where that speed
    buys too few epochs to call for weight dropout, it is left off and the first speed holds)."""
    clock, started = session.clock, session.started
    seconds = probe_time(config.train.budget)
    choice = None
    if choose:
        config, choice, speed = choose_model(config, data, dist, choose, session, seconds)
    else:
        speed = probed_speed(config, data, dist, seconds, session)
    chosen = sorted(choose, key=RECIPE_FIELDS.index) or None
    n = len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    by_epochs = choice is not None and choice.level in EPOCH_LEVELS
    capped = by_epochs and {"layers", "hidden"} <= choose and not choice.whole_budget  # at most MAX_EPOCHS
    dropout_by_epochs = by_epochs and "dropout" in choose

    def planned() -> BudgetPlan:
        return make_plan(config, data, speed, dist.from_main(clock() - started), chosen, None, plot_s,
                         max_steps=math.floor(MAX_EPOCHS * n) if capped else None)

    per_token = parameter_count(len(data.vocab), config.model) / max(len(data.train_ids), 1)
    plan = planned()
    if dropout_by_epochs:
        without, config = config, regularised(config, plan.steps / n, per_token, choose)
        if config.model.weight_dropout != without.model.weight_dropout:  # it costs time: measured again
            first, speed = speed, probed_speed(config, data, dist, seconds, session)
            plan = planned()
            if not dropout_for(plan.steps / n, per_token)[1]:  # with it, too few epochs to call for it: left off
                config, speed = without, first
                plan = planned()
            config = replace(config, model=replace(config.model, dropout=dropout_for(plan.steps / n, per_token)[0]))
    if choice is not None:
        epochs = plan.steps / n if dropout_by_epochs else None
        reason = choice.reason(epochs, config.model.dropout, config.model.weight_dropout, plan.asked is not None,
                               per_token)
        plan = replace(plan, recipe=reason)
    train_settings = replace(config.train, epochs=max(1, math.ceil(plan.steps / n)))
    return replace(config, train=train_settings, plan=plan), speed


def choose_model(config: RunConfig, data: TextData, dist: Distributed, choose: frozenset[str], session: Session,
                 seconds: float) -> tuple[RunConfig, Choice, Speed]:
    """The settings in ``choose`` from the level's ladder (rnnlm.train.recipe), of its models not
    too large for the corpus: each probed, from the reference up, for the epochs (and so the
    steps) that fit in what is left of the budget; where the ladder's largest fits the corpus and
    trains ``SMALL_CORPUS_EPOCHS`` or more, the smallest (it trains the whole budget); the chosen
    one's speed."""
    level, tokens = data.tokenizer.level, len(data.train_ids)
    ladder = [apply_recipe(config, recipe, choose, tokens, dist.world_size) for recipe in LADDERS[level]]
    speeds: dict[int, Speed] = {}
    measured: dict[int, float] = {}

    def epochs_of(k: int) -> float:
        if k not in measured:
            same = next((j for j in speeds if (ladder[j].model, ladder[j].train) == (ladder[k].model, ladder[k].train)),
                        None)
            speeds[k] = speeds[same] if same is not None else probed_speed(ladder[k], data, dist, seconds, session)
            left = config.train.budget - (session.clock() - session.started)
            measured[k] = dist.from_main(left * speeds[k].tokens_per_s / max(tokens, 1))
        return measured[k]

    vocab = len(data.vocab)
    small = [k for k, c in enumerate(ladder) if parameter_count(vocab, c.model) <= MAX_PARAMS_PER_TOKEN * tokens]
    top = small[-1] if small else 0  # the largest not too large for the corpus (the smallest, where none is)

    def steps_per_epoch(k: int) -> int:
        return len(StreamBatches(data.train_ids, ladder[k].train.bs, ladder[k].train.bptt))

    chosen = walk_ladder(top + 1, min(LADDERS[level].index(REFERENCES[level]), top), epochs_of, steps_per_epoch)
    epochs_of(chosen)  # the smallest, where the reference does not fit, is probed now
    larger = model_size(ladder[top + 1]) if top + 1 < len(ladder) else None
    stopped = next((k for k in sorted(measured) if k > chosen), None)  # the size the walk stopped at, if probed
    short = None  # it trained the epochs, so too few steps stopped it
    if stopped is not None and measured[stopped] >= MIN_EPOCHS:
        short = (model_size(ladder[stopped]), math.floor(measured[stopped] * steps_per_epoch(stopped)))
    small_corpus = None
    if chosen == len(ladder) - 1 and level in EPOCH_LEVELS and {"layers", "hidden"} <= choose \
            and measured[chosen] >= SMALL_CORPUS_EPOCHS:  # the smallest instead, for the whole budget
        small_corpus, short, chosen = (model_size(ladder[chosen]), measured[chosen]), None, 0
        epochs_of(chosen)
    sizes = tuple({model_size(ladder[k]): measured[k] for k in sorted(measured)}.items())  # a size once
    choice = Choice(level, model_size(ladder[chosen]), sizes, larger, short, small_corpus)
    return ladder[chosen], choice, speeds[chosen]


def regularised(config: RunConfig, epochs: float, per_token: float, choose: frozenset[str]) -> RunConfig:
    """``config`` with the dropout, and the weight dropout where it is in ``choose``, of a model
    of ``per_token`` parameters a training token that trains ``epochs`` epochs
    (rnnlm.train.recipe.dropout_for)."""
    dropout, weight_dropout = dropout_for(epochs, per_token)
    model = {"dropout": dropout, **({"weight_dropout": weight_dropout} if "weight_dropout" in choose else {})}
    return replace(config, model=replace(config.model, **model))


def model_size(config: RunConfig) -> str:
    return f"{config.model.layers} x {config.model.hidden}"


def probed_speed(config: RunConfig, data: TextData, dist: Distributed, seconds: float, session: Session) -> Speed:
    """The speed of ``config``'s model and batch, once they are known to fit the data and memory."""
    check_sizes(data, config.train.bs, config.train.bptt)
    check_training_memory(config, len(data.vocab), dist.device)
    return probe_speed(config, data, dist.device, dist, seconds, session.clock, session.started)


def left_to_rules(config: RunConfig) -> frozenset[str]:
    """The settings of the recipe rules the user did not give (none, where ``config.given``
    does not say what they gave); a dropout given makes the weight dropout the user's too."""
    if config.given is None:
        return frozenset()
    left = frozenset(name for name in RECIPE_FIELDS if name not in config.given)
    return left if "dropout" in left else left - {"weight_dropout"}  # the two go together


def print_plan(config: RunConfig, data: TextData, speed: Speed, yours: Sequence[str], session: Session) -> None:
    vocab = len(data.vocab)
    session.say(describe_plan(config, data, speed, parameter_count(vocab, config.model),
                              size_text(training_memory(config, vocab)), yours, session.spell))


def make_pacer(config: RunConfig, data: TextData, dist: Distributed, spent: float, session: Session) -> Pacer:
    """The pacer of a planned run, ``spent`` seconds of its budget used before this session."""
    batches = StreamBatches(data.train_ids, config.train.bs, config.train.bptt).shard(dist.rank, dist.world_size)
    step_tokens = batches.tokens / max(len(batches), 1) * dist.world_size
    return Pacer(config.plan, spent, session.started, session.clock, step_tokens=step_tokens, dist=dist)
