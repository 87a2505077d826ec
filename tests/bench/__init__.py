"""``make bench``: Spacedock against CNCF Distribution on the same workload, in one run.

PRODUCT.md §10 states the performance bars as ratios to Distribution (the Debian package
``docker-registry``), so both registries run side by side on the same machine and the same
bytes, one workload at a time and alternately. The clients are C programs (``curl``, ``wrk``,
``cat``) so that the figures measure the registries, not this Python process. Figures are
reported, never asserted: the run fails only when the bench itself cannot do its work.
"""
