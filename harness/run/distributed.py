"""Data-parallel runs on ``torch.distributed``: one case over K processes, each with a shard of the data.

Launched by ``torchrun --nproc_per_node K -m harness run ...`` (or ``theory-harness run --nproc K``,
which starts exactly that). Every process builds the same problem from the case's seed, keeps the
contiguous shard ``[r n / K, (r + 1) n / K)`` of its examples (sizes differ by at most one) and
hands the objective a ``reduce`` that is one ``all_reduce(SUM)``: the loss, the gradient and each
Hessian or Gauss-Newton product are the local sums over ``n_c / n`` weighted chunks reduced once
(:mod:`harness.kernels.objective`), so every process holds the full-batch quantities of the
single-process run to round-off and takes the same steps. Lanczos, the update rules and the
predictions then run identically on every rank; rank 0 alone writes the records.

Backends: gloo on the CPU, NCCL on CUDA (each rank on GPU ``LOCAL_RANK``). A collective that fails
(a rank died) or does not finish within the run's timeout (a rank hangs) ends the process with
a message naming the rank; torchrun then stops the others.

What runs data-parallel: full-batch update rules, measures built from the objective's reduced
quantities, and the per-example input-output Jacobian measures (a mean: the shards' sums reduced;
a maximum: the shards' maxima reduced) and dense references (the shards' weighted matrices summed):
:data:`SHARDABLE_OPTIMIZERS`, :data:`SHARDABLE_MEASURES`. ``pairwise_lipschitz`` (pairs of examples
across shards), ``presample`` and minibatch rules are refused before anything runs, naming the
suite file and the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import HarnessError, SuiteError

__all__ = ["World", "DistributedFailure", "world_from_environment", "init_world", "leave_world", "current_world", "shard_bounds",
           "shard_problem", "check_shardable", "torchrun_command", "launch", "SHARDABLE_OPTIMIZERS", "SHARDABLE_MEASURES",
           "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 300.0

SHARDABLE_OPTIMIZERS = frozenset({"gd", "heavy_ball", "nesterov", "sam", "sam_unnormalized", "two_rate_gd", "torch_optim"})
SHARDABLE_MEASURES = frozenset({
    "loss", "loss_ratio", "grad_norm", "test_loss", "relative_change", "lambda_max", "stability_threshold",
    "adam_preconditioned_sharpness", "top_mode", "soft_rank", "effective_rank", "entropy_rank", "mode_progress",
    "relative_error", "effective_rank_gap", "estimation_error",
    # per-example sums and maxima over the shards (harness.measures.jacobian), the dense references summed
    "jacobian_norm", "forward_jacobian_norm", "jacobian_operator_norm", "chain_rule_error", "jacobian_trace_ratio",
    "dense_top_eigenvalue"})


class DistributedFailure(HarnessError):
    """A collective failed or timed out: the run cannot go on (never one case's failed claim)."""


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run: ``rank`` of ``size``, on node-local GPU ``local_rank``."""

    rank: int
    size: int
    local_rank: int = 0

    @property
    def writes(self) -> bool:
        """Whether this process writes records and prints the summary (rank 0 only)."""
        return self.rank == 0


def world_from_environment(environ: dict[str, str] | None = None) -> World | None:
    """The :class:`World` torchrun describes in ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK``; None
    outside torchrun or with one process."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank, local = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise HarnessError(f"torchrun's environment is malformed: {exc}") from None
    if size <= 1:
        return None
    if not 0 <= rank < size:
        raise HarnessError(f"RANK={rank} is outside WORLD_SIZE={size}")
    return World(rank, size, local)


_WORLD: World | None = None


def init_world(world: World, device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group (gloo on the CPU, NCCL on CUDA) with a timeout on every collective."""
    global _WORLD
    import torch.distributed as dist

    if not dist.is_available():
        raise HarnessError("this torch build has no torch.distributed")
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(world.local_rank)
    try:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                                timeout=dt.timedelta(seconds=timeout_s))
    except Exception as exc:  # noqa: BLE001 - a rendezvous that fails is one line, naming the rank
        raise DistributedFailure(f"rank {world.rank} of {world.size}: cannot join the process group ({backend}): "
                                 f"{type(exc).__name__}: {exc}") from None
    _WORLD = world


def leave_world() -> None:
    """Leave the process group joined by :func:`init_world` (at the end of the run)."""
    global _WORLD
    import torch.distributed as dist

    _WORLD = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current_world() -> World | None:
    """The data-parallel world this process joined (None: a single-process run)."""
    return _WORLD


def _all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    import torch.distributed as dist

    out = t.detach().clone().contiguous()
    try:
        dist.all_reduce(out, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    except Exception as exc:  # noqa: BLE001 - a dead or hung peer: the run ends here
        w = _WORLD
        where = f"rank {w.rank} of {w.size}" if w else "this rank"
        raise DistributedFailure(f"{where}: a collective failed (a peer died or did not answer within the run's "
                                 f"timeout): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return out


def _all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    return _all_reduce(t, "max")


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``rank`` of ``size`` over ``n`` examples: contiguous, sizes
    ``floor(n / size)`` or one more."""
    return rank * n // size, (rank + 1) * n // size


def shard_problem(problem: Any, world: World, file: str = "") -> Any:
    """``problem`` with its training objective cut to this rank's shard and reduced over the world
    (the held-out objective stays whole: every rank evaluates it, to the same value)."""
    obj = problem.objective
    if obj.n < world.size:
        raise SuiteError(file, "problem", f"{obj.n} training example(s) cannot be shared among {world.size} processes "
                                          "(each needs at least one)")
    if obj.sharded:
        raise HarnessError("the objective is already sharded")
    start, stop = shard_bounds(obj.n, world.rank, world.size)
    shard = dataclasses.replace(obj, inputs=obj.inputs[start:stop].clone(), targets=obj.targets[start:stop].clone(),
                                n_total=obj.n, reduce=_all_reduce, reduce_max=_all_reduce_max, offset=start)
    return dataclasses.replace(problem, objective=shard)


def check_shardable(suites: Sequence[Any]) -> None:
    """Refuse, naming the file and key, a suite that cannot run data-parallel."""
    for s in suites:
        for variant in (s, *s.variants):
            if variant.optimizer_kind not in SHARDABLE_OPTIMIZERS:
                raise SuiteError(s.file, "optimizer.kind",
                                 f"{variant.optimizer_kind!r} cannot run data-parallel (minibatches of the whole data "
                                 f"set); full-batch rules can: {sorted(SHARDABLE_OPTIMIZERS)}")
            for name, spec in variant.measures.items():
                kind = spec.kind
                if kind not in SHARDABLE_MEASURES:
                    why = ("compares every pair of examples, across the shards" if kind == "pairwise_lipschitz"
                           else "reads the training inputs in a way that does not reduce over shards")
                    raise SuiteError(s.file, f"measures.{name}",
                                     f"kind {kind!r} {why}, so it cannot run data-parallel; these can: "
                                     f"{sorted(SHARDABLE_MEASURES)}")
                if kind == "soft_rank" and getattr(spec.measure, "inputs", "test") == "train":
                    raise SuiteError(s.file, f"measures.{name}.inputs",
                                     "the soft rank of the training features is a spectrum over all the examples, "
                                     "not a sum over shards; inputs = 'test' (whole on every rank) runs data-parallel")
                if getattr(spec.measure, "presample", None):
                    raise SuiteError(s.file, f"measures.{name}.presample",
                                     "a random subset of the examples cannot be drawn data-parallel")


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The ``torchrun --standalone --nproc_per_node nproc -m harness ...`` command for ``argv``
    (the ``run`` arguments without ``--nproc``), with this Python: what ``--nproc`` amounts to."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "harness", *argv]


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(nproc: int, argv: Sequence[str], grace_s: float = 5.0) -> int:
    """``theory-harness run --nproc K``: start ``python -m harness <argv>`` as ranks 0..K-1 of one
    data-parallel run on this machine (torchrun's environment: ``MASTER_ADDR``, ``MASTER_PORT``,
    ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) and wait for them. Rank 0's exit code is the run's
    (0, 1 or 2, as for any run). When a rank ends otherwise (an error, exit >= 2, or a signal) while
    others still run, those are stopped (SIGTERM, SIGKILL ``grace_s`` later) and the run exits 2
    with a line naming the rank; a rank that hangs is ended by its peers' collective timeout."""
    import subprocess
    import time

    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
            "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc)}
    # the machine's cores shared among the ranks (torchrun does the same), unless the caller says
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    procs = [subprocess.Popen([sys.executable, "-m", "harness", *argv],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(nproc)]
    failed: tuple[int, int] | None = None
    running: list[int] = []  # the ranks still running when one failed: stopped here
    try:
        while any(p.poll() is None for p in procs):
            ended = [(r, p.poll()) for r, p in enumerate(procs)]
            bad = [(r, c) for r, c in ended if c is not None and c not in (0, 1)]
            if bad:  # a crash (a signal, an exit code of its own) before a peer's error (2) it caused
                failed = min(bad, key=lambda rc: (rc[1] == 2, rc[0]))
                running = [r for r, p in enumerate(procs) if p.poll() is None]
                break
            time.sleep(0.1)
    finally:  # Ctrl-C or a failed rank: no rank outlives the launcher
        _stop(procs, grace_s)
    codes = [p.returncode for p in procs]
    if failed is None:
        bad = [(r, c) for r, c in enumerate(codes) if c not in (0, 1)]
        failed = min(bad, key=lambda rc: (rc[1] == 2, rc[0])) if bad else None
    if failed is not None:
        r, code = failed
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        stopped = f"; still running, so stopped: rank(s) {', '.join(map(str, running))}" if running else ""
        print(f"theory-harness: error: data-parallel run over {nproc} processes: rank {r} {how} (its "
              f"message is above){stopped}; the records written are complete, the run is not", file=sys.stderr)
        return 2
    return codes[0]


def _stop(procs: Sequence[Any], grace_s: float) -> None:
    import time

    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - still running after the grace period
            p.kill()
            p.wait()
