# One image for registry, builder and reaper: docker-compose.yml picks the service with `command`.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt
COPY shared ./shared
COPY services ./services
COPY spacedock ./spacedock
# A regular (not editable) install: the runtime stage gets the venv and no source tree.
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 spacedock \
    && useradd --system --uid 10001 --gid spacedock --home-dir /var/lib/spacedock \
        --no-create-home --shell /usr/sbin/nologin spacedock \
    && install --directory --owner spacedock --group spacedock /var/lib/spacedock
COPY --from=build /opt/venv /opt/venv
# A container must listen beyond loopback; `serve` keeps its embedded data in a dir it owns.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPACEDOCK_LISTEN=0.0.0.0:5000 \
    SPACEDOCK_DATA_DIR=/var/lib/spacedock \
    SPACEDOCK_LOG_FORMAT=json
WORKDIR /var/lib/spacedock
USER spacedock:spacedock
EXPOSE 5000
# slim has no curl. The port follows SPACEDOCK_LISTEN; builder and reaper serve no HTTP, so
# docker-compose.yml disables this check for them.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SPACEDOCK_LISTEN', ':5000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=3)"]
ENTRYPOINT ["spacedock"]
CMD ["serve"]
