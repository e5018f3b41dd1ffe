"""PNG pictures of training: the loss curve of a run and the learning-rate finder's sweep.

matplotlib (the ``plot`` extra) is imported only here, with the Agg backend: no display needed.
Files are written atomically, like everything else in a run folder.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Sequence

from rnnlm.atomic import write_bytes
from rnnlm.errors import RnnlmError

TRAIN_COLOUR, VALID_COLOUR, LR_COLOUR, MARK_COLOUR = "#1f77b4", "#d62728", "#2ca02c", "#7f7f7f"


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RnnlmError("plots need matplotlib: pip install 'rnnlm[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None) -> bytes:
    """The figure as PNG, written to ``path`` (None: not written); its bytes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a title in a script the font lacks (a CJK file name) shows as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="png", dpi=110)
    if path is not None:
        write_bytes(path, buffer.getvalue())
    return buffer.getvalue()


def warm_up() -> None:
    """Draw a loss curve and throw it away: the first drawing of a process loads fonts and
    caches (benchmarks/README.md says how long), which a --budget run pays before its plan
    counts the time, not in its first validation."""
    plot_loss_curve(None, [(0, 2.0), (1, 1.0)], [(1, 1.0)], [(0, 1e-3), (1, 1e-3)], [1], "warm-up")


def _loss_limits(losses: Sequence[float]) -> tuple[float, float] | None:
    """A y range that shows where the loss settles, not only its first drop from ln(vocab)."""
    finite = sorted(v for v in losses if math.isfinite(v))
    if not finite:
        return None
    low, high = finite[0], finite[min(len(finite) - 1, int(0.95 * len(finite)))]
    pad = 0.05 * max(high - low, 1e-3)
    return low - pad, high + 4 * pad


def plot_loss_curve(
    path: str | Path | None,
    train: Sequence[tuple[int, float]],
    valid: Sequence[tuple[int, float]],
    lrs: Sequence[tuple[int, float]],
    epoch_ends: Sequence[int],
    title: str = "",
    labels: Sequence[str] | None = None,
) -> None:
    """Train and valid loss (nats/token) against tokens seen; the learning rate in a panel below.
    ``epoch_ends``: tokens seen at each validation, marked with ``labels`` (default 1, 2, ...:
    epochs)."""
    plt = _pyplot()
    from matplotlib.ticker import EngFormatter

    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 5.5), gridspec_kw={"height_ratios": [3, 1]}, layout="constrained"
    )
    if train:
        top.plot(*zip(*train), color=TRAIN_COLOUR, linewidth=1, alpha=0.8, label="train (batch mean)")
    if valid:
        top.plot(*zip(*valid), color=VALID_COLOUR, marker="o", markersize=4, linewidth=1.5,
                 label="valid (end of epoch)" if labels is None else "valid")
        best = min(valid, key=lambda p: p[1] if math.isfinite(p[1]) else math.inf)
        top.annotate(f"best {best[1]:.4f}", best, textcoords="offset points", xytext=(0, -14),
                     ha="center", fontsize=8, color=VALID_COLOUR)
    limits = _loss_limits([v for _, v in train[len(train) // 20:]] + [v for _, v in valid])
    if limits:
        top.set_ylim(*limits)
    for ax in (top, bottom):
        for tokens in epoch_ends:
            ax.axvline(tokens, color=MARK_COLOUR, linewidth=0.6, linestyle=":")
        ax.grid(True, alpha=0.3)
    step = max(1, len(epoch_ends) // 15)
    marks = top.secondary_xaxis("top")
    names = list(labels) if labels is not None else [str(i) for i in range(1, len(epoch_ends) + 1)]
    marks.set_xticks(list(epoch_ends)[step - 1::step], names[step - 1::step])
    marks.set_xlabel("epoch", fontsize=9)
    marks.tick_params(labelsize=8)
    top.set_ylabel("loss (nats/token)")
    top.legend(loc="upper right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    if lrs:
        bottom.plot(*zip(*lrs), color=LR_COLOUR, linewidth=1.2)
        bottom.set_ylim(bottom=0)
    bottom.set_xlim(left=0)
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("tokens seen")
    bottom.xaxis.set_major_formatter(EngFormatter())
    _save(fig, path)
    plt.close(fig)


def plot_lr_find(
    path: str | Path | None,
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    best_lr: float,
    suggested_lr: float,
    title: str = "",
) -> bytes:
    """Loss against learning rate (log scale): raw and smoothed, the minimum and the suggestion;
    written to ``path`` (None: not written), its PNG returned."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(lrs, losses, color=TRAIN_COLOUR, linewidth=0.8, alpha=0.5, label="loss")
    ax.plot(lrs, smoothed, color=TRAIN_COLOUR, linewidth=1.8, label="smoothed loss")
    ax.axvline(best_lr, color=MARK_COLOUR, linestyle="--", linewidth=1, label=f"minimum at {best_lr:.2g}")
    ax.axvline(suggested_lr, color=VALID_COLOUR, linewidth=1.5, label=f"suggested {suggested_lr:.2g}")
    ax.set_xscale("log")
    finite = [v for v in [*losses, *smoothed] if math.isfinite(v)]
    if finite:
        low, start = min(finite), max(losses[0], smoothed[0])
        span = max(start - low, 1e-3)
        ax.set_ylim(low - 0.05 * span, start + 0.3 * span)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(title or "learning-rate finder", fontsize=11)
    png = _save(fig, path)
    plt.close(fig)
    return png
