#!/usr/bin/env bash
# Container smoke test: build the flglm image from the Dockerfile and run a federation with it — a
# server and two clients as separate containers on the host network (127.0.0.1 only), with a PKI,
# silos and a config on a mounted volume — and check that every round completes.
#
#   bash scripts/docker-smoke.sh            # prints "docker smoke: passed (...)" or exits non-zero
#
# Without a Docker daemon it prints "docker smoke: skipped: no Docker daemon" and exits 0.
#
# Machines that cannot pull images: when the base image the Dockerfile names (node:20-bookworm-slim)
# is not present locally, it is built here under that same tag: a Debian bookworm root filesystem
# from debootstrap (Debian's package mirror) with this machine's Node.js and npm copied in, then
# `docker import`ed. Where the registry is reachable, `docker pull node:20-bookworm-slim` does instead.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=node:20-bookworm-slim
IMAGE=flglm:smoke
TIMEOUT_S=${FLGLM_SMOKE_TIMEOUT_S:-600}
say() { echo "docker smoke: $*"; }

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  say "skipped: no Docker daemon"
  exit 0
fi

build_base() {
  command -v debootstrap >/dev/null || { say "failed: $BASE_IMAGE is not present and cannot be built here (debootstrap is missing: apt-get install debootstrap, or docker pull $BASE_IMAGE)"; exit 1; }
  [ "$(id -u)" = 0 ] || { say "failed: building $BASE_IMAGE with debootstrap needs root (or docker pull $BASE_IMAGE)"; exit 1; }
  local node_bin npm_dir rootfs
  node_bin=$(command -v node)
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  case "$("$node_bin" --version)" in v2[0-9]*|v[3-9][0-9]*) ;; *) say "failed: the local Node.js is $("$node_bin" --version); the base image needs 20+"; exit 1;; esac
  rootfs=$(mktemp -d /tmp/flglm-rootfs.XXXXXX)
  say "building $BASE_IMAGE locally: debootstrap bookworm + Node.js $("$node_bin" --version) from this machine"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/tmp/flglm-debootstrap.log 2>&1 \
    || { say "failed: debootstrap (see /tmp/flglm-debootstrap.log)"; rm -rf "$rootfs"; exit 1; }
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib/node_modules"
  cp "$node_bin" "$rootfs/usr/local/bin/node"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # This machine reaches the npm registry through its own certificate authorities: the stand-in
  # base carries them, as the machine's own Node.js does (an official image on an open network
  # needs nothing of the kind).
  local ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} env_ca=()
  if [ -f "$ca" ]; then
    mkdir -p "$rootfs/usr/local/share/flglm"
    cp "$ca" "$rootfs/usr/local/share/flglm/ca-certificates.crt"
    env_ca=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/flglm/ca-certificates.crt')
  fi
  tar -C "$rootfs" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "${env_ca[@]}" --change 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || build_base

started=$(date +%s)
say "building $IMAGE"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" . >/tmp/flglm-docker-build.log 2>&1 \
  || { cat /tmp/flglm-docker-build.log; say "failed: docker build"; exit 1; }

