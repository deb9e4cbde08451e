"""qsn.scheduler — task scheduling with spike-pattern features (not built yet)."""

__all__: list[str] = []
