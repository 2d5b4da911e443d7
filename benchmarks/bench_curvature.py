"""asv benchmarks of the curvature kernels: time, peak memory, and ratios to one gradient."""

import time

import torch

from harness import (block_lanczos, count_flops, flops_in_gradients, gauss_newton_operator, hessian_operator, input_jacobians, lanczos,
                     param_jvp, param_vjp, top_eigenpairs)

from .common import cuda_or_skip, gd_trajectory, jacobian_peak_bytes, paired_ratio, reference_problem, seconds, sync

PARAMS = (["mlp", "cnn"], ["cpu", "cuda"])
NAMES = ["model", "device"]


class _Reference:
    """The reference model, data and direction for one (model, device); one CPU thread."""

    params = PARAMS
    param_names = NAMES

    def setup(self, model, device):
        cuda_or_skip(device)
        torch.set_num_threads(1)
        self.obj, self.theta, self.v = reference_problem(model, device)
        self.device = device


class Kernels(_Reference):
    timeout = 300
    # one round of at most 5 samples in at most 5 s: the kernels take 10 ms to 2 s each, and
    # asv's defaults (2 rounds, up to 10 samples / 20 s) make one commit's run take half an hour
    rounds = 1
    repeat = (1, 5, 5.0)

    def setup(self, model, device):
        super().setup(model, device)
        self.reused = hessian_operator(self.obj, self.theta, "double_backward_reused")
        self.u = torch.ones(self.obj.n, 10, device=device)

    def _run(self, fn):
        out = fn()
        sync(self.device)
        return out

    def time_gradient(self, model, device):
        self._run(lambda: self.obj.value_and_grad(self.theta))

    def time_hvp_double_backward_reused(self, model, device):
        self._run(lambda: self.reused @ self.v)

    def time_hvp_double_backward(self, model, device):
        self._run(lambda: hessian_operator(self.obj, self.theta, "double_backward") @ self.v)

    def time_hvp_forward_over_reverse(self, model, device):
        self._run(lambda: hessian_operator(self.obj, self.theta, "forward_over_reverse") @ self.v)

    def time_gauss_newton_product(self, model, device):
        self._run(lambda: gauss_newton_operator(self.obj, self.theta) @ self.v)

    def time_param_jvp(self, model, device):
        self._run(lambda: param_jvp(self.obj.model, self.theta, self.obj.inputs, self.v))

    def time_param_vjp(self, model, device):
        self._run(lambda: param_vjp(self.obj.model, self.theta, self.obj.inputs, self.u))

    def time_input_jacobians_backward(self, model, device):
        self._run(lambda: input_jacobians(self.obj.model, self.theta, self.obj.inputs[:128], "backward"))

    def time_input_jacobians_vmap(self, model, device):
        self._run(lambda: input_jacobians(self.obj.model, self.theta, self.obj.inputs[:128], "vmap", chunk_size=32))

    def time_lanczos_cold(self, model, device):
        self._run(lambda: lanczos(hessian_operator(self.obj, self.theta), tol=1e-3))

    def time_input_jacobians_vmap_chunk16(self, model, device):
        self._run(lambda: input_jacobians(self.obj.model, self.theta, self.obj.inputs[:128], "vmap", chunk_size=16))

    def time_lanczos_cold_presampled(self, model, device):
        self._run(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj, presample=0.125))

    def time_lambda_max_cold_default(self, model, device):
        self._run(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj))

    def time_block_lanczos_top4_cold(self, model, device):
        self._run(lambda: block_lanczos(hessian_operator(self.obj, self.theta), 4, tol=1e-3))

    def peakmem_gradient(self, model, device):
        self.obj.value_and_grad(self.theta)

    def peakmem_gauss_newton_product(self, model, device):
        gauss_newton_operator(self.obj, self.theta) @ self.v

    def peakmem_input_jacobians_backward(self, model, device):
        input_jacobians(self.obj.model, self.theta, self.obj.inputs[:128], "backward")

    def peakmem_lanczos_cold(self, model, device):
        lanczos(hessian_operator(self.obj, self.theta), tol=1e-3)

    def peakmem_hvp_double_backward_reused(self, model, device):
        hessian_operator(self.obj, self.theta, "double_backward_reused") @ self.v

    def peakmem_hvp_forward_over_reverse(self, model, device):
        hessian_operator(self.obj, self.theta, "forward_over_reverse") @ self.v

    def peakmem_input_jacobians_vmap(self, model, device):
        input_jacobians(self.obj.model, self.theta, self.obj.inputs[:128], "vmap", chunk_size=32)


