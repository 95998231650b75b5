# syntax=docker/dockerfile:1
#
# One image runs every part of task-queue:
#
#   controller (the default):  node dist/controller/main.js
#   worker:                    node dist/worker/main.js
#
# The Helm chart sets the command of each container explicitly, so a worker
# image built FROM this one (adding an engine such as pyannote) keeps working.

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile src/ to dist/ ------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts skips the postinstall, which installs developer tools
# (helm, kubectl, a pinned Node) that compiling does not need.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and dist/ only -----------------------
FROM ${NODE_IMAGE} AS runtime
# Workers probe and cut audio with ffprobe and ffmpeg.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
# The same non-root UID the chart's securityContext asks for; numeric, so
# Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# 8080 controller metrics, 8081 health (both), 9090 worker metrics.
EXPOSE 8080 8081 9090
ENTRYPOINT ["node"]
CMD ["dist/controller/main.js"]
