"""Layer 3, the suite specification: what a suite file says, as frozen types
(:mod:`.types`), with the check kinds (:mod:`.checks`: one class per kind) and window
statistics (:mod:`.statistics`) it names; the TOML reader and all its validation
(:mod:`.reader`), and the sweep and template expansion that runs before it (:mod:`.expansion`).
The types carry no TOML and look nothing up in a registry.
"""

__all__: list[str] = []
