# One image for every journey command (docker-compose.yml picks the command).
# Build: docker build -t journey:local .

FROM golang:1.26-alpine AS build
WORKDIR /src
# Modules first: they change less often than the code and cache well.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (no cgo), every services/*/cmd/journey-* into /out.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./services/...

# Alpine rather than distroless: the compose health checks need wget.
FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata && adduser -D -H -u 10001 journey
COPY --from=build /out/ /usr/local/bin/
USER journey
# Services listen on 0.0.0.0 in a container; set per service in compose.
EXPOSE 8088 8089 8090 8091
