"""The streams a server steps together, their recurrent states in slots.

A serving worker keeps every active stream's state in one preallocated tensor per model
(layers x slots x H; for an LSTM one for h and one for c), as a KV cache does in vLLM and
llama.cpp, and the scores of each stream's next token in another (slots x V). A stream owns a
slot from the step it joins to the step it ends; the active streams fill the first slots, so a
step runs the model on one contiguous block in place: no per-stream concatenation or split. A
stream alone keeps its state itself and steps exactly as ``GenerationSession.complete`` steps it
(the batch-1 step and its draw, nothing more), so a lone client's text is the same token for
token and costs no more.
When streams end, the ones after them move down into their slots (one gather per buffer, only
on the steps where a stream left). The buffers grow (doubling) when more streams join than fit.
A step runs on the active slots rounded up to a multiple of ``ROUND_SLOTS`` (the free slots'
rows are computed and thrown away): oneDNN keeps a primitive, with its memory, for every batch
size it sees, and a server whose batch changed size at every step grew without end.

A batch draws every row in one call, each with its own stream's uniform number
(``rnnlm.generation.sampling``), so a stream's text depends on its seed alone. When every row
draws by temperature alone, the draw and the model's step are one call on the buffers
themselves (the C kernel, ``rnnlm.generation.native_slot_step``, or TorchScript,
``rnnlm.generation.slot_step``): the worker gives the GIL up once a step. The C kernel may
write several tokens a stream in that call (``step(steps)``), a lone stream's as ``complete``
writes them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from rnnlm.generation.slot_step import SlotStep
from rnnlm.generation.stream import Piece, Stream
from rnnlm.models.recurrent import State, cat_states

FIRST_SLOTS = 8
ROUND_SLOTS = 8  # a step runs on the active slots rounded up to a multiple of this


class StreamSlots:
    """``join`` streams, ``step`` them all (one ``Piece`` each, in slot order), and the ended
    ones leave at the end of the step. ``streams[i]`` owns slot i."""

    def __init__(self, session):
        self.session = session
        self.streams: list[Stream] = []
        self.state: list[torch.Tensor] = []  # [h] or [h, c], (layers, slots, H) each
        self.logits: torch.Tensor | None = None  # (slots, V)
        self.kernel: SlotStep | None = None  # the step of a block drawn by temperature, on these buffers

    def __len__(self) -> int:
        return len(self.streams)

    @property
    def capacity(self) -> int:
        return 0 if self.logits is None else self.logits.shape[0]

    @torch.inference_mode()
    def join(self, streams: Sequence[Stream]) -> None:
        """Give each unfinished stream of ``streams`` the next free slot; its state and scores
        are copied there (it may share them with its siblings) and the stream lets go of them.
        A stream alone keeps its own state (see ``step``) until another joins it."""
        joining = [s for s in streams if not s.finished]
        if not joining:
            return
        if not self.streams and len(joining) == 1:
            self.streams = joining
            return
        if len(self.streams) == 1:  # the lone stream moves into slot 0
            joining = [self.streams.pop(), *joining]
        n, end = len(self.streams), len(self.streams) + len(joining)
        if end > self.capacity:
            self.grow(end, joining[0])
        state = cat_states([s.state for s in joining])
        for buffer, part in zip(self.state, state if isinstance(state, tuple) else (state,)):
            buffer[:, n:end].copy_(part)
        self.logits[n:end].copy_(torch.stack([s.logits for s in joining]))
        for stream in joining:
            stream.drop_state()
        self.streams.extend(joining)

    def grow(self, needed: int, example: Stream) -> None:
        size = max(needed, 2 * self.capacity, FIRST_SLOTS)
        parts = example.state if isinstance(example.state, tuple) else (example.state,)
        n = len(self.streams)
        grown = []
        for i, part in enumerate(parts):
            buffer = part.new_zeros(part.shape[0], size, part.shape[2])  # (layers, slots, H)
            if n:
                buffer[:, :n].copy_(self.state[i][:, :n])
            grown.append(buffer)
        logits = example.logits.new_zeros(size, example.logits.shape[-1])  # (slots, V)
        if n:
            logits[:n].copy_(self.logits[:n])
        self.state, self.logits = grown, logits
        if self.kernel is not None:
            self.kernel.state, self.kernel.logits = self.state, self.logits

    def block_state(self, rows: int) -> State:
        """The first ``rows`` slots' state: views of the buffers, (layers, rows, H)."""
        views = [buffer[:, :rows] for buffer in self.state]
        return tuple(views) if len(views) == 2 else views[0]

    @torch.inference_mode()
    def step(self, steps: int = 1) -> list[Piece]:
        """One token for every stream (``GenerationSession.step``'s rules), or up to ``steps``
        where the C kernel writes them in one call (``GenerationSession.run_tokens`` for a
        stream alone, ``step_slots`` for the slots), each stream's pieces in order; then the
        ended streams leave their slots."""
        if not self.streams:
            return []
        if len(self.streams) == 1:  # it holds its own state: exactly ``complete``'s steps
            (stream,) = self.streams
            if steps > 1 and self.session.runs_alone(stream):
                pieces = list(self.session.run_tokens(stream, steps))
            else:
                pieces = [self.session.step_one(stream)]
        else:  # on a block of a few sizes only: oneDNN keeps a primitive (and memory) for every shape it sees
            rows = min(-(-len(self.streams) // ROUND_SLOTS) * ROUND_SLOTS, self.capacity)
            if self.kernel is None:
                self.kernel = self.session.slot_kernel(self.state, self.logits)
            pieces = self.session.step_slots(self.streams, self.logits[:rows], self.block_state(rows), self.kernel,
                                             steps)
        self.leave()
        return pieces

    @torch.inference_mode()
    def remove(self, streams: Sequence[Stream]) -> None:
        """``streams`` end now (cancelled) and leave their slots."""
        for stream in streams:
            stream.cancel()
        self.leave()

    @torch.inference_mode()
    def leave(self) -> None:
        """The ended streams leave; the ones after them move down into the freed slots."""
        keep = [i for i, s in enumerate(self.streams) if not s.finished]
        if len(keep) == len(self.streams):
            return
        if len(self.streams) > 1 and len(keep) == 1:  # the one left takes its state out of the slots
            (i,) = keep
            parts = [buffer[:, i : i + 1].clone() for buffer in self.state]
            self.streams[i].state = tuple(parts) if len(parts) == 2 else parts[0]
            self.streams[i].logits = self.logits[i].clone()
            self.streams = [self.streams[i]]
            return
        if keep and keep[-1] != len(keep) - 1:  # the survivors are not already the first slots
            index = torch.tensor(keep, device=self.logits.device)
            for buffer in self.state:
                buffer[:, : len(keep)] = buffer.index_select(1, index)
            self.logits[: len(keep)] = self.logits.index_select(0, index)
        self.streams = [self.streams[i] for i in keep]
