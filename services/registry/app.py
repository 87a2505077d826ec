"""The registry's composition root: ``create_app(settings)`` builds the aiohttp application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from services.registry import bootstrap, ui
from services.registry.accounts import Accounts
from services.registry.api import (
    base,
    blobs,
    health,
    listings,
    manifests,
    referrers,
    token,
    uploads,
)
from services.registry.builds import Builds
from services.registry.events import ImageEvents
from services.registry.feed import Feed
from services.registry.identity.access import AccessControl, AuthenticationRequired
from services.registry.identity.tokens import TokenSigner
from services.registry.keys import (
    access_key,
    accounts_key,
    builds_key,
    bus_key,
    feed_key,
    metadata_key,
    metrics_key,
    packages_key,
    principal_key,
    registry_key,
    relay_key,
    retention_key,
    settings_key,
    spaces_key,
    store_key,
    uploads_key,
)
from services.registry.management import docs as management_docs
from services.registry.management import routes as management_routes
from services.registry.management.sdi_check import ScanLimits, SdiScanner
from services.registry.metrics import Metrics
from services.registry.middleware import error_bodies
from services.registry.packages import Packages
from services.registry.registry import Registry
from services.registry.retention import Retention
from services.registry.spaces import Spaces
from services.registry.uploads import Uploads
from shared.events.bus import EventBus
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore
from shared.metrics import ProcessMetrics
from shared.runtime import ServiceRuntime
from shared.sealing import Sealer
from shared.settings import Settings
from shared.storage.port import BlobStore

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
admin_credentials_key = web.AppKey("admin_credentials", bootstrap.AdminCredentials)

# What the management API shows anyone (its own description, for programs and for people):
# the operations its table marks public.
PUBLIC_API_PATHS = frozenset(op.path for op in management_routes.OPERATIONS if op.public)

_NAME = r"{name:[^{}]+?}"
_DIGEST = r"{digest:[^/]+}"


def create_app(
    settings: Settings,
    *,
    metadata: MetadataStore | None = None,
    store: BlobStore | None = None,
    bus: EventBus | None = None,
    metrics: ProcessMetrics | None = None,
) -> web.Application:
    """The registry application; metadata, storage and the event bus are opened from
    ``settings`` unless given. ``settings.mongo_url`` must be set (the CLI starts the embedded
    server if needed); without ``settings.amqp_url`` events go to an in-process bus.
    ``/metrics`` shows ``metrics``, the process's, which other services of the process
    record into too (``spacedock serve``), or the registry's own."""
    app = web.Application(middlewares=[error_bodies, identify_caller])
    app[settings_key] = settings
    app[metrics_key] = Metrics(metrics or ProcessMetrics())
    app.cleanup_ctx.append(_resources(metadata, store, bus))
    app.on_response_prepare.append(_api_version_header)
    _add_routes(app)
    ui.setup(app)
    return app


