"""What a result record says about where it was produced."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["environment", "device_name", "git_commit"]


def git_commit(where: str | Path) -> dict[str, object] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``where``, or None."""
    cwd = Path(where).resolve()
    cwd = cwd if cwd.is_dir() else cwd.parent
    if not cwd.exists():
        cwd = Path.cwd()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
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
    }
