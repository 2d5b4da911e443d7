"""Layer 4, running and checking: a case is expanded and trained (:mod:`.runner`), its events
fired (:mod:`.events`), its measures compared with predictions (:mod:`.series`) and its
expectations judged (:mod:`.expectations`); cases run in worker processes (:mod:`.parallel`),
over extra seeds and planted errors (:mod:`.calibrate`), with the machine described
(:mod:`.environment`).
"""

__all__: list[str] = []
