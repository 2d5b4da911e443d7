"""asv benchmarks of the curvature kernels: time, peak memory, and ratios to one gradient."""

import torch

from harness import gauss_newton_operator, hessian_operator, input_jacobians, lanczos, param_jvp, param_vjp

from .common import cuda_or_skip, reference_problem, seconds, sync

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


for _cls in (Kernels, Ratios):
    for _name in dir(_cls):
        if _name.startswith("track_"):
            getattr(_cls, _name).unit = "ratio" if "over" in _name or "gradients" in _name else "HVPs"
del _cls, _name
