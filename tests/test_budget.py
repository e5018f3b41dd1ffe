"""--budget: parsing, the plan (steps, phases, cycles, validations), the pacer that keeps a run to
its time, the recipe table, and short real runs: within the budget, annealed, resumable."""

import io
import re
import json
import math
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_TEXT, one_error_line, tiny_config

from rnnlm.cli import main
from rnnlm.config import BudgetPlan, RunConfig, duration_text, parse_duration
from rnnlm.data.batching import StreamBatches
from rnnlm.errors import RnnlmError
from rnnlm.runfolder import STATE, read_config
from rnnlm.train.budget import Speed, cycle_ends, make_plan, sgdr_cycles, spread
from rnnlm.train.pacing import Pace, Pacer
from rnnlm.train.probe import probe_speed
from rnnlm.train.callbacks import Callback
from rnnlm.train.checkpoint import read_training_state
from rnnlm.distributed import Distributed
from rnnlm.train.recipe import (DROPOUTS, LADDERS, MAX_EPOCHS, MAX_PARAMS_PER_TOKEN, MIN_EPOCHS, MIN_STEPS,
                                RECIPE_BATCHES, RECIPE_FIELDS, REFERENCE, REFERENCES, SMALL_CORPUS_EPOCHS, Choice,
                                apply_recipe, dropout_for, walk_ladder)
from rnnlm.models.recurrent import parameter_count
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import plan_run, resume, train
from rnnlm.train.setup import load_data, resolve_config

# What a process does once, and a --budget run counts in its time, done before the timed tests: the
# first optimiser imports torch._dynamo (seconds on a busy machine).
torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


@pytest.fixture(autouse=True)
def no_plot(monkeypatch):
    """The runs here draw no loss plot: drawing one takes from a tenth of a second to seconds,
    as busy as the machine is (the plan counts it, but it would swamp a budget of seconds)."""
    import rnnlm.train.assembly
    import rnnlm.train.planning

    for module in (rnnlm.train.assembly, rnnlm.train.planning):
        monkeypatch.setattr(module, "has_matplotlib", lambda: False)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400),
                                           (" 2M ", 120), (".5s", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, words", [("0", "more than zero"), ("0s", "more than zero"), ("abc", "not a duration"),
                                         ("10", "give a unit: 10s, 10m or 10h"), ("-5m", "not a duration"),
                                         ("", "not a duration"), ("5 minutes", "not a duration")])
def test_bad_durations(text, words):
    with pytest.raises(RnnlmError, match=words):
        parse_duration(text)


def test_duration_text():
    assert [duration_text(s) for s in (600, 5400, 90, 5, 2.5)] == ["10m", "1h30m", "1m30s", "5s", "2.5s"]


@pytest.mark.parametrize("extra, words", [
    (["--budget", "0"], "more than zero"),
    (["--budget", "abc"], "not a duration"),
    (["--budget", "5s", "--epochs", "3"], "drop --epochs"),
    (["--budget", "5s", "--max-minutes", "1"], "give one of them"),
    (["--budget", "0.05s"], "too short"),  # after the probe nothing is left for one batch
    (["--dry-run"], "--dry-run needs --budget"),
])
def test_bad_budget_options(tiny_file, tmp_path, capsys, extra, words):
    out = tmp_path / "run"
    err = one_error_line(["train", str(tiny_file), "--model", "gru", "--hidden", "16", "--emb", "8", "--bs", "4",
                          "--bptt", "8", "--device", "cpu", "--out", str(out), *extra], capsys)
    assert words in err
    assert not out.exists()


def fake_data(train_tokens: int, valid_tokens: int = 1000):
    return SimpleNamespace(train_ids=torch.zeros(train_tokens, dtype=torch.uint8).numpy(),
                           valid_ids=torch.zeros(valid_tokens, dtype=torch.uint8).numpy(),
                           vocab=list(range(40)))


def planned(schedule=None, lr=1e-2, phases=None, budget=100.0, **train):
    config = tiny_config("x", schedule=schedule, lr=lr, phases=phases, budget=budget, **train)
    return resolve_config(config)


def test_plan_fits_the_budget_at_the_measured_speed():
    config = planned(budget=100.0)  # bs 8 x bptt 16 = 128 tokens a step
    data = fake_data(128 * 50 + 1)  # 50 steps an epoch
    plan = make_plan(config, data, Speed(tokens_per_s=1280.0, valid_s=0.5, seconds=1.0), setup_s=10.0)
    validations = len(plan.valid_at)
    training = plan.steps * 0.1  # 0.1 s a step
    assert plan.valid_s > 0.5  # the saves after each validation are counted too
    assert training + validations * plan.valid_s <= 90.0  # what is left after the setup
    assert training + validations * plan.valid_s > 0.9 * 90.0  # and most of it is used
    assert plan.valid_at[-1] == plan.steps and plan.phases == [(1e-2, plan.steps)]
    assert all(v % 50 == 0 for v in plan.valid_at[:-1])  # validations more than an epoch apart fall at epoch ends


