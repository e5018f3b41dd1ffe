"""The production model: ``RecurrentLM`` over PyTorch's fused recurrent kernels, and its state."""

from rnnlm.models.recurrent import RecurrentLM, State, detach_state

__all__ = ["RecurrentLM", "State", "detach_state"]
