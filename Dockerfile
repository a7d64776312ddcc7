# syntax=docker/dockerfile:1
#
# tallyd container image: multi-stage, Debian 12 slim, runs as the non-root user "tally".
#
#   docker build -t tally/tallyd .
#   docker compose up            # PostgreSQL 15 + tallyd, see docker-compose.yml
#
# The entrypoint (docker/entrypoint.sh) generates the signing key and the API-key hash
# secret into /var/lib/tally/keys if they are absent, applies migrations, then serves
# on 0.0.0.0:8080. Production mounts real key files and points TALLY_SIGNING_KEY /
# TALLY_KEY_HASH_SECRET at them. TALLY_DATABASE_URL must be provided.

# ---- build stage ----------------------------------------------------------------------
FROM debian:12-slim AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc libc6-dev make cmake pkg-config \
        libevent-dev libpq-dev libjansson-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_TESTS=OFF -DTALLY_SANITIZE=OFF \
 && cmake --build /build -j"$(nproc)" --target tallyd \
 && /build/bin/tallyd version

# ---- runtime stage --------------------------------------------------------------------
# Runtime libraries only; tzdata because pricing reads /usr/share/zoneinfo (TZDIR), and
# curl for the healthcheck.
FROM debian:12-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-pthreads-2.1-7 libpq5 libjansson4 libsodium23 \
        ca-certificates curl tzdata \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system tally \
 && useradd --system --gid tally --home-dir /var/lib/tally --no-create-home --shell /usr/sbin/nologin tally \
 && mkdir -p /var/lib/tally/keys \
 && chown -R tally:tally /var/lib/tally \
 && chmod 0700 /var/lib/tally/keys

# Migrations, schema/openapi.yaml and the device catalog are embedded in the binary.
COPY --from=build /build/bin/tallyd /usr/local/bin/tallyd
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/tally-entrypoint

WORKDIR /var/lib/tally
ENV TALLY_LISTEN=0.0.0.0:8080 \
    TALLY_SIGNING_KEY=/var/lib/tally/keys/signing.key \
    TALLY_KEY_HASH_SECRET=/var/lib/tally/keys/key-hash.secret

USER tally
VOLUME ["/var/lib/tally/keys"]
EXPOSE 8080

# /readyz: 200 only when the database is reachable and migrations are current.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || exit 1

ENTRYPOINT ["/usr/local/bin/tally-entrypoint"]
CMD ["serve"]
