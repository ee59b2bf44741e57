"""The lab's Streamhouse metadata database, in pieces; ``lab.metadata_db`` is the entry point.

- ``profiles``: how each profile spells the tables (runbook vs upstream column names).
- ``admin``: roles, database creation and removal, connection URLs.
- ``snapshot``: the consistent copy of the ``World`` that a seed or a tick works from.
- ``seed``: rows rendered from the ``World``.
- ``leases``: SQL on ``partition_leases`` and ``agents``, with upstream's lease upsert.
- ``simulator``: one round of what live agents do with leases (renew, acquire, fight).
"""