def _resources(
    metadata: MetadataStore | None, store: BlobStore | None, bus: EventBus | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        # The port names the outbox claims: unique among live processes (one host cannot
        # bind a port twice), and the same after a restart, so a restarted instance resumes
        # its own claims at once.
        async with ServiceRuntime.open(
            "registry",
            settings,
            instance=settings.listen_port,
            blobs=True,
            metadata=metadata,
            store=store,
            bus=bus,
            metrics=app[metrics_key].process,
        ) as runtime:
            meta = app[metadata_key] = runtime.metadata
            app[store_key] = runtime.store
            app[bus_key] = runtime.bus
            await meta.check_transactions()
            credentials = await bootstrap.first_start(meta, settings)
            if credentials is not None:
                app[admin_credentials_key] = credentials
            app[relay_key] = runtime.relay
            events = ImageEvents(settings.public_url, settings.public_host, runtime.relay.notify)
            registry = app[registry_key] = Registry(
                meta, runtime.store, cache_ttl=settings.cache_ttl_seconds, events=events
            )
            uploads = app[uploads_key] = Uploads(meta, runtime.store)
            access = app[access_key] = AccessControl(
                meta.accounts,
                TokenSigner(await meta.accounts.signing_key()),
                public_url=settings.public_url,
                cache_ttl=settings.cache_ttl_seconds,
                token_ttl=settings.token_ttl_seconds,
            )
            # The scanner's children stop with the app.
            with contextlib.closing(SdiScanner()) as scanner:
                _add_models(app, settings, meta, registry, uploads, access, runtime.relay, scanner)
                runtime.start_relay()
                yield

    return resources


def _add_models(
    app: web.Application,
    settings: Settings,
    meta: MetadataStore,
    registry: Registry,
    uploads: Uploads,
    access: AccessControl,
    relay: OutboxRelay,
    scanner: SdiScanner,
) -> None:
    """The management API's models, on the app for its handlers."""
    api_source = f"{settings.public_url}/api/v1"
    app[spaces_key] = Spaces(meta, registry, access)
    app[accounts_key] = Accounts(meta, access)
    app[feed_key] = Feed(meta, registry.names)
    app[packages_key] = Packages(
        meta,
        registry,
        uploads,
        scanner=scanner,
        limits=ScanLimits(settings.build_max_files, settings.build_max_extract_bytes),
        public_host=settings.public_host,
    )
    sealer = Sealer(settings.sealing_key) if settings.sealing_key is not None else None
    app[builds_key] = Builds(meta, source=api_source, sealer=sealer, notify=relay.notify)
    app[retention_key] = Retention(
        meta,
        registry,
        source=api_source,
        public_host=settings.public_host,
        notify=relay.notify,
    )


@web.middleware
async def identify_caller(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Know the caller of every OCI and management request: credentials that are present
    must be valid, and absent ones make an anonymous caller, who may pull from spaces that
    allow it. The management API needs an account; its own description is public."""
    if request.path.startswith(("/v2", "/api/")) and request.path not in PUBLIC_API_PATHS:
        principal = await request.app[access_key].authenticate(request.headers.get("Authorization"))
        if request.path.startswith("/api/") and principal.username is None:
            raise AuthenticationRequired()
        request[principal_key] = principal
    return await handler(request)


async def _api_version_header(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v2"):
        response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]


def _add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/healthz", health.healthz)
    router.add_get("/readyz", health.readyz)
    router.add_get("/metrics", health.metrics)
    router.add_get("/auth/token", token.get_token)
    router.add_post("/auth/token", token.post_token)
    router.add_get("/v2/", base.version_check)
    router.add_get("/v2", base.version_check)
    router.add_get("/v2/_catalog", listings.catalog)
    router.add_get(f"/v2/{_NAME}/tags/list", listings.list_tags)
    router.add_get(f"/v2/{_NAME}/referrers/{_DIGEST}", referrers.list_referrers)
    manifest = f"/v2/{_NAME}/manifests/{{reference}}"
    router.add_get(manifest, manifests.get_manifest)
    router.add_put(manifest, manifests.put_manifest)
    router.add_delete(manifest, manifests.delete_manifest)
    for path in (f"/v2/{_NAME}/blobs/uploads/", f"/v2/{_NAME}/blobs/uploads"):
        router.add_post(path, uploads.start_upload)
    session = f"/v2/{_NAME}/blobs/uploads/{{upload_id}}"
    router.add_get(session, uploads.upload_status)
    router.add_patch(session, uploads.patch_upload)
    router.add_put(session, uploads.finish_upload)
    router.add_delete(session, uploads.cancel_upload)
    router.add_get(f"/v2/{_NAME}/blobs/{_DIGEST}", blobs.get_blob)
    router.add_delete(f"/v2/{_NAME}/blobs/{_DIGEST}", blobs.delete_blob)

    management_routes.add_routes(router)
    management_docs.install(app, management_routes.DOCUMENT)
