"""In-memory fakes of the ports, for unit tests of the domain without processes.

Each keeps the semantics its real adapter has where the domain relies on them; the storage
fake is held to them by ``tests/unit/test_storage_contract.py``, run on both."""
