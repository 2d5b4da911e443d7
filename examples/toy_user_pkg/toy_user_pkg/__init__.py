"""A stand-in for a user's own training code, tested by theory-harness without editing it:
a small CNN (:mod:`toy_user_pkg.models`), a data function (:mod:`toy_user_pkg.data`), an
optimiser (:mod:`toy_user_pkg.optim`) and, for the harness, the optimiser's stability edge as a
prediction (:mod:`toy_user_pkg.theory`, registered through the entry point
``theory_harness.plugins``)."""

__version__ = "0.1.0"