def test_a_plan_with_more_steps_than_it_may_train_ends_early():
    config = planned(budget=100.0)
    data = fake_data(128 * 50 + 1)
    speed = Speed(tokens_per_s=1280.0, valid_s=0.5, seconds=1.0)
    whole = make_plan(config, data, speed, setup_s=10.0)
    assert whole.asked is None and make_plan(config, data, speed, 10.0, max_steps=whole.steps).asked is None
    plan = make_plan(config, data, speed, setup_s=10.0, max_steps=whole.steps // 3)
    assert 0.9 * whole.steps // 3 <= plan.steps <= whole.steps // 3  # about as many as it may train, no more
    assert plan.asked == 100.0 and 10.0 + plan.steps * 0.1 < plan.budget < 0.5 * plan.asked  # its own, shorter time
    assert plan.valid_at[-1] == plan.steps
    plan.validate()


def test_a_plan_that_ends_early_validates_about_every_epoch_where_its_spare_time_allows():
    config = planned(budget=100.0)
    data = fake_data(128 * 50 + 1)  # 50 steps an epoch, 5 s at 0.1 s a step
    speed = Speed(tokens_per_s=1280.0, valid_s=0.5, seconds=1.0)
    plan = make_plan(config, data, speed, setup_s=10.0, max_steps=275)  # 5.5 epochs
    gaps = [b - a for a, b in zip([0, *plan.valid_at], plan.valid_at)]
    assert 0.9 * 275 <= plan.steps <= 275 and max(gaps) <= 50 and plan.valid_at[-1] == plan.steps  # an epoch apart
    assert 10.0 + plan.steps * 0.1 + len(gaps) * plan.valid_s < plan.budget < plan.asked
    slow = make_plan(config, data, Speed(1280.0, 20.0, 1.0), setup_s=10.0, max_steps=275)  # more would not fit
    assert slow.valid_at == [slow.steps] and slow.steps > 50 and slow.budget <= slow.asked == 100.0
    slow.validate()


@pytest.mark.parametrize("epoch_steps, tokens_per_s, valid_s", [
    (50, 20000.0, 0.5), (50, 80000.0, 0.05), (97, 5000.0, 2.0), (20, 5000.0, 0.5), (7, 640.0, 0.5)])
def test_a_plan_that_ends_early_trains_nearly_as_many_steps_as_it_may_and_no_more(epoch_steps, tokens_per_s, valid_s):
    config = planned(budget=100.0)  # each a case the share of time alone, or the validations added, got wrong
    data = fake_data(128 * epoch_steps + 1)
    max_steps = 11 * epoch_steps
    plan = make_plan(config, data, Speed(tokens_per_s, valid_s, 1.0), setup_s=5.0, max_steps=max_steps)
    assert 0.98 * max_steps <= plan.steps <= max_steps and plan.budget <= plan.asked
    assert len(plan.valid_at) >= 10  # about an epoch apart
    plan.validate()


def test_plan_validates_mid_epoch_on_a_large_corpus():
    config = planned(budget=600.0)
    data = fake_data(128 * 100_000 + 1)  # an epoch far longer than the budget
    plan = make_plan(config, data, Speed(tokens_per_s=12800.0, valid_s=1.0, seconds=1.0), setup_s=5.0)
    assert plan.steps < 100_000 and 5 <= len(plan.valid_at) <= 30
    gaps = {b - a for a, b in zip([0, *plan.valid_at], plan.valid_at)}
    assert max(gaps) - min(gaps) <= max(gaps) / 2  # about evenly spaced


def test_plan_spreads_phases_in_proportion_to_their_epochs():
    config = planned(phases=[(1e-2, 2), (1e-3, 1)], schedule="constant")
    plan = make_plan(config, fake_data(128 * 20 + 1), Speed(1280.0, 0.1, 1.0), setup_s=1.0)
    (lr1, s1), (lr2, s2) = plan.phases
    assert (lr1, lr2) == (1e-2, 1e-3) and s1 + s2 == plan.steps
    assert abs(s1 - 2 * s2) <= 2
    assert s1 in plan.valid_at  # each phase ends with a validation


def test_plan_of_sgdr_holds_whole_cycles():
    config = planned(schedule="sgdr", cycle_len=1, cycle_mult=2)
    plan = make_plan(config, fake_data(128 * 20 + 1), Speed(1280.0, 0.1, 1.0), setup_s=1.0)
    first = plan.cycle_steps[0]
    ends = cycle_ends(first, 2, plan.steps)
    assert ends[-1] == plan.steps and len(ends) >= 2 and first >= 20  # whole cycles, the first at least an epoch
    assert set(ends) <= set(plan.valid_at)


def test_cycles_and_spread():
    assert sgdr_cycles(140, 10, 2) == (20, 140)  # 20 + 40 + 80
    assert sgdr_cycles(5, 10, 2) == (5, 5)  # shorter than one cycle: one cycle of all of it
    assert sgdr_cycles(100, 10, 1) == (10, 100)
    assert spread(10, [2, 1]) == [7, 3] and sum(spread(7, [1, 1, 1])) == 7


def test_a_budget_too_short_is_refused():
    config = planned(budget=2.0)
    with pytest.raises(RnnlmError, match="too short.*give at least"):
        make_plan(config, fake_data(128 * 20 + 1), Speed(128.0, 0.5, 1.0), setup_s=1.9)


def test_a_budget_spent_before_the_probe_is_refused_at_once(tiny_file):
    config, data = load_data(resolve_config(tiny_config(str(tiny_file), budget=5.0)))
    clock = time.monotonic
    with pytest.raises(RnnlmError, match=r"reading the corpus and the first batches of the probe took 6\.\d s"):
        probe_speed(config, data, torch.device("cpu"), Distributed(), 1.0, clock, started=clock() - 6.0)
    assert probe_speed(config, data, torch.device("cpu"), Distributed(), 0.2, clock, started=clock()).tokens_per_s > 0


def fake_position():
    return SimpleNamespace(step=0, plan_step=0, row_step=0)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def paced(steps: int):
    """A plan of ``steps`` steps of 128 tokens in 100 s (0.1 s a step by its probe), its pacer on a
    fake clock, and where training stands."""
    plan = BudgetPlan(budget=100.0, steps=steps, phases=[(1e-2, steps)], valid_at=[steps], tokens_per_s=1280.0,
                      valid_s=1.0, setup_s=0.0)
    clock = FakeClock()
    return plan, clock, Pacer(plan, 0.0, 0.0, clock, step_tokens=128), fake_position()


def train_paced(plan, clock, pacer, learner, step_s) -> int:
    """Train ``plan`` to its end, a step taking ``step_s(now)`` seconds, the pacer asked every 10
    steps (its holds and skips made): the steps skipped."""
    skipped = 0
    while learner.plan_step < plan.steps:
        for _ in range(10):
            clock.now += step_s(clock.now)
            learner.step += 1
            if pacer.after_step():
                learner.plan_step += 1
        skip = min(pacer.pace(learner).skip, plan.steps - learner.plan_step)
        learner.plan_step += skip
        skipped += skip
    return skipped


def test_pacer_skips_ahead_when_the_machine_is_slower_than_the_probe():
    plan, clock, pacer, learner = paced(900)
    skipped = 0
    while learner.plan_step < plan.steps:  # every step takes 0.2 s, twice what the probe said
        clock.now += 0.2 * 10
        learner.step += 10
        learner.plan_step = min(plan.steps, learner.plan_step + 10)
        pace = pacer.pace(learner)
        assert pace.hold == 0
        skip = min(pace.skip, plan.steps - learner.plan_step)
        learner.plan_step += skip
        skipped += skip
    assert skipped > 300  # about half of the plan could not be trained in the time
    assert clock.now + 1.0 <= plan.budget + 2.5  # the end, and the last validation, come about when the time is up
    assert learner.step - (plan.steps - skipped) <= 10


@pytest.mark.parametrize("spell", [(10.0, 20.0), (30.0, 45.0), (30.0, 60.0), (60.0, 75.0)])
def test_a_spell_of_slowness_costs_the_schedule_about_what_it_cost_in_time(spell):
    """The machine runs 4x slower for a while (another program), then as the probe said: the
    schedule skips less than twice the steps that spell could not train, not what the rest of
    the run would have missed at its speed, and the run ends, annealed, in the last 15% of its
    time (skipping what the spell's speed projected over the time left ended it at 47 s to 82 s)."""
    plan, clock, pacer, learner = paced(900)  # the probe said 0.1 s a step
    skipped = train_paced(plan, clock, pacer, learner, lambda now: 0.4 if spell[0] <= now < spell[1] else 0.1)
    lost = 0.75 * (spell[1] - spell[0]) / 0.1  # the steps the spell's time would have trained at full speed
    assert 0.5 * lost <= skipped <= 2 * lost
    assert 0.85 * plan.budget <= clock.now + 1.0 <= plan.budget + 1.0  # and the last validation


def test_pacer_leaves_a_run_that_keeps_to_time_alone():
    plan, clock, pacer, learner = paced(970)
    for _ in range(90):
        clock.now += 0.1 * 10
        learner.step += 10
        learner.plan_step += 10
        assert pacer.pace(learner) == Pace()


def test_a_plan_that_ends_early_is_neither_stretched_nor_cut_while_its_budget_lasts():
    plan = BudgetPlan(budget=100.0, steps=900, phases=[(1e-2, 900)], valid_at=[900], tokens_per_s=1280.0,
                      valid_s=1.0, setup_s=0.0, asked=300.0)
    clock, learner = FakeClock(), fake_position()
    pacer = Pacer(plan, 0.0, 0.0, clock, step_tokens=128)
    for step_s in [0.07] * 45 + [0.2] * 45:  # faster than the probe said, then twice as slow: 135 s in all
        clock.now += step_s * 10
        learner.step += 10
        learner.plan_step += 10
        assert pacer.pace(learner) == Pace()  # every step of the plan trains, and none waits
    assert learner.plan_step == plan.steps and clock.now > plan.budget and pacer.left() > 0


def test_pacer_stretches_the_schedule_when_the_machine_is_faster_than_the_probe():
    plan, clock, pacer, learner = paced(900)
    hold, credit, held = 0.0, 0.0, 0
    while learner.plan_step < plan.steps:  # every step takes 0.07 s: the probe said 0.1
        for _ in range(10):
            clock.now += 0.07
            learner.step += 1
            credit += hold
            if credit >= 1:
                credit -= 1
                held += 1
            else:
                learner.plan_step += 1
        pace = pacer.pace(learner)
        assert pace.skip == 0 and 0 <= pace.hold <= 0.5
        hold = pace.hold
    assert held > 250  # the 900 steps of the plan were spread over about 1,300
    assert 0.9 * plan.budget <= clock.now + 1.0 <= plan.budget  # the end and the last validation: 90% of the time or more


def test_every_level_has_a_ladder_with_its_reference():
    for level in ("char", "word", "bpe"):
        assert REFERENCES[level] in LADDERS[level]  # the walk starts from the reference
        sizes = [(r.layers, r.hidden) for r in LADDERS[level]]
        assert sizes == sorted(sizes)  # from the fastest to the largest
    assert all(b1 < b2 and d1 <= d2 and w1 <= w2 for (b1, d1, w1), (b2, d2, w2) in zip(DROPOUTS, DROPOUTS[1:]))


@pytest.mark.parametrize("epochs, chosen, probed", [
    ([40.0, 14.0, 5.0], 2, [1, 2]),  # a small corpus or a fast machine: up to the largest that fits
    ([12.0, 4.0, 1.5], 1, [1, 2]),  # the next larger one does not train MIN_EPOCHS: the reference
    ([2.0, 0.7, 0.3], 0, [1]),  # the reference does not: the fastest, the larger ones never probed
])
def test_the_ladder_walk_takes_the_largest_model_that_trains_enough_epochs(epochs, chosen, probed):
    asked = []

    def epochs_of(k):
        asked.append(k)
        return epochs[k]

    assert walk_ladder(3, 1, epochs_of) == chosen and asked == probed
    assert epochs[chosen] >= MIN_EPOCHS or chosen == 0


@pytest.mark.parametrize("epochs, chosen, by_epochs", [
    ([40.0, 14.0, 5.0], 1, 2),  # the largest trains its epochs in too few steps: the reference
    ([40.0, 4.0, 1.9], 0, 1),  # the reference too: the fastest
])
def test_the_ladder_walk_wants_enough_steps_as_well(epochs, chosen, by_epochs):
    """An epoch of MIN_STEPS / 6 steps: 5 epochs are too few steps, 14 enough; an epoch ten
    times as long: the epochs alone decide."""
    per_epoch = MIN_STEPS / 6
    assert walk_ladder(3, 1, lambda k: epochs[k], lambda k: per_epoch) == chosen
    assert walk_ladder(3, 1, lambda k: epochs[k], lambda k: 10 * per_epoch) == by_epochs
    choice = Choice("char", "2 x 512", (("2 x 512", 14.0), ("2 x 768", 5.0)), few_steps=("2 x 768", 833))
    said = f"(measured: 2 x 512 14.0, 2 x 768 5.0); 2 x 768: 833 steps, fewer than {MIN_STEPS:,}"
    assert choice.reason().endswith(said)


@pytest.mark.parametrize("epochs, dropouts", [(0.3, (0.0, 0.0)), (1.5, (0.1, 0.0)), (2.5, (0.2, 0.0)),
                                              (4.0, (0.3, 0.0)), (8.0, (0.3, 0.3)), (MAX_EPOCHS, (0.3, 0.3)),
                                              (14.0, (0.4, 0.3)), (30.0, (0.5, 0.5))])
def test_more_epochs_of_the_same_text_more_dropout(epochs, dropouts):
    assert dropout_for(epochs) == dropouts
    assert dropout_for(epochs, params_per_token=40.0) == dropouts  # a model larger than its corpus: its epochs


def test_a_model_smaller_than_its_corpus_takes_the_dropout_of_fewer_epochs():
    """1 x 512 on 7 million characters (0.26 parameters a character) for 3.5 epochs: the dropout
    of 1.8 epochs (3.5 times the square root of 0.26); the same model on 700,000 characters:
    that of its 3.5."""
    assert dropout_for(3.5, 1_836_331 / 7_009_154) == dropout_for(1.8) == (0.1, 0.0)
    assert dropout_for(3.5, 1_836_331 / 700_000) == dropout_for(3.5) == (0.3, 0.0)
    assert dropout_for(8.0, 0.25) == dropout_for(4.0) == (0.3, 0.0)  # no weight dropout at 4 epochs' worth
    choice = Choice("char", "1 x 512", (("1 x 512", 3.6), ("2 x 512", 1.4)))
    assert choice.reason(3.5, 0.1, 0.0, False, 0.26).endswith(
        "dropout 0.1 for 3.5 epochs of 0.26 parameters a training token (as 1.78 for the dropout)")
    assert choice.reason(3.5, 0.3, 0.0, False, 3.0).endswith("dropout 0.3 for 3.5 epochs")


def test_recipe_takes_only_what_the_user_left_to_it():
    config = resolve_config(tiny_config("x", budget=60.0))
    chosen = set(RECIPE_FIELDS) - {"hidden", "bs"}
    result = apply_recipe(config, REFERENCE, chosen, train_tokens=10**6)
    assert result.model.hidden == config.model.hidden and result.train.bs == config.train.bs  # the user's
    assert (result.model.cell, result.model.layers, result.train.lr) == (REFERENCE.cell, REFERENCE.layers, REFERENCE.lr)


def test_recipe_batch_fits_a_small_corpus_and_the_processes():
    config = resolve_config(tiny_config("x", budget=60.0))
    small = apply_recipe(config, REFERENCE, set(RECIPE_FIELDS), train_tokens=4000)
    assert small.train.bs * small.train.bptt * RECIPE_BATCHES <= 4000  # at least RECIPE_BATCHES batches an epoch
    assert apply_recipe(config, REFERENCE, set(RECIPE_FIELDS), 4000, world_size=3).train.bs % 3 == 0


def test_dry_run_prints_the_plan_with_the_users_options_and_writes_nothing(tiny_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", str(tiny_file), "--budget", "20s", "--hidden", "24", "--layers", "1", "--bptt", "8",
                 "--device", "cpu", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "plan for --budget 20s" in out and "1 layer of 24" in out and "bptt 8" in out
    assert "yours     --layers 1 --hidden 24 --bptt 8" in out
    chosen = next(line for line in out.splitlines() if line.startswith("  chosen"))
    assert "cell" in chosen and "hidden" not in chosen and "layers" not in chosen and "bptt" not in chosen
    assert "tokens/s measured" in out and "epochs that fit" in out and "parameters" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]  # no runs/ folder


def test_an_option_typed_at_its_default_is_the_users(tiny_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", str(tiny_file), "--budget", "20s", "--layers", "2", "--dropout", "0.1", "--bs", "64",
                 "--device", "cpu", "--dry-run"])  # each at the default value of its option
    out = capsys.readouterr().out
    assert code == 0 and "yours     --layers 2 --dropout 0.1 --bs 64" in out
    chosen = next(line for line in out.splitlines() if line.startswith("  chosen")).split(":")[0].split()[1:]
    chosen = [name.rstrip(",") for name in chosen]
    assert "hidden" in chosen and not {"layers", "dropout", "weight_dropout", "bs"} & set(chosen)
    assert "2 layers of" in out and "dropout 0.1:" in out  # and no weight dropout: it goes with the dropout


