import { afterAll, expect, it } from 'vitest';
import { gatewayEnv, killGateways, spawnGateway } from '../support/gateway-process.js';
import { freePort } from '../support/redis.js';

afterAll(killGateways);

// gateway/main.ts is the production entry: it never starts the Service stand-ins (only `npm start`,
// launcher/main.ts, does), and says so instead of starting without the Services it was asked for.
it('refuses SERVICES=stand-ins, naming the command that starts them', async () => {
  const gateway = spawnGateway({ port: await freePort(), env: gatewayEnv({ SERVICES: 'stand-ins' }) });
  expect(await gateway.exited).toEqual({ code: 1, signal: null });
  expect(gateway.output()).toContain(
    'Configuration error in environment:\n  - SERVICES=stand-ins: gateway/main.ts runs with the configured Services only; `npm start` (launcher/main.ts) starts the stand-ins\n',
  );
});
