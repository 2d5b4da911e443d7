"""Layer 5, records and reports: every JSON shape and atomic writing (:mod:`.records`), plain-text
tables (:mod:`.tables`), the HTML report and its figures (:mod:`.report`, :mod:`.figures`) and the
comparison of two runs (:mod:`.compare`).
"""

__all__: list[str] = []
