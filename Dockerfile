# syntax=docker/dockerfile:1
#
# The StreamSpace control plane image: all four services (watcher, reconciler, idle-reaper,
# metrics) in ONE image, each started by name:
#
#   docker run ghcr.io/streamspace/streamspace:0.1.0 reconciler
#
# Why one image with a per-service entrypoint rather than one image per service: the services
# share one wire contract (packages/shared: CRD schemas, NATS subjects and message schemas) and
# are released in lockstep, so one image guarantees they always run the same version; they also
# share every production dependency (the Kubernetes and NATS clients, pino, prom-client, zod), so
# per-service images would each carry the same ~95% of bytes — one image is one build, one scan,
# one pull per node and one tag to pin in the Helm chart. Build it with `pnpm images`.
#
# Checked without Docker by scripts/check-dockerfile (test/unit/dockerfile.test.ts): every COPY
# source exists, the entrypoint's files are produced by `tsc -b`, base images are pinned and the
# final USER is not root. Built and run for real (all four services, with the chart's settings)
# by test/integration/image.test.ts.

# Pinned to an exact Node.js release and to the digest of its multi-platform index, so a re-pushed
# tag cannot change what we build on. To move to a new release, take the digest from the registry
# and change both together (docs/deploy.md, "Container image"):
#   docker buildx imagetools inspect node:<version>-bookworm-slim --format '{{json .Manifest.Digest}}'
#   (or: skopeo inspect --raw docker://node:<version>-bookworm-slim | sha256sum)
# scripts/images builds on a local stand-in where this cannot be pulled, passing NODE_IMAGE.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

# ---- build: install every dependency, compile TypeScript, then keep only production dependencies
FROM ${NODE_IMAGE} AS build
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0 CI=true
# Build-time only, unset by default (they never reach the runtime stage): scripts/images sets them
# where the npm registry is reached through a TLS-intercepting proxy (its CA bundle, mounted into
# the build) or serves packages without npm's signatures (corepack then cannot verify pnpm).
ARG NODE_EXTRA_CA_CERTS
ARG COREPACK_INTEGRITY_KEYS
# pnpm at the version package.json pins (packageManager), through Node's corepack.
RUN corepack enable
WORKDIR /src
# Manifests first, so the dependency layer is rebuilt only when they change.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.json tsconfig.base.json ./
# Our patches of dependencies (pnpm-workspace.yaml, patchedDependencies): the install applies them.
COPY patches patches/
COPY packages/shared/package.json packages/shared/tsconfig.json packages/shared/
COPY packages/kube/package.json packages/kube/tsconfig.json packages/kube/
COPY services/watcher/package.json services/watcher/tsconfig.json services/watcher/
COPY services/reconciler/package.json services/reconciler/tsconfig.json services/reconciler/
COPY services/idle-reaper/package.json services/idle-reaper/tsconfig.json services/idle-reaper/
COPY services/metrics/package.json services/metrics/tsconfig.json services/metrics/
COPY services/activity-agent/package.json services/activity-agent/tsconfig.json services/activity-agent/
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store \
    pnpm install --frozen-lockfile --ignore-scripts
COPY packages/shared/src packages/shared/src
COPY packages/kube/src packages/kube/src
COPY services/watcher/src services/watcher/src
COPY services/reconciler/src services/reconciler/src
COPY services/idle-reaper/src services/idle-reaper/src
COPY services/metrics/src services/metrics/src
COPY services/activity-agent/src services/activity-agent/src
RUN pnpm exec tsc -b
# Drop the dev dependencies (TypeScript, vitest, biome, ...) and assemble what runs in /out:
# manifests, compiled output and the production node_modules of each workspace package. A fresh
# install of the production dependencies alone (from the store the first install filled):
# `pnpm install --prod` over the full install leaves the dev packages in node_modules/.pnpm.
# sbom.cdx.json is the CycloneDX SBOM of exactly those dependencies (names, versions, licenses,
# integrity hashes).
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store \
    rm -rf node_modules packages/*/node_modules services/*/node_modules \
 && pnpm install --frozen-lockfile --prod --offline --ignore-scripts \
 && mkdir /out \
 && pnpm sbom --sbom-format cyclonedx --sbom-type application --prod -r >/out/sbom.cdx.json \
 && cp -a --parents package.json node_modules /out/ \
 && for p in packages/shared packages/kube services/watcher services/reconciler services/idle-reaper services/metrics services/activity-agent; do \
      cp -a --parents "$p/package.json" "$p/dist" /out/; \
      if [ -d "$p/node_modules" ]; then cp -a --parents "$p/node_modules" /out/; fi; \
    done \
 && find /out -path '*/dist/*' \( -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.test.js' -o -name '*.test.js.map' \) -delete
COPY deploy/docker/entrypoint.mjs /out/entrypoint.mjs

# ---- runtime: Node.js and the assembled app, nothing else; runs as an unprivileged user
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=0:0 /out /app
# The image's `node` user, by number so Kubernetes can verify runAsNonRoot. The app's files stay
# owned by root and read-only to it; the root filesystem can be mounted read-only.
USER 1000:1000
# Node runs as PID 1 and handles SIGTERM itself (each service stops gracefully on it); it starts
# no child processes, so no init is needed to reap zombies. Health is served on HTTP
# (/healthz, /readyz) for Kubernetes probes, hence no HEALTHCHECK.
ENTRYPOINT ["node", "/app/entrypoint.mjs"]
CMD ["--help"]
# OCI image annotations (github.com/opencontainers/image-spec, annotations.md). scripts/images
# passes the commit and the version; last, so a new commit rebuilds only this layer.
ARG NODE_IMAGE
ARG REVISION=unknown
ARG VERSION=0.0.0-dev
LABEL org.opencontainers.image.title="streamspace" \
      org.opencontainers.image.description="StreamSpace control plane: watcher, reconciler, idle-reaper and metrics" \
      org.opencontainers.image.source="https://github.com/streamspace/streamspace" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