class Ratios(_Reference):
    """Each kernel's time over one full-batch gradient's, measured in the same process."""

    timeout = 600

    def setup(self, model, device):
        super().setup(model, device)
        self.gradient = seconds(lambda: self.obj.value_and_grad(self.theta), device)

    def _ratio(self, fn):
        return seconds(fn, self.device) / self.gradient

    def track_hvp_reused_over_gradient(self, model, device):
        op = hessian_operator(self.obj, self.theta, "double_backward_reused")
        return self._ratio(lambda: op @ self.v)

    def track_hvp_forward_over_reverse_over_gradient(self, model, device):
        return self._ratio(lambda: hessian_operator(self.obj, self.theta, "forward_over_reverse") @ self.v)

    def track_lambda_max_cold_in_gradients(self, model, device):
        return self._ratio(lambda: lanczos(hessian_operator(self.obj, self.theta), tol=1e-3))

    def track_hvps_per_lambda_max_cold(self, model, device):
        return lanczos(hessian_operator(self.obj, self.theta), tol=1e-3).n_matvecs

    def track_hvps_per_lambda_max_warm(self, model, device):
        first = lanczos(hessian_operator(self.obj, self.theta), tol=1e-3)
        moved = self.theta - 1e-3 * self.obj.value_and_grad(self.theta)[1]
        return lanczos(hessian_operator(self.obj, moved), tol=1e-3, v0=first.eigenvectors[:, 0]).n_matvecs


    def track_lambda_max_cold_presampled_in_gradients(self, model, device):
        return self._ratio(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj, presample=0.125))

    def track_input_jacobians_vmap_chunk16_over_backward(self, model, device):
        x = self.obj.inputs[:128]
        backward = seconds(lambda: input_jacobians(self.obj.model, self.theta, x, "backward"), self.device)
        return seconds(lambda: input_jacobians(self.obj.model, self.theta, x, "vmap", chunk_size=16),
                       self.device) / backward

    def track_input_jacobians_vmap_chunk16_memory_over_backward(self, model, device):
        """Peak memory growth of the chunked vmap over the backward loop: peak allocation on
        CUDA, peak resident set of a fresh process on the CPU."""
        x = self.obj.inputs[:128]
        if self.device != "cuda":
            return jacobian_peak_bytes(model, "vmap", 16) / jacobian_peak_bytes(model, "backward")
        peaks = []
        for fn in (lambda: input_jacobians(self.obj.model, self.theta, x, "backward"),
                   lambda: input_jacobians(self.obj.model, self.theta, x, "vmap", chunk_size=16)):
            fn()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            peaks.append(torch.cuda.max_memory_allocated() - base)
        return peaks[1] / peaks[0]


class PairedRatios(_Reference):
    """The headline ratios of :class:`Ratios`, each the median of kernel/gradient ratios timed
    back to back (:func:`~benchmarks.common.paired_ratio`): steadier on a shared machine."""

    timeout = 900

    def _ratio(self, fn):
        return paired_ratio(fn, lambda: self.obj.value_and_grad(self.theta), self.device)

    def track_hvp_reused_over_gradient_paired(self, model, device):
        op = hessian_operator(self.obj, self.theta, "double_backward_reused")
        return self._ratio(lambda: op @ self.v)

    def track_lambda_max_cold_in_gradients_paired(self, model, device):
        return self._ratio(lambda: lanczos(hessian_operator(self.obj, self.theta), tol=1e-3))

    def track_lambda_max_cold_presampled_in_gradients_paired(self, model, device):
        return self._ratio(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj, presample=0.125))


