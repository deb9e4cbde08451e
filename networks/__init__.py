"""qsn.networks — groups, projections, synapses, inputs, plasticity, monitors (not built yet)."""

__all__: list[str] = []
