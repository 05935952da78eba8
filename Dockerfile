# syntax=docker/dockerfile:1
# Gatehouse container image.
#   docker build -t gatehouse .
#   docker run -p 8080:8080 -v "$PWD/my-config:/etc/gatehouse:ro" -v gatehouse-state:/var/lib/gatehouse gatehouse
# The configuration is read from /etc/gatehouse/gateway.yaml (a volume); keep
# writable state (store: file:/var/lib/gatehouse/accounts.json, audit.file) under
# /var/lib/gatehouse. Listeners inside a container must bind 0.0.0.0.

ARG NODE_IMAGE=node:20-bookworm-slim

# 1. Build: all dependencies, compile TypeScript to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would compile before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# 2. Production dependencies only (no TypeScript, tap, ws…).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# 3. Runtime: dist + production node_modules, as the unprivileged "node" user.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    GATEHOUSE_CONFIG=/etc/gatehouse/gateway.yaml \
    GATEHOUSE_HEALTH_URL=http://127.0.0.1:9090/healthz
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# A default configuration so that the image starts; mount your own over /etc/gatehouse.
COPY gateway.yaml /etc/gatehouse/gateway.yaml
RUN mkdir -p /var/lib/gatehouse && chown node:node /var/lib/gatehouse
USER node
VOLUME ["/etc/gatehouse", "/var/lib/gatehouse"]
EXPOSE 8080 8443 9090
# /healthz on the admin listener (server.admin; set GATEHOUSE_HEALTH_URL if it is not 127.0.0.1:9090).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.GATEHOUSE_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains in-flight requests, then exits 0 (set the stop timeout above server.limits.drain_timeout).
STOPSIGNAL SIGTERM
# --min-semi-space-size=16: V8 keeps its young generation at working size through quiet spells
# (src/cli/node-flags.ts: p99 about doubled in the first seconds after one without it).
ENTRYPOINT ["node", "--min-semi-space-size=16", "/app/dist/cli/bin.js"]
CMD ["start"]