def test_dry_run_at_bpe_level_plans_in_tokens(tiny_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", str(tiny_file), "--budget", "20s", "--level", "bpe", "--vocab-size", "300",
                 "--hidden", "24", "--layers", "1", "--device", "cpu", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert " training tokens (" in out  # a tiny text learns fewer merges
    assert "chosen    " in out and "epochs or more (measured: " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]


def test_plan_run_chooses_the_recipe_and_says_why(tiny_file):
    untouched = replace(tiny_config(str(tiny_file), budget=30.0), given=frozenset())  # the rules choose all
    config, data = plan_run(untouched, log=io.StringIO())
    n = len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    chosen = next(r for r in LADDERS["char"] if config.plan.recipe.startswith(f"{r.layers} x {r.hidden},"))
    assert config.plan.chosen == list(RECIPE_FIELDS) and "(measured: " in config.plan.recipe
    bound = MAX_PARAMS_PER_TOKEN * len(data.train_ids)
    too_large = [r for r in LADDERS["char"]
                 if parameter_count(len(data.vocab), replace(config.model, layers=r.layers, hidden=r.hidden)) > bound]
    assert chosen not in too_large or chosen == LADDERS["char"][0]  # the smallest is there whatever its size
    left_off = [r for r in too_large if r != LADDERS["char"][0]]
    if left_off:  # a tiny text: its largest models are left off, and the plan says so
        assert f"; {left_off[0].layers} x {left_off[0].hidden} and larger: more than " in config.plan.recipe
    assert (config.model.cell, config.model.layers, config.model.hidden, config.train.lr) == (
        chosen.cell, chosen.layers, chosen.hidden, chosen.lr)
    epochs = float(re.search(r" for ([0-9.]+) epochs", config.plan.recipe).group(1))
    assert epochs == pytest.approx(config.plan.steps / n, abs=0.051)  # the epochs the plan trains, to 0.1
    assert epochs <= MAX_EPOCHS and (config.plan.asked is not None) == ("it ends early" in config.plan.recipe)
    assert config.model.dropout == dropout_for(epochs)[0]
    assert config.model.weight_dropout in {weight for *_, weight in DROPOUTS}  # chosen before its probe
    if config.model.weight_dropout:
        assert f"and weight dropout {config.model.weight_dropout:g} for" in config.plan.recipe


