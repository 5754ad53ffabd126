"""Fan-out benchmark for ws4redis-tornado and its peers.

Run ``python -m bench fanout --help`` from the repository root; the method and the
measured figures are in ``bench/README.md``.
"""
