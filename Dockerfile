# Builds driftwarden from source; librdkafka is compiled in (cmake, gcc).
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin driftwarden

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/driftwarden /usr/local/bin/driftwarden
COPY config/driftwarden.toml /etc/driftwarden/driftwarden.toml
USER 65534
EXPOSE 8080
ENTRYPOINT ["driftwarden"]
CMD ["run", "--config", "/etc/driftwarden/driftwarden.toml"]