@pytest.mark.parametrize("epochs_with_it, kept", [(4.0, False), (9.0, True)])
def test_weight_dropout_stays_only_where_the_epochs_it_leaves_call_for_it(tiny_file, monkeypatch, epochs_with_it,
                                                                         kept):
    """The first probe buys 8 epochs, which call for weight dropout; probed again with it, the
    model trains ``epochs_with_it``: too few to call for it (left off, the first speed holds), or
    enough (kept)."""
    import rnnlm.train.planning

    probed = []
    budget = 30.0

    def probe(config, data, dist, seconds, session):
        probed.append(config.model.weight_dropout)
        epochs = epochs_with_it if config.model.weight_dropout else 8.0
        return Speed(tokens_per_s=epochs * len(data.train_ids) / budget, valid_s=0.01, seconds=0.01)

    monkeypatch.setattr(rnnlm.train.planning, "probed_speed", probe)
    untouched = replace(tiny_config(str(tiny_file), budget=budget), given=frozenset())
    config, data = plan_run(untouched, log=io.StringIO())
    epochs = config.plan.steps / len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    assert probed[-1] > 0 and sum(1 for w in probed if w) == 1  # probed once more, with weight dropout
    assert (config.model.weight_dropout > 0) == kept == (dropout_for(epochs_with_it)[1] > 0)
    assert 6.0 <= epochs <= (epochs_with_it if kept else 8.0)  # the speed of the probe that holds
    assert config.model.dropout == dropout_for(epochs)[0]
    assert ("weight dropout" in config.plan.recipe) == kept


