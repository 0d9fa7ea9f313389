# binlake in a container: docker-compose.yml builds it as the `binlake` service.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/binlake /usr/local/bin/binlake

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/binlake /usr/local/bin/binlake
COPY connectors /etc/binlake/connectors
COPY sql /etc/binlake/sql
RUN ln -s /etc/binlake/connectors/ecommerce.toml /etc/binlake/ecommerce.toml
ENTRYPOINT ["binlake"]
CMD ["run", "--config", "/etc/binlake/ecommerce.toml"]
