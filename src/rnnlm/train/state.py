"""The training state of a learner: everything needed to go on exactly where training stands.

Weights, optimiser, scheduler, RNG states, the position (rnnlm.train.position), the carried
hidden state, the pacer's and the callbacks' own state: tensors plus plain JSON data.
``rnnlm.train.checkpoint`` writes it to disk and checks it before it is put back.

Under torchrun the state holds the hidden state of all the streams and the random number
generator state of every rank, so it is the same whichever rank asks for it, and a resume with
as many processes continues exactly.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from rnnlm.train.learner import Learner
from rnnlm.train.pacing import UNPACED
from rnnlm.train.position import Position
from rnnlm.train.schedules import Phase


def state_parts(state) -> tuple[torch.Tensor, ...]:
    """The tensors of a recurrent state: none before the first batch, (h,) or (h, c)."""
    if state is None:
        return ()
    return state if isinstance(state, tuple) else (state,)


def capture_state(learner: Learner) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything needed to continue exactly: CPU tensors by name, and JSON-able data."""
    learner.check_weights()
    dist = learner.dist
    tensors = {f"model.{k}": v for k, v in learner.model.state_dict().items()}
    optimizer = learner.optimizer.state_dict()
    for index, slots in optimizer["state"].items():
        tensors.update({f"optimizer.{index}.{name}": v for name, v in slots.items()})
    hidden = tuple(torch.cat(dist.gather(h), dim=1) for h in state_parts(learner.hidden))  # all streams
    tensors.update({f"hidden.{i}": h for i, h in enumerate(hidden)})
    tensors["loss_sum"] = learner.loss_sum
    tensors["rng.torch"] = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(cuda_rng)})
    tensors.update(other_ranks_rng(learner))
    numpy_state = np.random.get_state()
    info = {
        **learner.position.state(),
        "lr": learner.lr,
        **(learner.pacer.state() if learner.pacer is not None else UNPACED),
        "stop_reason": learner.stop_reason,
        "history": learner.history,
        "phase": learner.phase.state() if learner.phase else None,
        "scheduler": learner.scheduler.state_dict() if learner.scheduler else None,
        "optimizer_groups": optimizer["param_groups"],
        "hidden_parts": len(hidden),  # 0: none yet, 1: RNN/GRU, 2: LSTM (h, c)
        "world_size": dist.world_size,
        "rng": {
            "python": random.getstate(),
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "cuda_devices": len(cuda_rng),
        },
        "callbacks": {key: cb.state_dict() for key, cb in learner.callback_states().items()},
    }
    cpu = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    return cpu, info


def other_ranks_rng(learner: Learner) -> dict[str, torch.Tensor]:
    """Under torchrun, the generator states of ranks 1, 2, ... (each draws its own dropout
    masks; rank 0's are ``rng.torch`` and ``rng.cuda.*``)."""
    dist = learner.dist
    if not dist.active:
        return {}
    states = {"torch": torch.get_rng_state()}
    if learner.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(learner.device)
    return {f"rng.rank{rank}.{name}": state for name, mine in states.items()
            for rank, state in enumerate(dist.gather(mine)) if rank}


def restore_state(learner: Learner, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Put back what ``capture_state`` captured (the model and data must match)."""
    learner.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    learner.phase = Phase.from_state(info["phase"]) if info["phase"] else None
    learner.scheduler = learner.phase.scheduler(learner.optimizer, learner.batches_per_epoch) if learner.phase else None
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    learner.optimizer.load_state_dict({"state": slots, "param_groups": info["optimizer_groups"]})
    if learner.scheduler:
        learner.scheduler.load_state_dict(info["scheduler"])
    learner.position = Position.from_state(info)
    learner.lr = info["lr"]
    if learner.pacer is not None:
        learner.pacer.load_state(info)
    learner.stop_reason = info["stop_reason"]
    learner.history = list(info["history"])
    hidden = tuple(learner.dist.own_block(tensors[f"hidden.{i}"], dim=1).to(learner.device).contiguous()
                   for i in range(info["hidden_parts"]))
    learner.hidden = None if not hidden else hidden[0] if len(hidden) == 1 else hidden
    learner.loss_sum = tensors["loss_sum"].to(learner.device)
    learner.unchecked = []
    restore_rng(learner, tensors, info["rng"])
    for key, callback in learner.callback_states().items():
        callback.load_state_dict(info["callbacks"].get(key, {}))


def restore_rng(learner: Learner, tensors: dict[str, torch.Tensor], rng: dict[str, Any]) -> None:
    """The random number generators as they were: torch's (this rank's), CUDA's, Python's, numpy's."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda_rng = [tensors[f"rng.cuda.{i}"] for i in range(rng["cuda_devices"])]
    if cuda_rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_rng[: torch.cuda.device_count()])
    rank = learner.dist.rank
    if rank:
        torch.set_rng_state(tensors[f"rng.rank{rank}.torch"])
        if learner.device.type == "cuda":
            torch.cuda.set_rng_state(tensors[f"rng.rank{rank}.cuda"], learner.device)
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
