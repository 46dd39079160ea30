# syntax=docker/dockerfile:1
# Build: a static binary, no cgo (SQLite is pure Go: modernc.org/sqlite).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/ssogate/ssogate/internal/buildinfo.version=${VERSION}" -o /out/ssogate ./cmd/ssogate \
 && mkdir -p /out/data

# Run: distroless static, as the unprivileged "nonroot" user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ssogate /usr/local/bin/ssogate
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV SSOGATE_STORE=sqlite:///data/ssogate.db
VOLUME ["/data"]
# 8080: browsers, IdPs, REST gateway, /healthz, /readyz, /metrics. 9090: gRPC.
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/ssogate", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ssogate"]
CMD ["serve"]
