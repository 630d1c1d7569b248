# Multi-stage build: compile with the Rust toolchain, ship only the binary on a minimal,
# non-root base. `docker build -t meshd .`
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY templates templates
COPY deploy deploy
COPY benches benches
RUN cargo build --release --locked --bin meshd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/meshd /usr/local/bin/meshd
USER 65532:65532
EXPOSE 15017 15010 15012 15014
ENTRYPOINT ["/usr/local/bin/meshd"]
CMD ["serve"]
