# syntax=docker/dockerfile:1
# Stage 1 (build): compiles the `glassbox` binary in release mode. The cargo registry and
# target/ are BuildKit cache mounts that outlive the build, so a code change recompiles only
# the workspace crates; .dockerignore keeps the host's target/ out of the context.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin glassbox \
 && cp target/release/glassbox /glassbox

# Stage 2 (runtime): a small Debian image with CA certificates for HTTPS to the model
# providers, running as an unprivileged user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/glassbox --create-home glassbox
COPY --from=build /glassbox /usr/local/bin/glassbox
COPY glassbox.toml /etc/glassbox/glassbox.toml
USER glassbox
WORKDIR /var/lib/glassbox
ENV GLASSBOX_CONFIG=/etc/glassbox/glassbox.toml \
    GLASSBOX_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/glassbox"]
CMD ["serve"]
