"""Stream batching, the heart of the stateful model ("64 roughly equal sized segments").

The id array is cut into ``bs`` contiguous streams; batch ``k`` holds the ``k``-th ``bptt``-long
slice of every stream, so row ``i`` of one batch continues row ``i`` of the previous batch and
the hidden state can be carried across. Targets are the inputs shifted by one token. Every
token is an input exactly once and a target exactly once, except the tail shorter than ``bs``
(and the first token, never a target, and the last, never an input).
"""

from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import torch


class StreamBatches:
    """Iterable of ``(x, y)`` int64 tensors of shape ``(bs, seq)`` with ``seq <= bptt``.

    ``ids`` may be any 1-d integer array, a memory map included: batches read slices of it.
    """

    def __init__(self, ids: np.ndarray, bs: int, bptt: int):
        if bs < 1 or bptt < 1:
            raise ValueError("bs and bptt must be positive")
        self.bs, self.bptt = bs, bptt
        self.stream_len = (len(ids) - 1) // bs if len(ids) > 1 else 0
        used = self.stream_len * bs
        self.inputs = ids[:used].reshape(bs, self.stream_len)
        self.targets = ids[1 : used + 1].reshape(bs, self.stream_len)

    def __len__(self) -> int:
        return -(-self.stream_len // self.bptt) if self.bs else 0

    def shard(self, rank: int, world_size: int) -> "StreamBatches":
        """The streams of process ``rank`` when ``world_size`` processes share them: a contiguous
        block, ``bs * rank // world_size`` up to the next rank's first (views, no copy). Blocks
        differ by one stream at most when ``bs`` does not split evenly; a block may be empty (no
        batches) when there are fewer streams than processes."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        start, stop = self.bs * rank // world_size, self.bs * (rank + 1) // world_size
        part = copy.copy(self)
        part.bs, part.inputs, part.targets = stop - start, self.inputs[start:stop], self.targets[start:stop]
        return part

    @property
    def tokens(self) -> int:
        """Number of (input, target) pairs in one pass."""
        return self.stream_len * self.bs

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = k * self.bptt
        stop = min(start + self.bptt, self.stream_len)
        x = np.ascontiguousarray(self.inputs[:, start:stop], dtype=np.int64)
        y = np.ascontiguousarray(self.targets[:, start:stop], dtype=np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for k in range(len(self)):
            yield self.batch(k)
