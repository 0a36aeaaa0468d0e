# syntax=docker/dockerfile:1
# Build: compile the TypeScript once (dev dependencies only live in this stage).
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

# Run-time dependencies only; no scripts (the build is done), no TypeScript compiler.
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY bin/patch-postgres.mjs ./bin/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && node bin/patch-postgres.mjs

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production DATA_DIR=/data PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY drizzle ./drizzle
COPY dovecot ./dovecot
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Exec form: node is PID 1 and gets `docker stop`'s SIGTERM itself (main.ts drains on it).
CMD ["node", "--enable-source-maps", "dist/cli.js", "serve"]
