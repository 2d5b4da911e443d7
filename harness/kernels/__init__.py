"""Layer 1, the kernels: numerical building blocks on a flat parameter vector, with no knowledge
of suites, runs or records. Each is a pure function or a small frozen type, tested against a
dense float64 reference.

* :mod:`.objective`: ``L(theta)`` over (chunked) data, its gradient; a module as a function of a flat vector.
* :mod:`.operators`: matrix-free linear operators.
* :mod:`.curvature`: Hessian-, Gauss-Newton- and Jacobian-vector products.
* :mod:`.spectrum`: Lanczos with residual control; :mod:`.sharpness`: lambda_max as one call.
* :mod:`.ansatz`: the Hessian-Jacobian identities (MacDonald, Valmadre & Lucey).
* :mod:`.homogeneous`: the layered homogeneous MLP and its Taylor/Gram quantities (Terjek).
* :mod:`.rank`: effective ranks; :mod:`.relu_kernels`: infinite-width ReLU kernels.
* :mod:`.factorization`: deep matrix factorisation's (noisy) target and exact mode recursion.
* :mod:`.losses`: the losses by name; :mod:`.cost`: counted FLOPs of a product.

Nothing here imports from the layers above.
"""

__all__: list[str] = []
