"""Layer 2, what is trained and how it steps: problem kinds (:mod:`.problems`, each building a
:class:`~harness.training.problems.Problem` from a seed), their data sets (:mod:`.data`) and the
update rules (:mod:`.optimizers`: frozen hyper-parameters with explicit ``init``/``step`` state,
as in optax). The measures (:mod:`harness.measures`) and predictions (:mod:`harness.predictions`)
belong to this layer too; they are subpackages of their own because each holds several modules.
"""

__all__: list[str] = []
