"""Distributed helpers: ``torchrun`` sets WORLD_SIZE/RANK/LOCAL_RANK; one process otherwise."""
from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist


def init_distributed() -> tuple[int, int, torch.device]:
    """Initialise DDP when launched by torchrun; returns (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def all_reduce_mean(value: float, device: torch.device) -> float:
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch_dist.all_reduce(t)
    return float(t.item()) / torch_dist.get_world_size()


def all_reduce_sum(value: float, device: torch.device) -> float:
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch_dist.all_reduce(t)
    return float(t.item())


def barrier() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
