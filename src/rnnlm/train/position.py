"""Where training stands: the counters the fit loop moves, saved with the resumable state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Position:
    """Where training stands. A round is the training between two validations: an epoch, or in
    a planned run (``--budget``) the steps up to the next validation of its plan."""

    epoch: int = 0  # epochs completed so far, across phases
    batch: int = 0  # batches done in the epoch under way
    step: int = 0  # optimiser steps so far
    tokens_seen: int = 0  # all processes together
    plan_step: int = 0  # steps of the schedule done: optimiser steps, less those held, plus those skipped
    row_step: int = 0  # plan_step at the latest row of history
    round_batches: int = 0  # batches of the round under way
    round_seconds: float = 0.0  # time spent on the round under way before a resume

    def text(self) -> str:
        """In words: epoch counts completed epochs, batch those of the next."""
        return position_text(self.epoch, self.batch)

    def state(self) -> dict[str, Any]:
        """The counters as the training state keeps them (the round's seconds as ``epoch_seconds``)."""
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step, "tokens_seen": self.tokens_seen,
                "epoch_seconds": self.round_seconds, "plan_step": self.plan_step, "row_step": self.row_step,
                "round_batches": self.round_batches}

    @classmethod
    def from_state(cls, info: dict[str, Any]) -> "Position":
        """The position ``info`` holds; states of rnnlm before ``--budget`` lack the plan's counters."""
        return cls(info["epoch"], info["batch"], info["step"], info["tokens_seen"],
                   plan_step=info.get("plan_step", info["step"]), row_step=info.get("row_step", 0),
                   round_batches=info.get("round_batches", info["batch"]), round_seconds=info["epoch_seconds"])


def position_text(epoch: int, batch: int) -> str:
    """Where training stands, in words: ``epoch`` completed epochs and ``batch`` batches of the next."""
    return f"after epoch {epoch}" if batch == 0 else f"at epoch {epoch + 1}, batch {batch}"
