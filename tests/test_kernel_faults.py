"""Planted faults that the theory suites alone cannot see, because the run absorbs them
consistently (the edge of stability is reached on whatever loss the kernels compute): the
curvature suite `curvature_kernels_dense.toml` must turn red under each, against its dense
references. Run on its cross-entropy case (seed 0, CPU), where the loss's output Hessian is
not the identity."""

import dataclasses
from pathlib import Path

import pytest

import harness.kernels.curvature as curvature
from harness import Objective, expand, load_suite, run_case
from harness.kernels.spectrum import lanczos

SUITE = Path(__file__).parent.parent / "suites" / "curvature_kernels_dense.toml"
_chunks = Objective.chunks


@pytest.fixture(scope="module")
def case():
    (c,) = [c for c in expand(load_suite(SUITE), ["cpu"]) if dict(c.point)["loss"] == "cross_entropy" and c.seed == 0]
    return c


def chunks_weighted_equally(monkeypatch):
    def chunks(self):
        parts = list(_chunks(self))
        for x, y, _ in parts:
            yield x, y, 1.0 / len(parts)
    monkeypatch.setattr(Objective, "chunks", chunks)


def last_chunk_dropped(monkeypatch):
    def chunks(self):
        parts = list(_chunks(self))
        yield from parts[:-1] if len(parts) > 1 else parts
    monkeypatch.setattr(Objective, "chunks", chunks)


def gauss_newton_without_the_loss_hessian(monkeypatch):
    real = curvature.gauss_newton_operator

    def faulty(obj, theta):  # J^T J: the output Hessian taken as the identity, as under MSE
        plain = lambda out, y: 0.5 * (out ** 2).sum() / out.shape[0]
        return real(Objective(obj.model, plain, obj.inputs, obj.targets, obj.chunk_size), theta)
    monkeypatch.setattr("harness.measures.curvature.gauss_newton_operator", faulty)


def second_ritz_value_reported(monkeypatch):
    def faulty(op, k=1, tol=1e-3, max_iter=100, v0=None, which="LA", seed=0):
        r = lanczos(op, k=k + 1, tol=tol, max_iter=max_iter, v0=v0, which=which, seed=seed)
        return dataclasses.replace(r, eigenvalues=r.eigenvalues[1:], eigenvectors=r.eigenvectors[:, 1:],
                                   residuals=r.residuals[1:])
    monkeypatch.setattr("harness.kernels.sharpness.lanczos", faulty)


def test_the_curvature_suite_passes_without_a_fault(case):
    result = run_case(case)
    assert result.passed, [v.message for v in result.verdicts if not v.passed]


@pytest.mark.parametrize("fault", [chunks_weighted_equally, last_chunk_dropped, gauss_newton_without_the_loss_hessian,
                                   second_ritz_value_reported], ids=lambda f: f.__name__)
def test_the_curvature_suite_catches(fault, case, monkeypatch):
    fault(monkeypatch)
    result = run_case(case)
    assert not result.passed
    assert any(not v.passed and v.name.endswith(("_is_the_top_eigenvalue", "_never_above_dense"))
               for v in result.verdicts)