work=$(mktemp -d /tmp/flglm-smoke.XXXXXX)
chown 10001:10001 "$work" 2>/dev/null || chmod 777 "$work"
names=(flglm-smoke-server-$$ flglm-smoke-alice-$$ flglm-smoke-bob-$$)
cleanup() { docker rm -f "${names[@]}" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
run() { docker run --rm --network host -v "$work:/work" "$IMAGE" "$@"; }
run keygen --out /work/pki --clients alice,bob --server-name localhost --server-ip 127.0.0.1 --server-address "127.0.0.1:$port" >/dev/null
run data prepare --out /work/silos --clients 2 --max-examples 40 >/dev/null
cat > "$work/federation.yaml" <<YAML
name: docker-smoke
seed: 1
model: {preset: tiny, max_seq_len: 64}
data: {task: classify, batch_size: 4, seq_len: 64}
federation: {mode: sequential, clients: 2, rounds: 2, local_steps: 2, min_clients: 2, client_timeout_ms: 120000}
eval: {max_batches: 2}
YAML

# Server and clients as separate containers, as three organisations would run them.
docker run -d --name "${names[0]}" --network host -v "$work:/work" "$IMAGE" \
  server --config /work/federation.yaml --pki /work/pki/server --host 127.0.0.1 --port "$port" \
  --checkpoints /work/checkpoints --summary-json /work/server-summary.json --log-format json >/dev/null
for i in 1 2; do
  id=$([ "$i" = 1 ] && echo alice || echo bob)
  docker run -d --name "${names[$i]}" --network host -v "$work:/work" "$IMAGE" \
    client --pki "/work/pki/clients/$id" --data "/work/silos/client-$((i - 1))" --test /work/silos/test \
    --summary-json "/work/$id-summary.json" >/dev/null
done

status=$(timeout "$TIMEOUT_S" docker wait "${names[0]}" || echo timeout)
if [ "$status" != 0 ]; then
  for n in "${names[@]}"; do echo "--- $n"; docker logs --tail 30 "$n" 2>&1 || true; done
  say "failed: the server container ended with '$status'"
  exit 1
fi
for i in 1 2; do
  s=$(timeout 120 docker wait "${names[$i]}" || echo timeout)
  [ "$s" = 0 ] || { docker logs --tail 30 "${names[$i]}" 2>&1; say "failed: client container ${names[$i]} ended with '$s'"; exit 1; }
done
rounds=$(node -e 'console.log(require(process.argv[1]).history.length)' "$work/server-summary.json")
[ "$rounds" = 2 ] || { cat "$work/server-summary.json"; say "failed: the server summary shows $rounds rounds, expected 2"; exit 1; }
[ -f "$work/alice-summary.json" ] && [ -f "$work/bob-summary.json" ] || { say "failed: a client wrote no summary"; exit 1; }
say "containers: server + 2 clients, 2 rounds, $(( $(date +%s) - started )) s"

# compose.yaml as its header says to use it, with a short plan, when a compose tool is installed.
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose); elif command -v docker-compose >/dev/null; then compose=(docker-compose); fi
if [ ${#compose[@]} -eq 0 ]; then
  say "compose: skipped (neither docker compose nor docker-compose is installed)"
else
  demo=$(mktemp -d /tmp/flglm-compose.XXXXXX)
  cp compose.yaml "$demo/"
  mkdir -p "$demo/demo/server" "$demo/demo/alice" "$demo/demo/bob" "$demo/demo/carol"
  docker tag "$IMAGE" flglm:0.1.0
  as_me=(docker run --rm -u "$(id -u):$(id -g)" -v "$demo/demo:/work" flglm:0.1.0)
  "${as_me[@]}" keygen --out /work/pki --clients alice,bob,carol --server-name localhost --server-ip 127.0.0.1 --server-address 127.0.0.1:50051 >/dev/null
  "${as_me[@]}" data prepare --out /work/silos --clients 3 --max-examples 40 >/dev/null
  sed -e 's/clients: 2/clients: 3/; s/min_clients: 2/min_clients: 3/' "$work/federation.yaml" > "$demo/small.yaml"
  (cd "$demo" && FLGLM_CONFIG=./small.yaml FLGLM_UID=$(id -u) FLGLM_GID=$(id -g) timeout "$TIMEOUT_S" "${compose[@]}" -p "flglm-smoke-$$" up --abort-on-container-exit >"$demo/compose.log" 2>&1) || true
  (cd "$demo" && "${compose[@]}" -p "flglm-smoke-$$" down >/dev/null 2>&1) || true
  crounds=$(node -e 'console.log(require(process.argv[1]).history.length)' "$demo/demo/server/summary.json" 2>/dev/null || echo 0)
  clients_done=$(ls "$demo"/demo/{alice,bob,carol}/summary.json 2>/dev/null | wc -l)
  if [ "$crounds" != 2 ] || [ "$clients_done" != 3 ]; then tail -30 "$demo/compose.log"; rm -rf "$demo"; say "failed: compose.yaml ran $crounds of 2 rounds, $clients_done of 3 clients finished"; exit 1; fi
  rm -rf "$demo"
  say "compose: server + 3 clients (kits as secrets), 2 rounds"
fi
say "passed ($(( $(date +%s) - started )) s)"
