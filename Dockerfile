# sepconv-serve: the KServe v2 gRPC inference server for depthwise-separable
# convolution, and its client, on Debian 12 (bookworm-slim).
#
#   docker build -t sepconv-serve .
#   docker run --rm --read-only -p 8000:8000 -p 8001:8001 -p 8002:8002 sepconv-serve
#   docker run --rm --read-only -v "$PWD/deploy/models:/models:ro" -p 8001:8001 \
#     sepconv-serve --model_repository=/models --max_batch_size=16
#
# Arguments after the image name are sepconv-server flags (it listens on
# 0.0.0.0:8001 and /metrics on :8002 by default). The image runs as UID 10001,
# writes nothing outside /tmp (a read-only root filesystem works), serves the
# built-in model `sepconv` with no flags, and stops gracefully on SIGTERM
# (--exit_timeout_secs). The same file builds with buildah (see
# tests/system/container_test.sh).

# --- builder: compilers and -dev packages, a stripped Release build ----------
FROM debian:bookworm-slim AS builder
COPY deploy/install-deps.sh /src/deploy/install-deps.sh
RUN /src/deploy/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . /src
# The ccache cache mount only speeds up rebuilds (BuildKit, buildah); the
# result is the same without it.
RUN --mount=type=cache,target=/root/.cache/ccache \
    CCACHE_DIR=/root/.cache/ccache cmake -S /src -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DSEPCONV_BUILD_TESTS=OFF \
 && CCACHE_DIR=/root/.cache/ccache cmake --build /build \
      --target sepconv-server sepconv-client -j "$(nproc)" \
 && install -D -s -m 0755 /build/server/sepconv-server /out/sepconv-server \
 && install -D -s -m 0755 /build/client/sepconv-client /out/sepconv-client

# --- runtime: only the shared libraries the binaries load --------------------
FROM debian:bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sepconv-serve" \
      org.opencontainers.image.description="KServe v2 gRPC inference server for depthwise-separable convolution (oneDNN, dynamic batching, Prometheus metrics)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
COPY deploy/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /tmp/install-deps.sh \
 && groupadd --gid 10001 sepconv \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sepconv
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# OpenMP keeps libgomp's default wait policy (idle threads spin a while,
# then sleep): measured faster than passive, also with clients on the same
# CPUs (docs/performance.md "OpenMP wait policy"). -e OMP_WAIT_POLICY=passive
# makes idle threads sleep at once.
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["sepconv-client", "health", "--server=127.0.0.1:8001"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["sepconv-server"]
# No default flags; the empty CMD also drops the base image's CMD ["bash"].
CMD []
