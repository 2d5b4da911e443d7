"""What a result record says about where it was produced."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["environment", "device_name", "git_commit"]


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF = re.compile(r"refs/[A-Za-z0-9._/+@-]+")
_PER_WORKTREE = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")


def _checkout(start: Path) -> tuple[Path, Path] | None:
    """``(work tree, git dir)`` of the checkout holding folder ``start`` (a ``.git`` folder, or a
    ``.git`` file saying ``gitdir: PATH`` as in a linked worktree or a submodule), or None."""
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return folder, dot
        if dot.is_file():
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = Path(text[len("gitdir:"):].strip())
            return folder, gitdir if gitdir.is_absolute() else folder / gitdir
    return None


def _read_head(gitdir: Path) -> str | None:
    """The commit ``HEAD`` names, read from the files: ``HEAD``, then loose refs and
    ``packed-refs`` (in the common dir of a linked worktree). None: unborn branch, or refs this
    reader does not know (e.g. the reftable format)."""
    common = gitdir
    if (gitdir / "commondir").is_file():
        c = Path((gitdir / "commondir").read_text(encoding="utf-8").strip())
        common = c if c.is_absolute() else gitdir / c
    head = (gitdir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    for _ in range(8):  # a symbolic ref may point at another symbolic ref
        if _SHA.fullmatch(head):
            return head
        if not head.startswith("ref:"):
            return None
        name = head[len("ref:"):].strip()
        if not _REF.fullmatch(name) or ".." in name.split("/"):
            return None  # nothing outside refs/ is read
        loose = (gitdir if name.startswith(_PER_WORKTREE) else common) / name
        if loose.is_file():
            head = loose.read_text(encoding="utf-8", errors="replace").strip()
            continue
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
                sha, _, ref = line.partition(" ")
                if ref == name and _SHA.fullmatch(sha):
                    return sha
        return None
    return None


def _git(args: list[str], worktree: Path, config: list[str] = ()) -> subprocess.CompletedProcess:
    """Run git on a checkout that may be someone else's, with nothing of theirs executed: no
    fsmonitor hook, no hooks, no pager, no transport (a partial clone's lazy fetch), no
    optional locks (the index is never written), plus the ``config`` overrides given."""
    safe = ["core.fsmonitor=false", "core.useBuiltinFSMonitor=false", "core.untrackedCache=false",
            f"core.hooksPath={os.devnull}", "core.pager=cat", "protocol.allow=never", "status.renames=false",
            "status.submoduleSummary=false", *config]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # no GIT_DIR: git finds the checkout from cwd itself, so its safe.directory check (a folder
    # owned by another user is refused) still applies
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", LC_ALL="C")
    cmd = ["git", "--no-optional-locks"] + [a for kv in safe for a in ("-c", kv)] + args
    return subprocess.run(cmd, cwd=worktree, env=env, capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL)


def _dirty(worktree: Path) -> bool | None:
    """Whether a tracked file differs from ``HEAD`` (staged or not; untracked files and submodules
    are not looked at), by ``git status`` run through :func:`_git` with every filter driver of the
    checkout's config disabled (a ``clean`` filter is a command of theirs); a file whose clean
    filter rewrites it may then read as modified. None when git cannot tell (or is not installed)."""
    try:
        return _status(worktree)
    except (OSError, subprocess.SubprocessError):
        return None


def _status(worktree: Path) -> bool | None:
    names = _git(["config", "-z", "--name-only", "--get-regexp", r"^filter\."], worktree)
    if names.returncode not in (0, 1):  # 1: no filter driver; anything else: the drivers are unknown
        return None
    drivers = {n[len("filter."):n.rindex(".")] for n in names.stdout.split("\0") if n.count(".") >= 2}
    if any(c in d for d in drivers for c in "=\n\0"):
        return None  # a name -c cannot override
    off = [f"filter.{d}.{k}=" for d in sorted(drivers) for k in ("clean", "smudge", "process")] + \
          [f"filter.{d}.required=false" for d in sorted(drivers)]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--ignore-submodules=all", "--no-renames"],
                  worktree, off)
    return bool(status.stdout.strip()) if status.returncode == 0 else None


def git_commit(where: str | Path) -> dict[str, object] | None:
    """``{"commit": sha, "dirty": bool | None}`` of the git checkout holding ``where``, or None.

    The folder may be someone else's (a suite folder handed over): the commit is read from
    ``.git``'s files, running nothing, and dirtiness comes from a ``git status`` that runs none
    of the checkout's commands (fsmonitor, hooks, filters) and never writes its ``.git/index``
    (see :func:`_git`). ``dirty`` is None when it cannot be told (e.g. git refuses a folder
    owned by another user: ``safe.directory``)."""
    cwd = Path(where).resolve()
    cwd = cwd if cwd.is_dir() else cwd.parent
    if not cwd.exists():
        cwd = Path.cwd()
    try:
        found = _checkout(cwd)
        if found is None:
            return None
        worktree, gitdir = found
        sha = _read_head(gitdir)
        if sha is None:  # refs this reader does not know: ask git (rev-parse reads no index)
            out = _git(["rev-parse", "--verify", "-q", "HEAD"], worktree)
            sha = out.stdout.strip() if out.returncode == 0 and _SHA.fullmatch(out.stdout.strip()) else None
        if sha is None:
            return None
        return {"commit": sha, "dirty": _dirty(worktree)}
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, the processor's otherwise."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str, dtype: str, suite_file: str, suite_sha256: str) -> dict[str, object]:
    """Versions, device, precision settings, git commit and the suite file's hash."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": np.__version__,
        "device": device,
        "device_name": device_name(device),
        "dtype": dtype,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch_threads": torch.get_num_threads(),
        "git": git_commit(suite_file),
        "suite_file": suite_file,
        "suite_sha256": suite_sha256,
        "hostname": platform.node(),
        "pid": os.getpid(),
        "world_size": _world_size(),  # processes sharing the data (harness.run.distributed); 1: this one alone
    }


def _world_size() -> int:
    from .distributed import current_world

    world = current_world()
    return 1 if world is None else world.size
