"""Checks: compare one measured number with its target and say by how much it passes.

Each check returns ``(passed, margin, tolerance_text)``. The margin is signed, positive when
the check passes, in the units of the measured statistic: the distance to the nearest edge
of the accepted region (a later comparison across commits reads it).
"""

from __future__ import annotations

import math

__all__ = ["CHECKS", "approx", "approx_tolerance", "interval", "le", "ge", "lt", "gt", "reaches"]


def approx_tolerance(target: float, rtol: float = 0.0, atol: float = 0.0) -> float:
    """The half-width of :func:`approx`'s accepted region, ``atol + rtol * |target|``."""
    return atol + rtol * abs(target)


def approx(x: float, target: float, rtol: float = 0.0, atol: float = 0.0) -> tuple[bool, float, str]:
    """``|x - target| <= atol + rtol * |target|``."""
    tol = approx_tolerance(target, rtol, atol)
    margin = tol - abs(x - target)
    return margin >= 0, margin, f"{target:.6g} ± {tol:.3g}"


def interval(x: float, lo: float, hi: float) -> tuple[bool, float, str]:
    """``lo <= x <= hi``."""
    margin = min(x - lo, hi - x)
    return margin >= 0, margin, f"[{lo:.6g}, {hi:.6g}]"


def le(x: float, bound: float) -> tuple[bool, float, str]:
    """``x <= bound``."""
    return x <= bound, bound - x, f"<= {bound:.6g}"


def ge(x: float, bound: float) -> tuple[bool, float, str]:
    """``x >= bound``."""
    return x >= bound, x - bound, f">= {bound:.6g}"


def lt(x: float, bound: float) -> tuple[bool, float, str]:
    """``x < bound`` (strict)."""
    return x < bound, bound - x, f"< {bound:.6g}"


def gt(x: float, bound: float) -> tuple[bool, float, str]:
    """``x > bound`` (strict)."""
    return x > bound, x - bound, f"> {bound:.6g}"


def reaches(steps_to_reach: float, within: int) -> tuple[bool, float, str]:
    """The series crossed its threshold after ``steps_to_reach`` steps (NaN: never), ``<= within``."""
    if math.isnan(steps_to_reach):
        return False, -math.inf, f"reached within {within} steps"
    return steps_to_reach <= within, within - steps_to_reach, f"reached within {within} steps"


CHECKS = {"approx": approx, "interval": interval, "le": le, "ge": ge, "lt": lt, "gt": gt, "reaches": reaches}
