import io
import math

import pytest
import torch

from rnnlm.errors import RnnlmError
from rnnlm.lessons.fit import endless, fit
from rnnlm.lessons.recipe import LessonRecipe, make_optimizer
from rnnlm.train.schedules import Phase
from rnnlm.lessons.registry import LESSONS
from rnnlm.lessons.models import CharSeqStatefulRnn


def lrs(phase, steps_per_epoch=10):
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(LessonRecipe((phase,)), model.parameters())
    steps = phase.steps(steps_per_epoch)
    scheduler = phase.scheduler(optimizer, steps_per_epoch)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_constant_phase_keeps_its_rate():
    assert set(lrs(Phase(2, 1e-3))) == {1e-3}


def test_one_cycle_warms_up_then_anneals():
    seen = lrs(Phase(10, 1e-2, "onecycle", pct_start=0.25))
    peak = seen.index(max(seen))
    assert math.isclose(max(seen), 1e-2, rel_tol=1e-3) and 20 <= peak <= 30
    assert math.isclose(seen[0], 1e-2 / 25, rel_tol=1e-3) and seen[-1] < 1e-5


def test_sgdr_restarts_after_1_2_4_8_epochs():
    seen = lrs(Phase(15, 1e-2, "sgdr", cycle_mult=2))
    assert len(seen) == 150
    restarts = [i for i in range(1, len(seen)) if seen[i] > seen[i - 1]]
    assert restarts == [10, 30, 70]  # and the fourth cycle ends with the phase


def test_scaled_recipe_shrinks_phases_and_cycles():
    recipe = LESSONS["CharSeqStatefulLSTM"].recipe.scaled(0.1)
    assert [p.epochs for p in recipe.phases] == [0.2, 1.5]
    assert recipe.phases[1].cycle_len == 0.1 and recipe.phases[1].steps(100) == 150
    assert "SGDR" in recipe.describe() and "cycle_mult 2" in recipe.describe()


def test_recipes_of_the_lessons():
    assert LESSONS["CharSeqStatefulGRU"].recipe.describe() == "adam: 6 epochs at 0.001, then 3 epochs at 0.0001"
    model5 = LESSONS["Model5"].recipe
    assert model5.optimizer == "adamw" and model5.wd == 0.01 and model5.phases[0].schedule == "onecycle"
    assert LESSONS["CharSeqStatefulLSTM-long"].recipe.epochs == 2 + 15 + 63


def test_endless_resets_the_state_at_every_pass():
    model = CharSeqStatefulRnn(10, 4, 8)
    batches = [(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))] * 2
    stream = endless(batches, model)
    next(stream)
    model.h = torch.ones(1, 2, 8)
    next(stream)
    assert model.h is not None  # within a pass the state stays
    next(stream)
    assert model.h is None  # a new pass starts from zeros


def test_fractional_phases_go_on_where_the_last_stopped():
    """Two half-epoch phases see the two halves of the data, not the first half twice."""
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))

        def forward(self, x):
            if self.training:
                seen.append(int(x[0, 0]))
            return self.w.expand(x.shape[0], 3)

    batches = [(torch.full((1, 1), k), torch.zeros(1, dtype=torch.long)) for k in range(6)]
    rows = fit(Recorder(), batches, batches[:1], LessonRecipe((Phase(0.5, 1e-3), Phase(0.5, 1e-4))),
               log=io.StringIO()).rows
    assert seen == [0, 1, 2, 3, 4, 5]
    assert [r["epoch"] for r in rows] == [0.5, 1.0] and [r["lr"] for r in rows] == [1e-3, 1e-4]


def test_fit_refuses_data_without_a_batch():
    with pytest.raises(RnnlmError, match="no batch"):
        fit(torch.nn.Linear(1, 1), [], [], LessonRecipe((Phase(1, 1e-3),)), log=io.StringIO())
