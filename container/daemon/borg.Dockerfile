# The image of borg itself, for container/daemon/docker-compose.yml (README.md, "Deploy").
# Not the agent image (that is container/Dockerfile, which borg builds itself) and not part
# of its build context (src/docker/image.rs leaves container/daemon/ out).
#
# Build context: the repository's top level. With BuildKit (Compose v2, `docker buildx`)
# borg.Dockerfile.dockerignore beside this file keeps target/, node_modules/, .git and .env
# out of it; the classic builder ignores that file and would send them all.
#
#   docker build -f container/daemon/borg.Dockerfile -t borg .

# Bookworm for both stages: the binary is linked against the runtime stage's glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the exact toolchain; rustup fetches it if this image's differs.
RUN cargo build --release --locked --bin borg \
 && cp target/release/borg /usr/local/bin/borg

FROM debian:bookworm-slim
# git for the pipeline's repositories, Node and npm for the claude CLI (and the WhatsApp
# bridge's install), CA certificates for TLS. No docker CLI: borg talks to the engine's
# socket through its API client.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The same version as the agent image and CI (.ci/run); tests/deploy_files.rs checks it.
ARG CLAUDE_CODE_VERSION=2.1.328
RUN npm install --global --no-audit --no-fund "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && npm cache clean --force \
 && claude --version

COPY --from=build /usr/local/bin/borg /usr/local/bin/borg

# Settings come from the environment (Compose's env_file); an empty .env here keeps borg from
# reading one by accident. DATA_DIR is a bind mount (see docker-compose.yml).
WORKDIR /etc/borg
RUN touch /etc/borg/.env
ENV DISABLE_AUTOUPDATER=1
# Root in the container: the Docker socket is root on the host anyway, and as root borg hands
# each agent container's mounts to the image's uid 1000 and back (src/docker/ownership.rs).
ENTRYPOINT ["/usr/local/bin/borg"]
CMD ["run"]
