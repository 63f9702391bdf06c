# flglm as a container image: `docker build -t flglm:0.1.0 .`, then `docker run --rm flglm:0.1.0 --help`.
# Kits (flglm keygen), data silos, configs and run folders are mounted as volumes, never baked in
# (docs/deploy.md). scripts/docker-smoke.sh builds this image and runs a federation with it.
#
# The base is the official Node.js image; any Debian-based Node 20+ image works
# (`--build-arg NODE_IMAGE=...`).
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, compile TypeScript, then drop the dev dependencies -----------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# .npmrc keeps install scripts off: onnxruntime-node's CPU binaries ship inside its package, and
# its postinstall would download CUDA libraries.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
RUN node node_modules/typescript/bin/tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund \
 # ONNX Runtime's package ships binaries for every platform; this image is Linux (-220 MB).
 && rm -rf node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32

# ---- runtime: production dependencies and the compiled CLI, as a non-root user ------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# glibc keeps freed memory mapped instead of faulting fresh pages in at every step (src/util/malloc-env.ts).
ENV MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
WORKDIR /opt/flglm
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY bin ./bin
COPY protos ./protos
COPY configs ./configs
COPY models ./models
# A fixed uid/gid (10001), so kits and volumes can be prepared for it (chown 10001, or run with
# --user to match the host's owner of a mounted kit: flglm refuses private keys others can read).
RUN groupadd --system --gid 10001 flglm && useradd --system --uid 10001 --gid flglm --home-dir /work --no-create-home flglm \
 && mkdir -p /work && chown flglm:flglm /work
USER 10001:10001
WORKDIR /work
VOLUME ["/work"]
# 50051: federation (gRPC over mutual TLS); 50052: plaintext health (--health-port); 9464: metrics (--metrics-port).
EXPOSE 50051 50052 9464
ENTRYPOINT ["node", "/opt/flglm/bin/flglm"]
CMD ["--help"]