class Flops:
    """Counted cost (:mod:`harness.kernels.cost`): FLOPs of the products and convolutions of a kernel
    over one full-batch gradient's. Exact and the same on every machine, so a kernel that starts
    doing more arithmetic moves these rows with no timing noise; timing ratios below these
    counts come from the gradient's elementwise work, which is not counted."""

    params = [["mlp", "cnn"]]
    param_names = ["model"]
    timeout = 600

    def setup(self, model):
        torch.set_num_threads(1)
        self.obj, self.theta, self.v = reference_problem(model, "cpu")

    def _in_gradients(self, fn):
        return flops_in_gradients(fn, self.obj, self.theta)[1]

    def track_hvp_reused_flops_over_gradient(self, model):
        op = hessian_operator(self.obj, self.theta, "double_backward_reused")
        return self._in_gradients(lambda: op @ self.v)

    def track_hvp_forward_over_reverse_flops_over_gradient(self, model):
        return self._in_gradients(lambda: hessian_operator(self.obj, self.theta, "forward_over_reverse") @ self.v)

    def track_gauss_newton_flops_over_gradient(self, model):
        return self._in_gradients(lambda: gauss_newton_operator(self.obj, self.theta) @ self.v)

    def track_lambda_max_cold_flops_in_gradients(self, model):
        return self._in_gradients(lambda: lanczos(hessian_operator(self.obj, self.theta), tol=1e-3))

    def track_lambda_max_cold_default_flops_in_gradients(self, model):
        """The default path, :func:`~harness.top_eigenpairs` with no options: presampled on
        1/16 of the 2000 examples, then the full operator to relative residual 1e-3."""
        return self._in_gradients(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj))

    def track_lambda_max_cold_presampled_flops_in_gradients(self, model):
        return self._in_gradients(lambda: top_eigenpairs(lambda o: hessian_operator(o, self.theta), self.obj,
                                                         presample=0.125))


class WarmStarts(_Reference):
    """lambda_max re-estimated along a GD trajectory (step 1/lambda_max(theta_0), 10 steps),
    every step, warm-started from the previous eigenvector(s); the inputs are the trajectory."""

    timeout = 900
    steps = 10

    def setup(self, model, device):
        super().setup(model, device)
        self.gradient = seconds(lambda: self.obj.value_and_grad(self.theta), device)
        first = lanczos(hessian_operator(self.obj, self.theta), tol=1e-3)
        self.path = gd_trajectory(self.obj, self.theta, 1.0 / first.top(), self.steps)
        self.v1 = first.eigenvectors

    def _walk(self, k: int):
        """Mean HVPs and mean extra cost in gradients per measurement (the graph is shared with
        the step's gradient, so the extra cost is the graph build over a plain gradient plus
        the Lanczos products)."""
        v, hvps, seconds_ = None, [], []
        for theta in self.path:
            t0 = time.perf_counter()
            res = top_eigenpairs(lambda o: hessian_operator(o, theta), self.obj, k=k, v0=v)
            sync(self.device)
            seconds_.append(time.perf_counter() - t0 - self.gradient)
            if v is not None:
                hvps.append(res.n_matvecs)
            v = res.eigenvectors
        return sum(hvps) / len(hvps), sum(seconds_[1:]) / len(hvps) / self.gradient

    def track_lambda_max_along_gd_flops_in_gradients(self, model, device):
        """Counted FLOPs per warm measurement beyond the step's own gradient, in gradients."""
        gradient = count_flops(lambda: self.obj.value_and_grad(self.theta))[1]
        v, extra = self.v1, []
        for theta in self.path[1:]:
            res, flops = count_flops(lambda: top_eigenpairs(lambda o: hessian_operator(o, theta), self.obj, v0=v))
            extra.append(flops / gradient - 1)
            v = res.eigenvectors
        return sum(extra) / len(extra)

    def track_hvps_per_lambda_max_along_gd(self, model, device):
        return self._walk(1)[0]

    def track_lambda_max_along_gd_in_gradients(self, model, device):
        return self._walk(1)[1]

    def track_hvps_per_top4_block_along_gd(self, model, device):
        return self._walk(4)[0]


for _cls in (Kernels, Ratios, PairedRatios, Flops, WarmStarts):
    for _name in dir(_cls):
        if _name.startswith("track_"):
            getattr(_cls, _name).unit = "ratio" if "over" in _name or "gradients" in _name else "HVPs"
del _cls, _name
