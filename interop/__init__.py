"""qsn.interop — qsn networks and recordings in the formats other tools read.

* NIR graphs (the Neuromorphic Intermediate Representation shared by snnTorch, Norse, Spyx, Sinabs,
  Rockpool, Lava, Nengo and neuromorphic hardware): :func:`to_nir`, :func:`from_nir`;
* Neo blocks of spike trains and analog signals (Elephant, PyNN): :func:`to_neo`;
* NWB files (Units table, TimeSeries; DANDI and lab tooling): :func:`to_nwb`.

The libraries are optional (``pip install 'qsn[interop]'``) and imported only when a function needs
one; docs/interop.md states the conventions and shows each direction.

Example:
    >>> from qsn.interop import to_nir, from_nir
    >>> graph = to_nir(net)                  # a built network
    >>> twin = from_nir(graph)               # runs the same spikes
"""

from qsn.interop.description import describe
from qsn.interop.neo_block import to_neo
from qsn.interop.nir_graph import from_nir, to_nir
from qsn.interop.nwb_file import to_nwb

__all__ = ["to_nir", "from_nir", "to_neo", "to_nwb", "describe"]
