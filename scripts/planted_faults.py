"""Planted faults for ``scripts/fault-sweep``: a plugin (``--plugin planted_faults``) that patches
one fault, named by ``$THEORY_HARNESS_FAULT``, into the harness before a run, so that the suites
alone (no unit test) can be asked whether they turn red.

Each fault is a small, plausible mistake in one place -- an optimiser, a prediction, a kernel, a
measure, the user-code path -- of the kind issue 15's held-out check plants. ``FAULTS`` maps each
name to the suites that run the faulted code (the others cannot see it) and what it does.
With no fault named, importing this module changes nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os

import torch

GD = ["eos_gd_mse", "eos_negative_control_ce", "jacobian_ansatz", "jacobian_flatness_sweep", "jacobian_label_smoothing",
      "curvature_kernels_dense", "dmf_identity", "dmf_early_stopping", "dmf_random_init", "dmf_matrix_sensing", "stability_quadratic"]
SHARPNESS = ["adam_edge_mlp", "beyond_eos_sgd", "curvature_kernels_dense", "eos_gd_mse", "eos_negative_control_ce",
             "jacobian_ansatz", "jacobian_flatness_sweep", "jacobian_label_smoothing", "momentum_edge_mlp",
             "rmsprop_edge_mlp", "sam_edge_across_rho", "sam_edge_mlp", "sam_quadratic_orbit"]
RELU = ["relu_beyond_wide", "relu_both_layers", "relu_gray_zone", "relu_gray_zone_m5", "relu_provable_failure",
        "relu_wide_rate_resolution", "relu_wide_regime"]
SAM = ["sam_edge_across_rho", "sam_edge_mlp", "sam_quadratic_orbit"]
ADAPTIVE = ["adam_edge_mlp", "rmsprop_edge_mlp"]

#: fault -> (suites that run the faulted code, what the fault does)
FAULTS: dict[str, tuple[list[str], str]] = {
    "gd_lr_short_10pct": (GD, "GD steps with 0.9 lr"),
    "heavy_ball_beta_squared": (["momentum_edge_mlp", "stability_quadratic"], "heavy ball's buffer decays by beta^2"),
    "nesterov_lookahead_halved": (["momentum_edge_mlp", "stability_quadratic"], "Nesterov looks ahead by beta/2"),
    "sam_unnormalised_shift": (SAM, "SAM perturbs by rho g instead of rho g/||g||"),
    "sam_descent_shift": (SAM, "SAM perturbs by -rho g/||g|| (descent, not ascent)"),
    "two_rate_second_halved": (RELU, "two-rate GD's second-layer rate halved"),
    "torch_optim_lr_10pct": (ADAPTIVE, "torch.optim's lr 10 % high inside the torch_optim rule"),
    "pred_gd_edge_5pct_high": (["adam_edge_mlp", "curvature_kernels_dense", "eos_gd_mse", "eos_negative_control_ce",
                                "jacobian_ansatz", "jacobian_flatness_sweep", "momentum_edge_mlp", "sam_edge_across_rho",
                                "sam_edge_mlp"], "prediction gd_edge 5 % high (2.1/lr)"),
    "pred_sam_edge_gradnorm_10pct": (SAM + ["stability_sam_unnormalized_quadratic"],
                                     "prediction sam_edge with ||g|| 10 % high"),
    "pred_adam_edge_5pct_high": (ADAPTIVE, "prediction adam_edge 5 % high"),
    "pred_adam_edge_10pct_high": (ADAPTIVE, "prediction adam_edge 10 % high"),
    "pred_relu_slope_10pct": (["relu_both_layers", "relu_wide_rate_resolution", "relu_wide_regime"],
                              "prediction relu_loss_slope 10 % steep"),
    "pred_dmf_exact_lr_5pct": (["dmf_early_stopping", "dmf_identity"], "exact DMF recursion with lr 5 % high"),
    "hvp_scaled_1p03": (SHARPNESS, "every Hessian-vector product 3 % large"),
    "lanczos_tolerance_100x": (SHARPNESS, "Lanczos stops at 100x the residual asked for"),
    "chunks_equal_weight": (["curvature_kernels_dense"], "chunks weighted 1/n_chunks, not n_c/n"),
    "loss_ratio_base_step1": (["beyond_eos_plain_sgd_explodes", "beyond_eos_sgd"] + RELU,
                              "loss_ratio divides by L_1 instead of L_0"),
    "mode_progress_5pct": (["dmf_early_stopping", "dmf_identity"], "mode_progress 5 % high"),
    "effective_rank_squared": (["dmf_identity", "dmf_matrix_sensing", "dmf_random_init"],
                               "effective rank of sigma^2 instead of sigma"),
    "label_smoothing_ignored": (["jacobian_label_smoothing"], "cross-entropy without the label smoothing asked for"),
    "label_smoothing_halved": (["jacobian_label_smoothing"], "label smoothing eps/2 instead of eps"),
}


def _scaled_prediction(name: str, factor: float) -> None:
    from harness.predictions import PREDICTIONS

    old = PREDICTIONS._items[name]

    def wrapped(*args, **kwargs):
        return factor * old(*args, **kwargs)

    wrapped.__signature__ = inspect.signature(old)
    PREDICTIONS._items[name] = wrapped


def _prediction_with(name: str, argument: str, factor: float) -> None:
    from harness.predictions import PREDICTIONS

    old = PREDICTIONS._items[name]
    signature = inspect.signature(old)

    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments[argument] = factor * bound.arguments[argument]
        return old(*bound.args, **bound.kwargs)

    wrapped.__signature__ = signature
    PREDICTIONS._items[name] = wrapped


def plant(fault: str) -> None:
    """Patch ``fault`` into the imported harness (a :class:`KeyError` names an unknown one)."""
    if fault not in FAULTS:
        raise KeyError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
    import harness.kernels.curvature as curvature
    import harness.kernels.losses as losses
    import harness.kernels.objective as objective
    import harness.kernels.sharpness as sharpness
    import harness.kernels.spectrum as spectrum
    import harness.measures as measures
    import harness.measures.basic as basic
    import harness.measures.curvature as measure_curvature
    import harness.measures.matrix as matrix
    import harness.training.optimizers as O

    if fault == "gd_lr_short_10pct":
        def step(self, theta, state, value_and_grad):
            return theta - 0.9 * self.lr * value_and_grad(theta)[1], state
        O.GD.step = step
    elif fault == "heavy_ball_beta_squared":
        def step(self, theta, state, value_and_grad):
            buf = self.momentum ** 2 * state + value_and_grad(theta)[1]
            return theta - self.lr * buf, buf
        O.HeavyBall.step = step
    elif fault == "nesterov_lookahead_halved":
        def step(self, theta, state, value_and_grad):
            g = value_and_grad(theta)[1]
            buf = self.momentum * state + g
            return theta - self.lr * (g + 0.5 * self.momentum * buf), buf
        O.Nesterov.step = step
    elif fault in ("sam_unnormalised_shift", "sam_descent_shift"):
        def step(self, theta, state, value_and_grad):
            g = value_and_grad(theta)[1]
            if fault == "sam_unnormalised_shift":
                shift = self.rho * g
            else:
                shift = -g * (self.rho / g.norm()) if float(g.norm()) > 0 else torch.zeros_like(g)
            return theta - self.lr * value_and_grad(theta + shift)[1], state
        O.SAM.step = step
    elif fault == "two_rate_second_halved":
        rates = O.TwoRateGD.rates

        def halved(self, problem):
            first, second = rates(self, problem)
            return first, 0.5 * second
        O.TwoRateGD.rates = halved
    elif fault == "torch_optim_lr_10pct":
        init = O.TorchOptim.init

        def faulty_init(self, theta, problem=None):
            state = init(self, theta, problem)
            for group in state["optimizer"].param_groups:
                group["lr"] *= 1.1
            return state
        O.TorchOptim.init = faulty_init
    elif fault == "pred_gd_edge_5pct_high":
        _scaled_prediction("gd_edge", 1.05)
    elif fault == "pred_sam_edge_gradnorm_10pct":
        _prediction_with("sam_edge", "grad_norm", 1.1)
    elif fault in ("pred_adam_edge_5pct_high", "pred_adam_edge_10pct_high"):
        _scaled_prediction("adam_edge", 1.05 if "5pct" in fault else 1.10)
    elif fault == "pred_relu_slope_10pct":
        _scaled_prediction("relu_loss_slope", 1.1)
    elif fault == "pred_dmf_exact_lr_5pct":
        _prediction_with("dmf_hitting_time_exact", "lr", 1.05)
    elif fault == "hvp_scaled_1p03":
        build = curvature.hessian_operator

        def hessian_operator(obj, theta, strategy="double_backward_reused"):
            op = build(obj, theta, strategy)
            matvec = op._matvec
            op._matvec = lambda v: 1.03 * matvec(v)
            return op
        for module in (curvature, measures, measure_curvature):
            module.hessian_operator = hessian_operator
    elif fault == "lanczos_tolerance_100x":
        solve = spectrum.lanczos

        def lanczos(op, k=1, tol=1e-3, *args, **kwargs):
            return solve(op, k, tol * 100, *args, **kwargs)
        for module in (spectrum, sharpness, measure_curvature):
            module.lanczos = lanczos
    elif fault == "chunks_equal_weight":
        def chunks(self):
            n = self.n
            size = n if not self.chunk_size else min(self.chunk_size, n)
            count = math.ceil(n / size)
            for start in range(0, n, max(size, 1)):
                stop = min(start + size, n)
                yield self.inputs[start:stop], self.targets[start:stop], 1.0 / count
        objective.Objective.chunks = chunks
    elif fault == "loss_ratio_base_step1":
        def call(self, ctx, memory):
            loss = ctx.loss
            if not memory.get("seen"):
                memory["seen"] = True
                return basic.Measurement(1.0)
            memory.setdefault("l0", loss)
            return basic.Measurement(loss / memory["l0"] if memory["l0"] else math.nan)
        basic.LossRatio.__call__ = call
    elif fault == "mode_progress_5pct":
        measure = matrix.ModeProgress.__call__

        def call(self, ctx, memory):
            m = measure(self, ctx, memory)
            return dataclasses.replace(m, value=1.05 * m.value)
        matrix.ModeProgress.__call__ = call
    elif fault == "effective_rank_squared":
        rank = matrix.effective_rank
        matrix.effective_rank = lambda sv: rank(sv ** 2)
    elif fault in ("label_smoothing_ignored", "label_smoothing_halved"):
        share = 0.0 if fault == "label_smoothing_ignored" else 0.5

        def smoothed(self, outputs, targets):
            return torch.nn.functional.cross_entropy(outputs, targets, label_smoothing=share * self.eps)
        losses.smoothed_cross_entropy.__call__ = smoothed


if os.environ.get("THEORY_HARNESS_FAULT"):
    plant(os.environ["THEORY_HARNESS_FAULT"])
