# The Coordinator's production image: built with the dev dependencies, run with the production ones only.
FROM node:22-slim AS build
WORKDIR /app
# npm ci links the workspaces (the Plugin SDK, the example Plugin) and runs postinstall: it generates
# the Prisma client from the schema and bundles the developers' explorer from its page.
COPY package.json package-lock.json prisma.config.ts ./
COPY packages ./packages
COPY examples ./examples
COPY scripts ./scripts
COPY prisma ./prisma
COPY gateway/explorer/page ./gateway/explorer/page
RUN npm ci --no-audit --no-fund
COPY tsconfig.json rover.yaml connections.yaml flags.json ./
COPY schema ./schema
COPY gateway ./gateway
COPY subgraphs ./subgraphs
COPY services ./services
COPY launcher ./launcher
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:22-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4000 SERVICES=configured
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:4000/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same command as `npm run start:prod`; node is PID 1's only process, so SIGTERM reaches the gateway.
CMD ["node", "--max-semi-space-size=64", "dist/gateway/main.js"]