@pytest.mark.parametrize("characters, largest_epochs, chosen", [
    (60_000, SMALL_CORPUS_EPOCHS + 2.5, (1, 512)),  # the smallest, for the whole budget
    (60_000, SMALL_CORPUS_EPOCHS - 7.5, (2, 768)),  # the largest, for at most MAX_EPOCHS
    (30_000, SMALL_CORPUS_EPOCHS + 2.5, (2, 512)),  # the largest is too large for the corpus: no rule of its own
])
def test_a_corpus_the_largest_model_would_over_fit_trains_the_smallest_for_the_whole_budget(
        tmp_path, monkeypatch, characters, largest_epochs, chosen):
    """Probes that give the ladder's models 100, 60 and ``largest_epochs`` epochs: where the
    largest fits the corpus and trains SMALL_CORPUS_EPOCHS or more, the smallest trains every
    epoch the budget buys, with the dropout of them; else the largest that fits trains
    MAX_EPOCHS and the run ends early."""
    import rnnlm.train.planning

    text = tmp_path / "short.txt"
    text.write_text(TINY_TEXT * (characters // len(TINY_TEXT) + 1), encoding="utf-8")
    budget = 60.0
    epochs_of = {(1, 512): 100.0, (2, 512): 60.0, (2, 768): largest_epochs}

    def probe(config, data, dist, seconds, session):
        epochs = epochs_of[config.model.layers, config.model.hidden]
        return Speed(tokens_per_s=epochs * len(data.train_ids) / budget, valid_s=0.01, seconds=0.01)

    monkeypatch.setattr(rnnlm.train.planning, "probed_speed", probe)
    untouched = replace(tiny_config(str(text), budget=budget), given=frozenset())
    config, data = plan_run(untouched, log=io.StringIO())
    epochs = config.plan.steps / len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    assert (config.model.layers, config.model.hidden) == chosen
    if chosen == (1, 512):
        assert config.plan.asked is None and 90.0 <= epochs <= 100.0  # the whole budget
        assert (config.model.dropout, config.model.weight_dropout) == dropout_for(epochs) == (0.5, 0.5)
        assert config.plan.recipe.startswith(f"1 x 512, the smallest, for the whole budget: the largest that fits, "
                                             f"2 x 768, trains {largest_epochs:.1f} epochs")
    else:
        assert config.plan.asked is not None and epochs <= MAX_EPOCHS  # it ends early
        assert "it ends early" in config.plan.recipe and "the smallest" not in config.plan.recipe
        assert ("2 x 768 and larger: more than" in config.plan.recipe) == (chosen == (2, 512))


def test_the_smallest_for_a_small_corpus_says_why():
    measured = (("1 x 512", 160.7), ("2 x 512", 65.8), ("2 x 768", 29.7))
    choice = Choice("char", "1 x 512", measured, small_corpus=("2 x 768", 29.7))
    assert choice.whole_budget and not Choice("char", "2 x 768", measured[1:]).whole_budget
    assert choice.reason(137.1, 0.5, 0.5) == (
        f"1 x 512, the smallest, for the whole budget: the largest that fits, 2 x 768, trains 29.7 epochs, "
        f"{SMALL_CORPUS_EPOCHS:g} or more, of a corpus it over-fits past {MAX_EPOCHS:g} (measured: 1 x 512 160.7, "
        "2 x 512 65.8, 2 x 768 29.7); dropout 0.5 and weight dropout 0.5 for 137.1 epochs")


def test_a_model_smaller_than_its_corpus_is_planned_the_dropout_of_fewer_epochs(tmp_path, monkeypatch):
    import rnnlm.train.planning

    text = tmp_path / "longer.txt"
    text.write_text(TINY_TEXT * 4, encoding="utf-8")
    budget = 30.0
    monkeypatch.setattr(rnnlm.train.planning, "probed_speed", lambda config, data, dist, seconds, session: Speed(
        tokens_per_s=3.5 * len(data.train_ids) / budget, valid_s=0.01, seconds=0.01))
    sized = tiny_config(str(text), budget=budget)
    sized = replace(sized, model=replace(sized.model, hidden=4), given=frozenset({"layers", "hidden"}))
    config, data = plan_run(sized, log=io.StringIO())
    epochs = config.plan.steps / len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    per_token = parameter_count(len(data.vocab), config.model) / len(data.train_ids)
    assert config.model.hidden == 4 and per_token < 0.3 and 3.0 <= epochs <= 3.5
    assert config.model.dropout == dropout_for(epochs * per_token ** 0.5)[0] < dropout_for(epochs)[0]
    assert f"for {epochs:.1f} epochs of {per_token:.2f} parameters a training token" in config.plan.recipe


def test_a_model_the_user_sized_trains_every_epoch_its_budget_buys(tiny_file):
    sized = replace(tiny_config(str(tiny_file), budget=30.0), given=frozenset({"layers", "hidden"}))
    config, data = plan_run(sized, log=io.StringIO())
    n = len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    assert (config.model.layers, config.model.hidden) == (1, 48)  # the user's, not the ladder's
    assert config.plan.asked is None and config.plan.steps / n > MAX_EPOCHS  # no bound: the whole budget
    assert config.model.dropout == dropout_for(config.plan.steps / n)[0]  # the dropout still follows the epochs


class LrLog(Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_end(self, learner, loss):
        self.lrs.append(learner.lr)


def test_a_short_budget_ends_in_time_annealed(tiny_file, tmp_path):
    start = time.monotonic()
    rates = LrLog()
    trained = train(tiny_config(str(tiny_file), budget=5.0, lr=1e-2), tmp_path / "run", callbacks=[rates],
                    log=io.StringIO(), progress=False)
    folder, learner = trained.folder, trained.learner
    took = time.monotonic() - start
    plan = read_config(folder)[1].plan
    assert took <= 5.0 + 2.5, took
    # the schedule ran to its end; on a busy machine the hard deadline, which keeps the last
    # validation in time, may cut steps of its last 1% (never skipped, so never caught up)
    assert 0 <= plan.steps - learner.plan_step <= plan.steps // 100
    assert max(rates.lrs) > 0.3e-2 and rates.lrs[-1] < 1e-4  # up to the peak, then annealed
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] < 1e-4 and len(rows) == len(learner.history) >= 1
    assert rows[-1]["valid_loss"] < math.log(len(set(TINY_TEXT)))  # it learned something
    assert learner.pacer.spent() <= 5.0 + 2.0


class InterruptAt(Callback):
    """Ctrl-C once ``seconds`` of the budget are spent (or at optimiser step ``step``)."""

    def __init__(self, seconds=math.inf, step=None):
        self.seconds, self.step = seconds, step

    def on_batch_end(self, learner, loss):
        if learner.step == self.step or learner.pacer.spent() >= self.seconds:
            learner.interrupt()


def test_resume_carries_the_budget_left_over(tiny_file, tmp_path):
    config = tiny_config(str(tiny_file), budget=6.0)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "run", callbacks=[InterruptAt(3.0)], log=io.StringIO(), progress=False)
    _, info, _ = read_training_state(tmp_path / "run" / STATE)
    spent, plan = info["budget_spent"], read_config(tmp_path / "run")[1].plan
    assert 3.0 <= spent < 4.0 and 0 < info["step"] <= info["plan_step"] + info["held"] and info["plan_step"] < plan.steps
    time.sleep(0.5)  # time between sessions is not the run's
    start = time.monotonic()
    log = io.StringIO()
    resumed = resume(tmp_path / "run", log=log, progress=False)
    folder, learner = resumed.folder, resumed.learner
    second = time.monotonic() - start
    assert "of its budget 6s left" in log.getvalue()
    assert read_config(folder)[1].plan == plan  # the same plan, step for step
    assert learner.plan_step == plan.steps and learner.lr < 1e-4
    assert second <= 6.0 - spent + 1.5, (second, spent)  # the time left, not a new budget
    assert learner.pacer.spent() <= 6.0 + 1.5


def test_resume_of_a_budget_run_takes_no_max_minutes(tiny_file, tmp_path, capsys):
    config = tiny_config(str(tiny_file), budget=5.0)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "run", callbacks=[InterruptAt(step=5)], log=io.StringIO(), progress=False)
    err = one_error_line(["train", "--resume", str(tmp_path / "run"), "--max-minutes", "1"], capsys)
    assert "takes no --max-minutes" in err
    err = one_error_line(["train", "--resume", str(tmp_path / "run"), "--budget", "1m"], capsys)
    assert "drop --budget" in err


