// `npm start`: the Coordinator on its embedded default, a stand-in of every Service seeded with the
// demo data beside it (SERVICES=configured, or NODE_ENV=production, uses the configured Services only).
// It lives outside gateway/: the core never imports the stand-ins.
import { startServiceStandIns } from '../services/embedded.js';
import { runCoordinator, type Prepare } from '../gateway/run.js';

/**
 * A stand-in for every Service, the Plugins pointed at them. Variables already set win, so one Service
 * can be real while the others are stand-ins.
 */
const standIns: Prepare = async (env, logger) => {
  if ((env.SERVICES ?? (env.NODE_ENV === 'production' ? 'configured' : 'stand-ins')) !== 'stand-ins')
    return undefined;
  const services = await startServiceStandIns({ demo: true, redisUrl: env.REDIS_URL });
  for (const [name, value] of Object.entries(services.env)) process.env[name] ??= value;
  return {
    started(url) {
      services.connectWebhooks(url);
      logger.info(
        { services: Object.fromEntries(Object.entries(services.env).filter(([k]) => k.endsWith('_URL'))) },
        'Service stand-ins running with the demo data (SERVICES=configured to use real Services)',
      );
    },
    stop: () => services.close(),
  };
};

runCoordinator(standIns);
