"""How much of a ``--budget`` the pacer fills on machines that do not keep the probe's speed.

A simulation, no training: a plan of 8,795 steps for 10 minutes (a Nietzsche run's), 6
validations of 3 s, a step's time the probe's times a profile of the machine over the budget
(and +-10% noise), the pacer (rnnlm.train.pacing) asked at every 20th step as training asks it.
Each profile runs with 5 noise seeds under the pacer's bounds of today and under others given
with --bounds; the table gives the end (the last validation included) as seconds of the 600.

    python benchmarks/pacing.py [--bounds 0.95,0.9,0.8 --bounds 0.975,0.95,0.85,1e9]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

import rnnlm.train.pacing as pacing  # noqa: E402
from rnnlm.config import BudgetPlan  # noqa: E402

BUDGET, STEPS, STEP_TOKENS, VALID_S = 600.0, 8795, 1024, 3.0
PROFILES = {  # a step's time against the probe's, by the share of the budget gone
    "steady, 15% faster": lambda f: 0.85,
    "steady, 10% slower": lambda f: 1.1,
    "faster, then 30% slower from 70%": lambda f: 0.8 if f < 0.7 else 1.3,
    "30% slower, then faster from 50%": lambda f: 1.3 if f < 0.5 else 0.8,
    "faster, then 50% slower from 90%": lambda f: 0.8 if f < 0.9 else 1.5,
    "faster, then 2x slower from 85%": lambda f: 0.8 if f < 0.85 else 2.0,
    "faster, then 3x slower from 95%": lambda f: 0.8 if f < 0.95 else 3.0,
    "4x slower from 20% to 25% (a 30 s spell)": lambda f: 4.0 if 0.2 <= f < 0.25 else 1.0,
    "4x slower from 30% to 40% (a minute)": lambda f: 4.0 if 0.3 <= f < 0.4 else 1.0,
    "2x slower from 50% to 60%": lambda f: 2.0 if 0.5 <= f < 0.6 else 1.0,
    "3x slower from 40% on": lambda f: 3.0 if f >= 0.4 else 1.0,
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(profile, seed: int) -> float:
    """Seconds until the last validation ends."""
    noise = random.Random(seed)
    probe_s = BUDGET * 0.95 / STEPS
    valid_at = [STEPS * k // 6 for k in range(1, 6)] + [STEPS]
    plan = BudgetPlan(budget=BUDGET, steps=STEPS, phases=[(3e-3, STEPS)], valid_at=valid_at,
                      tokens_per_s=STEP_TOKENS / probe_s, valid_s=VALID_S, setup_s=0.0)
    clock = Clock()
    pacer = pacing.Pacer(plan, 0.0, 0.0, clock, step_tokens=STEP_TOKENS)
    at = SimpleNamespace(step=0, plan_step=0, row_step=0)
    rows = iter(valid_at)
    next_row = next(rows)
    while at.plan_step < STEPS:
        for _ in range(20):
            clock.now += probe_s * profile(clock.now / BUDGET) * (1 + 0.1 * noise.uniform(-1, 1))
            at.step += 1
            at.plan_step += pacer.after_step()
            if at.plan_step >= next_row and at.plan_step < STEPS:
                clock.now += VALID_S
                pacer.validated(VALID_S)
                at.row_step, next_row = at.plan_step, next(rows)
            if at.plan_step >= STEPS:
                break
        at.plan_step = min(STEPS, at.plan_step + pacer.pace(at).skip)
    return clock.now + VALID_S


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bounds", action="append", default=[],
                   help="HOLD_AIM,HOLD_FROM,HOLD_UNTIL[,SKIP_GAIN] to compare with today's, e.g. 0.95,0.9,0.8 "
                        "(a SKIP_GAIN of 1e9 skips at once what does not fit, as the pacer did before 2026-12-07)")
    args = p.parse_args()
    today = (pacing.HOLD_AIM, pacing.HOLD_FROM, pacing.HOLD_UNTIL, pacing.SKIP_GAIN)
    bounds = [today] + [(*(float(x) for x in b.split(",")), today[3])[:4] for b in args.bounds]
    columns = []
    for aim, start, until, gain in bounds:
        pacing.HOLD_AIM, pacing.HOLD_FROM, pacing.HOLD_UNTIL, pacing.SKIP_GAIN = aim, start, until, gain
        columns.append([[simulate(profile, seed) for seed in range(5)] for profile in PROFILES.values()])
    headers = ["machine"] + [f"aim {a:g} from {s:g} until {u:g}, skip gain {g:g}" + (" (today)" if (a, s, u, g) == today
                                                                                  else "")
                             for a, s, u, g in bounds]
    rows = [[name] + [f"{min(col[i]):.1f} to {max(col[i]):.1f}" for col in columns] for i, name in enumerate(PROFILES)]
    print("# The pacer: seconds of a 600 s budget used (the end of the last validation), 5 noise seeds\n")
    print(table(headers, rows))


if __name__ == "__main__":
    main()
