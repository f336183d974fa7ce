# Summon's images: static Go binaries on a distroless base, running as a non-root user. The build
# step is hack/build.sh, which CI also runs where there is no Docker engine.
#
#   docker build -t <registry>/summon .                        # the hook server (the default)
#   docker build --target summonctl -t <registry>/summonctl .  # summonctl, for manifests/dashboard/

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN hack/build.sh /out/summon

FROM gcr.io/distroless/static:nonroot AS summonctl
COPY --from=build /out/summonctl /summonctl
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["/summonctl"]

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/summon /summon
# distroless' nonroot user; the Deployment's runAsUser matches it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/summon"]
