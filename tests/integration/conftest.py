from tests.support.fixtures import client, registry, repo

__all__ = ["client", "registry", "repo"]