def test_plan_is_saved_and_read_back(tiny_file):
    config = resolve_config(tiny_config(str(tiny_file), budget=10.0))
    config, data = load_data(config)
    plan = make_plan(config, data, Speed(5000.0, 0.1, 0.5), setup_s=1.0)
    config = replace(config, plan=plan)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == replace(
        config, plan=replace(plan, phases=[list(p) for p in plan.phases]))


@pytest.mark.slow
def test_torchrun_processes_follow_one_plan(tiny_file, tmp_path):
    from test_distributed import torchrun

    done = torchrun("-m", "rnnlm", "train", str(tiny_file), "--budget", "15s", "--model", "gru", "--layers", "1",
                    "--emb", "16", "--hidden", "32", "--bs", "8", "--bptt", "16", "--device", "cpu",
                    "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("plan for --budget 15s") == 1  # rank 0 prints it, and the last line
    assert "--budget 15s: used" in done.stdout
    config = read_config(tmp_path / "run")[1]
    _, info, _ = read_training_state(tmp_path / "run" / STATE)
    assert info["world_size"] == 2 and info["plan_step"] == config.plan.steps  # both ranks ran it to its end
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] < 1e-4 and info["budget_spent"] <= 15.0 + 2.0


def test_sgdr_under_a_budget_ends_its_last_cycle_annealed(tiny_file, tmp_path):
    rates = LrLog()
    trained = train(tiny_config(str(tiny_file), budget=5.0, schedule="sgdr", cycle_len=1, cycle_mult=2),
                    tmp_path / "run", callbacks=[rates], log=io.StringIO(), progress=False)
    folder, learner = trained.folder, trained.learner
    plan = read_config(folder)[1].plan
    cycles = cycle_ends(plan.cycle_steps[0], 2, plan.steps)
    assert cycles[-1] == plan.steps and learner.plan_step == plan.steps
    assert rates.lrs[-1] < 1e-3 * 1e-2 + 1e-6  # the last step of the last cycle, at the bottom of its cosine
    saved = sorted(p.name for p in folder.glob("cycle_*.safetensors"))
    assert 1 <= len(saved) <= len(cycles)  # weights kept at the ends of the cycles trained to their end


