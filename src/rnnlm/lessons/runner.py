"""Running lessons: train each with its recipe, measure it, and put its number beside the seed's."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from rnnlm.atomic import write_bytes
from rnnlm.data.datasets import fetch
from rnnlm.device import resolve_device
from rnnlm.errors import RnnlmError, invalid
from rnnlm.lessons import demos
from rnnlm.lessons.datasets import LessonData, load_lesson_data
from rnnlm.lessons.fit import fit
from rnnlm.lessons.registry import Lesson
from rnnlm.lessons.report import Result, format_seed, machine_description, write_results
from rnnlm.lessons.sampling import get_next_n

DEFAULT_SEED = 1234


@dataclass
class LessonContext:
    """Settings shared by the lessons of one run."""

    nietzsche: Path | None = None  # the Nietzsche text; None: the built-in download
    scale: float = 1.0  # epochs times this, for the lessons whose recipes are long
    seed: int = DEFAULT_SEED
    device: str = "auto"
    out: Path | None = None  # where checkpoints go (one folder per lesson)
    log: TextIO | None = None
    progress: bool | None = None

    def check(self, lessons: list[Lesson]) -> None:
        """Refuse bad settings before anything runs; find (or download) Nietzsche if needed."""
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise invalid("scale", f"must be > 0 (got {self.scale})")
        resolve_device(self.device)
        if any(lesson.data.startswith("nietzsche") for lesson in lessons):
            self.nietzsche_path()

    def nietzsche_path(self) -> Path:
        if self.nietzsche is None:
            self.nietzsche = fetch("nietzsche")
        if not Path(self.nietzsche).is_file():
            raise invalid("nietzsche", f"{self.nietzsche}: no such file")
        return Path(self.nietzsche)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_lesson(lesson: Lesson, ctx: LessonContext) -> Result:
    out = ctx.log or sys.stdout
    start = time.monotonic()
    seed_everything(ctx.seed)
    scale = ctx.scale if lesson.scalable else 1.0
    recipe = lesson.recipe.scaled(scale) if scale != 1.0 else lesson.recipe
    source = ctx.nietzsche_path() if lesson.data.startswith("nietzsche") else None
    data = load_lesson_data(lesson.data, source, lesson.bs, lesson.seq, ctx.seed)
    model = lesson.model(data.vocab_size, **lesson.model_kwargs)
    device = resolve_device(ctx.device)
    print(f"data: {data.size}\nrecipe: {recipe.describe()}", file=out, flush=True)
    checkpoints: list[str] = []

    def save_cycle(k: int) -> None:
        if ctx.out is None:
            return
        folder = ctx.out / lesson.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cycle_{k}.safetensors"
        tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
        write_bytes(path, save_safetensors(tensors, metadata={"lesson": lesson.name, "cycle": str(k)}))
        checkpoints.append(str(path))

    log = fit(model, data.train, data.valid, recipe, device=device, on_cycle_end=save_cycle,
              log=out, progress=ctx.progress)
    last = log.rows[-1]
    sample = lesson_sample(lesson, model, data, ctx.seed, out) if lesson.sample_n else None
    return Result(lesson.name, lesson.metric, float(last[lesson.metric]), lesson.seed,
                  time.monotonic() - start, scale, recipe.describe(), data.size, log.rows,
                  log.first_loss, sample, checkpoints)


def lesson_sample(lesson: Lesson, model: torch.nn.Module, data: LessonData, seed: int, out: TextIO) -> str | None:
    """The prime and ``sample_n`` characters after it, sampled the lesson way."""
    try:
        prime = data.encode(lesson.prime)
    except RnnlmError as e:
        print(f"sample: skipped, the prime {lesson.prime!r} cannot be read ({e})", file=out)
        return None
    new = get_next_n(model, prime, lesson.sample_n, greedy=lesson.greedy, rng=random.Random(seed))
    sample = lesson.prime + data.decode(new)
    how = "greedy" if lesson.greedy else "multinomial"
    print(f"sample ({how}, sliding window of {len(prime)}): {sample!r}", file=out, flush=True)
    return sample


def run_demo(lesson: Lesson, ctx: LessonContext) -> Result:
    out = ctx.log or sys.stdout
    start = time.monotonic()
    if lesson.kind == "hihell":
        phase = lesson.recipe.phases[0]
        toy = demos.train_hihell(int(phase.epochs), phase.lr, seed=ctx.seed, log=out)
        rows = [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(toy.losses)]
        return Result(lesson.name, lesson.metric, toy.predicted, lesson.seed,
                      time.monotonic() - start, rows=rows, first_loss=toy.losses[0])
    if lesson.kind == "shapes":
        rows = demos.rnn_shapes(log=out)
        documented = [r for r in rows if r["seed_output"] is not None]
        same = sum(r["output"] == r["seed_output"] and r["hidden"] == r["seed_hidden"] for r in documented)
        return Result(lesson.name, lesson.metric, f"{same}/{len(documented)}", lesson.seed,
                      time.monotonic() - start, rows=rows)
    if lesson.kind == "cells":
        worst = demos.check_cells(seed=ctx.seed, log=out)
        rows = [{"cell": name, "max_abs_diff": diff} for name, diff in worst.items()]
        return Result(lesson.name, lesson.metric, f"{max(worst.values()):.1e}", lesson.seed,
                      time.monotonic() - start, rows=rows)
    raise ValueError(f"unknown lesson kind {lesson.kind!r}")


def run_lesson(lesson: Lesson, ctx: LessonContext) -> Result:
    out = ctx.log or sys.stdout
    print(f"\n== {lesson.name} (seed {lesson.seeds}): {lesson.teaches}", file=out, flush=True)
    result = train_lesson(lesson, ctx) if lesson.kind == "train" else run_demo(lesson, ctx)
    value = f"{result.value:.4f}" if isinstance(result.value, float) else result.value
    print(f"{lesson.name}: {lesson.metric} {value} (seed: {format_seed(lesson.seed)})", file=out, flush=True)
    return result


def run_lessons(lessons: list[Lesson], ctx: LessonContext) -> list[Result]:
    """Run each lesson in turn; with ``ctx.out`` set, results.json and results.md are written
    there after every lesson."""
    machine = machine_description(str(resolve_device(ctx.device)))
    results = []
    for lesson in lessons:
        results.append(run_lesson(lesson, ctx))
        if ctx.out is not None:
            write_results(ctx.out, results, machine)
    return results
