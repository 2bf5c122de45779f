# fastdfs-rs container image (docs/DEPLOYMENT.md, "Docker"). Build and run:
#   docker build --build-arg FASTDFS_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t fastdfs-rs .
#   docker run -d --name fastdfs -p 8080:8080 -v fastdfs-data:/data \
#       --ulimit memlock=-1 --stop-timeout 30 fastdfs-rs
# glommio needs io_uring, which Docker 25+ blocks in its default seccomp profile: the container
# then exits at once with "io_uring is blocked"; see docs/DEPLOYMENT.md for the profile to use.
# tests/docker_image.rs checks this file and runs the binary the way this image does.

FROM rust:1-bookworm AS build
# .git is not sent (.dockerignore): the commit for `fastdfs version` comes from here.
ARG FASTDFS_GIT_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin fastdfs \
 && install -D -m 0755 target/release/fastdfs /out/fastdfs

FROM debian:bookworm-slim
# The binary links only glibc and libgcc_s (both in the base image); its TLS (enable_https) is
# rustls, built in: no packages to add. The health check below uses bash's /dev/tcp, so no curl either.
RUN groupadd --gid 10001 fastdfs \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin fastdfs \
 && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=build /out/fastdfs /usr/local/bin/fastdfs
# The runtime dir (conf/cfg.json, files/, data/, log/), written on first start; the same
# variable go-fastdfs' images use.
ENV GO_FASTDFS_DIR=/data
VOLUME /data
WORKDIR /data
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# The default cfg.json listens on ":8080" with group "group1" (support_group_manage).
EXPOSE 8080
# `docker stop` sends SIGTERM: in-flight requests drain for up to shutdown_grace (10 s), so
# give it more than Docker's default 10 s (--stop-timeout 30). SIGHUP reopens the log and
# reloads cfg.json (docker kill --signal HUP).
STOPSIGNAL SIGTERM
# G/status answers 200 once the server accepts connections. Change this (docker run
# --health-cmd) together with cfg.json's addr or group.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /group1/status HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 5 status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["/usr/local/bin/fastdfs"]
CMD ["server"]