def test_a_long_validation_split_is_validated_on_its_beginning():
    config = planned(budget=600.0)
    data = fake_data(128 * 1000 + 1, valid_tokens=2_000_000)
    plan = make_plan(config, data, Speed(tokens_per_s=12800.0, valid_s=200.0, seconds=1.0), setup_s=5.0)
    assert 50_000 <= plan.valid_tokens < 2_000_000
    assert plan.valid_s < 0.03 * 600  # a pass over the beginning takes about 2% of the budget
    whole = make_plan(config, fake_data(128 * 1000 + 1, valid_tokens=20_000), Speed(12800.0, 2.0, 1.0), 5.0)
    assert whole.valid_tokens is None  # a split that is quick to score is scored whole


@pytest.mark.parametrize("slow, fast", [(1.3, 0.8), (1.0, 0.85)])
def test_pacer_fills_the_budget_when_the_machine_speeds_up(slow, fast):
    plan, clock, pacer, learner = paced(900)  # the probe said 0.1 s a step
    # slower than the probe for the first half of the time, then faster
    skipped = train_paced(plan, clock, pacer, learner, lambda now: 0.1 * (slow if now < 0.5 * plan.budget else fast))
    end = clock.now + 1.0  # and the last validation
    assert 0.91 * plan.budget <= end <= plan.budget  # at most 9% of the time left unused, none overrun
    assert pacer.held > 0 and (skipped > 0) == (slow > 1)
