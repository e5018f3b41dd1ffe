"""Several processes under torchrun: the process group, and what the ranks decide together.

``torchrun --nproc_per_node=N -m rnnlm train ...`` starts N copies of rnnlm with WORLD_SIZE,
RANK and LOCAL_RANK in their environment. Each copy joins the job's process group (gloo on the
CPU, nccl on CUDA with one GPU per LOCAL_RANK), trains its own block of the ``bs`` streams, and
DistributedDataParallel averages the gradients, so a step is the step of one process on the
whole batch. Rank 0 alone prints and writes the run folder.

Every rank must make the same collective calls in the same order, or they wait on each other
for ever. So whatever changes the course of training (a stop, rank 0 failing to take the run
folder) is decided through a collective, and each rank acts on the shared answer.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import ContextManager, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from rnnlm.device import resolve_device
from rnnlm.errors import RnnlmError, SettingError
from rnnlm.launch import env_int, launched_world_size

T = TypeVar("T")


class PeerFailed(RnnlmError):
    """Rank 0 failed at a step only it takes; it says why, the other ranks stop quietly."""


def lost_a_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process of the job is gone
    (it failed or was killed, and said why itself, or torchrun did)."""
    text = str(error)
    return isinstance(error, dist.DistError) or (
        isinstance(error, RuntimeError) and ("gloo" in text or "NCCL" in text or "Connection reset" in text))


def check_batch_split(bs: int, world_size: int | None = None) -> None:
    """Each rank trains an equal block of the streams, so ``bs`` must split evenly over them."""
    world = launched_world_size() if world_size is None else world_size
    if bs % world:
        raise SettingError("bs", f"{{bs}} {bs} does not split evenly over {world} processes; use a multiple of {world}")


@dataclass(frozen=True)
class Distributed:
    """The processes of a job as one of them sees them; one process alone by default."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # for collectives' tensors

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model that trains: DistributedDataParallel around ``model`` when several processes
        share the work (it starts every rank from rank 0's weights), else ``model`` itself."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (a new tensor on this rank's device)."""
        if not self.active:
            return tensor
        total = tensor.to(self.device, copy=True)
        dist.all_reduce(total)
        return total

    def max(self, value: int) -> int:
        """The largest of the ranks' ``value``s."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def from_main(self, value: float) -> float:
        """Rank 0's ``value``, on every rank."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, 0)
        return float(tensor.item())

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (all of one shape and type), in rank order, on the CPU."""
        if not self.active:
            return [tensor.cpu()]
        local = tensor.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local)
        return [p.cpu() for p in parts]

    def own_block(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's block of ``tensor`` along ``dim``, which the ranks share in equal blocks."""
        return torch.tensor_split(tensor, self.world_size, dim=dim)[self.rank]

    @contextmanager
    def main_first(self, context: ContextManager[T]) -> Iterator[T]:
        """Enter ``context`` (on rank 0, a step it alone takes, such as taking the run folder; a
        no-op on the others) and tell every rank whether rank 0 managed: when it did not, rank 0
        raises its error and the others PeerFailed."""
        with ExitStack() as stack:
            try:
                value = stack.enter_context(context)
            except BaseException:
                self.max(1)
                raise
            if self.max(0):
                raise PeerFailed("rank 0 could not start")
            yield value


# Why training stops. Where the ranks under torchrun differ, the reason later in this list wins;
# one a callback gives that is not here outranks them all, and the other ranks know it as "requested".
STOP_REASONS = (None, "time", "interrupt", "patience")


def stop_rank(reason: str | None) -> int:
    return STOP_REASONS.index(reason) if reason in STOP_REASONS else len(STOP_REASONS)


def agree_stop(dist: Distributed, reason: str | None, interrupted: bool = False) -> str | None:
    """The reason every rank stops for: the latest in STOP_REASONS among the ranks' own (``reason``,
    or "interrupt" where a Ctrl-C came, ``interrupted``). All ranks call this at the same batches,
    so they all stop at the same one."""
    if interrupted and stop_rank(reason) < stop_rank("interrupt"):
        reason = "interrupt"
    agreed = dist.max(stop_rank(reason))
    if agreed == stop_rank(reason):
        return reason
    return STOP_REASONS[agreed] if agreed < len(STOP_REASONS) else "requested"


@contextmanager
def process_group(device: str = "auto") -> Iterator[Distributed]:
    """Under torchrun, join the job's process group and leave it at the end, errors included:
    gloo on the CPU, nccl on CUDA with the GPU of LOCAL_RANK. Without torchrun, one process.
    A process group made beforehand by the caller is used as it is and left standing."""
    target = resolve_device(device)
    world = launched_world_size()
    if world <= 1:
        yield Distributed(device=target)
        return
    if target.type == "cuda":
        local, count = env_int("LOCAL_RANK", 0), torch.cuda.device_count()
        if local >= count:
            raise SettingError("device", f"LOCAL_RANK {local}: this node has {count} CUDA device(s); start at most "
                                         f"{count} processes on it ({{nproc_per_node}}), or use {{device}} cpu")
        target = torch.device("cuda", local)
        torch.cuda.set_device(target)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo",
                                device_id=target if target.type == "cuda" else None)
    try:
        yield Distributed(dist.get_rank(), dist.get_world_size(), target)
    finally:
        if owner:
            dist.destroy_process_group()
