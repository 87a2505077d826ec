"""Typed keys for what the registry keeps on its aiohttp application."""

from __future__ import annotations

from aiohttp import web

from services.registry.accounts import Accounts
from services.registry.builds import Builds
from services.registry.feed import Feed
from services.registry.identity.access import AccessControl, Principal
from services.registry.metrics import Metrics
from services.registry.packages import Packages
from services.registry.registry import Registry
from services.registry.retention import Retention
from services.registry.spaces import Spaces
from services.registry.uploads import Uploads
from shared.events.bus import EventBus
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore
from shared.settings import Settings
from shared.storage.port import BlobStore

settings_key = web.AppKey("settings", Settings)
metadata_key = web.AppKey("metadata", MetadataStore)
store_key = web.AppKey("store", BlobStore)
registry_key = web.AppKey("registry", Registry)
uploads_key = web.AppKey("uploads", Uploads)
access_key = web.AppKey("access", AccessControl)
metrics_key = web.AppKey("metrics", Metrics)
bus_key = web.AppKey("bus", EventBus)
relay_key = web.AppKey("relay", OutboxRelay)
# The management API's models, one per aggregate it administers.
spaces_key = web.AppKey("spaces", Spaces)
accounts_key = web.AppKey("accounts", Accounts)
feed_key = web.AppKey("feed", Feed)
packages_key = web.AppKey("packages", Packages)
builds_key = web.AppKey("builds", Builds)
retention_key = web.AppKey("retention", Retention)
principal_key = web.RequestKey("principal", Principal)
