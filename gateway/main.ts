// The Coordinator's production entry point: configuration from the environment, every Service
// configured, then start, then drain and stop on a signal. `npm start` runs launcher/main.ts instead,
// which adds the Service stand-ins of the embedded default: the core never imports them.
import { ConfigError } from './errors.js';
import { runCoordinator } from './run.js';

runCoordinator(async (env) => {
  if (env.SERVICES === 'stand-ins')
    throw new ConfigError('environment', [
      'SERVICES=stand-ins: gateway/main.ts runs with the configured Services only; `npm start` (launcher/main.ts) starts the stand-ins',
    ]);
  return undefined;
});
