"""The lessons' results as a table, a markdown file and a JSON file."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from rnnlm import __version__
from rnnlm.atomic import write_json, write_text
from rnnlm.errors import SettingError, invalid, literal
from rnnlm.lessons.datasets import DESCRIPTIONS
from rnnlm.lessons.registry import LESSONS_LIST, SEED_DOCS, Lesson, SeedNumber

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
HEADER = ("name", "metric", "rnnlm", "seed", "time")


@dataclass
class Result:
    name: str
    metric: str
    value: float | str
    seed: SeedNumber
    seconds: float
    scale: float = 1.0  # 1: the full recipe
    recipe: str = ""
    data: str = ""
    rows: list[dict] = field(default_factory=list)
    first_loss: float | None = None
    sample: str | None = None
    checkpoints: list[str] = field(default_factory=list)

    def gap(self) -> float | None:
        """How far the result is from the seed's number (0 inside its range); None for words."""
        if not isinstance(self.value, float) or isinstance(self.seed, str):
            return None
        low, high = self.seed if isinstance(self.seed, tuple) else (self.seed, self.seed)
        return max(low - self.value, self.value - high, 0.0)


def format_seed(seed: SeedNumber) -> str:
    if isinstance(seed, tuple):
        return f"{seed[0]:.2f}-{seed[1]:.2f}"
    if isinstance(seed, float):
        return f"{seed:.2f}"
    return seed


def format_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes:d}:{secs:02d}"


def table_rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        value = f"{r.value:.4f}" if isinstance(r.value, float) else r.value
        metric = r.metric + (f" (x{r.scale:g} recipe)" if r.scale != 1.0 else "")
        rows.append((r.name, metric, value, format_seed(r.seed), format_time(r.seconds)))
    return rows


def format_table(results: list[Result]) -> str:
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(results: list[Result], machine: str) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    notes = [f"- {r.name}: {r.recipe} (data: {r.data})" for r in results if r.recipe]
    samples = [f"- {r.name}: `{r.sample!r}`" for r in results if r.sample]
    text = f"# rnnlm lessons\n\n{machine}\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n## Recipes run\n\n" + "\n".join(notes) + "\n"
    if samples:
        text += "\n## Samples (the lesson way: sliding window)\n\n" + "\n".join(samples) + "\n"
    return text


def machine_description(device: str) -> str:
    cores = os.cpu_count()
    threads = torch.get_num_threads()
    return (f"{platform.machine()} {platform.system()}, {cores} CPU cores, torch {torch.__version__} "
            f"({threads} thread{'s' if threads != 1 else ''}), device {device}")


def prepare_folder(path: Path | None = None) -> Path:
    """A folder for the results (default ``runs/lessons-<time>``); one holding results is refused."""
    path = path or Path("runs") / f"lessons-{time.strftime('%Y%m%d-%H%M%S')}"
    if path.exists() and not path.is_dir():
        raise invalid("out", f"{path}: is a file, not a folder")
    if (path / RESULTS_JSON).exists():
        raise SettingError("out", f"{{out}} {literal(path)}: already holds lesson results; choose another {{out}}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise invalid("out", f"{path}: cannot create folder ({e.strerror})") from None
    return path


def write_results(folder: Path, results: list[Result], machine: str) -> None:
    """Both files, rewritten after every lesson so an interrupted run keeps what it finished."""
    write_json(folder / RESULTS_JSON, {
        "rnnlm": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "results": [{**asdict(r), "gap": r.gap()} for r in results],
    })
    write_text(folder / RESULTS_MD, format_markdown(results, machine))


def format_list(lessons: list[Lesson] = LESSONS_LIST) -> str:
    """Every lesson: name, seed documents, what it teaches, data, recipe, the seed's number."""
    lines = ["seed documents (shared/seeds/):", *(f"  {k}  {v}" for k, v in SEED_DOCS.items()), ""]
    for lesson in lessons:
        data = DESCRIPTIONS.get(lesson.data, "-").format(bs=lesson.bs, seq=lesson.seq)
        note = f"  ({lesson.note})" if lesson.note else ""
        lines += [
            f"{lesson.name}  [seed {lesson.seeds}]",
            f"    teaches  {lesson.teaches}",
            f"    data     {data}",
            f"    recipe   {lesson.recipe.describe() if lesson.recipe else '-'}",
            f"    seed's   {lesson.metric} {format_seed(lesson.seed)}{note}",
        ]
    return "\n".join(lines)
