# syntax=docker/dockerfile:1
#
# Base images are referenced by tag, not digest: this repository is built
# and checked where no registry can be asked for the current digests, and a
# digest copied by hand goes stale silently. Release builds should pin
# them (docker buildx imagetools inspect golang:1.26-bookworm) and let a
# dependency bot refresh the pins; the tags below are what to resolve.
#
# Build: a static binary, no cgo (SQLite is pure Go: modernc.org/sqlite).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG REVISION=
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X github.com/ssogate/ssogate/internal/buildinfo.version=${VERSION} -X github.com/ssogate/ssogate/internal/buildinfo.revision=${REVISION}" \
      -o /out/ssogate ./cmd/ssogate \
 && mkdir -p /out/data

# Run: distroless static, as the unprivileged "nonroot" user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=devel
ARG REVISION=
LABEL org.opencontainers.image.title="ssogate" \
      org.opencontainers.image.description="SAML 2.0 Service Provider as a gRPC microservice" \
      org.opencontainers.image.source="https://github.com/ssogate/ssogate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ssogate /usr/local/bin/ssogate
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV SSOGATE_STORE=sqlite:///data/ssogate.db
VOLUME ["/data"]
# 8080: browsers, IdPs, REST gateway, /healthz, /readyz, /metrics. 9090: gRPC.
EXPOSE 8080 9090
# healthcheck reads the same settings as serve (SSOGATE_HTTP_ADDR, ...).
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/ssogate", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ssogate"]
CMD ["serve"]
