"""asv benchmark of the data-parallel Hessian-vector product (harness.run.distributed): the time of
one HVP with the reference data split over K gloo processes (one torch thread each; the product
and its one all_reduce), over the time of the same HVP in one process with one thread, measured in
the same call. Below 1 means sharding pays; 1/K is the ideal (no reduction cost, perfect split)."""

import os
import socket
import time

import torch

from harness import hessian_operator
from harness.run.distributed import World, shard_problem
from harness.training.problems import Problem

from .common import reference_problem

REPEATS = 7


def _median_hvp_seconds(obj, theta, v, repeats: int = REPEATS, barrier=None) -> float:
    op = hessian_operator(obj, theta, "double_backward")
    op @ v  # warm-up
    times = []
    for _ in range(repeats):
        if barrier is not None:
            barrier()
        t0 = time.perf_counter()
        op @ v
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _rank(rank: int, size: int, port: int, model: str, queue) -> None:
    import torch.distributed as dist

    from harness.run import distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    distributed._WORLD = World(rank, size)  # noqa: SLF001 - what init_world sets, with our own rendezvous
    try:
        obj, theta, v = reference_problem(model, "cpu")
        shard = shard_problem(Problem(objective=obj, theta0=theta), World(rank, size)).objective
        seconds = _median_hvp_seconds(shard, theta, v, barrier=dist.barrier)
        if rank == 0:
            queue.put(seconds)
    finally:
        distributed._WORLD = None  # noqa: SLF001
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DataParallel:
    """``track_sharded_hvp_time_ratio``: sharded over 2 processes / one process, both one thread each."""

    params = (["mlp"],)  # the CNN's HVP splits the same way; one model keeps the benchmark (and CI's run of it) short
    param_names = ["model"]
    timeout = 300

    def setup(self, model):
        if (os.cpu_count() or 1) < 2:
            raise NotImplementedError("needs 2 CPU cores: one per process")

    def track_sharded_hvp_time_ratio(self, model):
        import torch.multiprocessing as mp

        torch.set_num_threads(1)
        obj, theta, v = reference_problem(model, "cpu")
        single = _median_hvp_seconds(obj, theta, v)
        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        port = _free_port()
        procs = [ctx.Process(target=_rank, args=(r, 2, port, model, queue)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError(f"a rank failed: exit codes {[p.exitcode for p in procs]}")
        return queue.get() / single

    track_sharded_hvp_time_ratio.unit = "ratio"

