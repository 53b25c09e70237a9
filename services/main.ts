// `npm run stand-ins`: every Service stand-in, on its own, for demos and black-box tests outside the
// repository. It prints the variables that point a Coordinator at them (`SERVICES=configured` plus
// those runs one against them) and serves each stand-in's admin API (services/README.md).
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { STAND_IN_NAMES, startServiceStandIns } from './embedded.js';

const USAGE = `usage: npm run stand-ins -- [--no-demo] [--port-base N] [--coordinator-url URL]
  --no-demo            start empty (seed through POST /_admin/seed)
  --port-base N        order management on N+1, Stripe N+2, PayPal N+3, LMS N+4, legacy ecommerce N+5,
                       App Store N+6, Google Play N+7, Order Fulfillment N+8, Braze N+9, Segment N+10;
                       0: free ports (default 4100)
  --coordinator-url    where Stripe, PayPal, the stores and Order Fulfillment deliver webhooks (default http://127.0.0.1:4000)`;

const Args = z.object({
  demo: z.boolean(),
  portBase: z.coerce.number().int().min(0).max(65_530),
  coordinatorUrl: z.url(),
});

const fail = (message: string): never => {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
};

function readArgs(argv: string[]): z.infer<typeof Args> {
  let values: { 'no-demo'?: boolean; 'port-base'?: string; 'coordinator-url'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'no-demo': { type: 'boolean', default: false },
        'port-base': { type: 'string', default: '4100' },
        'coordinator-url': { type: 'string', default: 'http://127.0.0.1:4000' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    return fail((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const parsed = Args.safeParse({
    demo: !values['no-demo'],
    portBase: values['port-base'],
    coordinatorUrl: values['coordinator-url'],
  });
  return parsed.success ? parsed.data : fail(z.prettifyError(parsed.error));
}

const args = readArgs(process.argv.slice(2));
const ports = Object.fromEntries(
  STAND_IN_NAMES.map((name, i) => [name, args.portBase === 0 ? 0 : args.portBase + i + 1]),
);
const services = await startServiceStandIns({ demo: args.demo, redisUrl: process.env.REDIS_URL, ports });
services.connectWebhooks(args.coordinatorUrl);

// stdout is the environment, one KEY=value a line (`eval`-able, or a .env file); the rest goes to stderr.
for (const [name, value] of Object.entries({ SERVICES: 'configured', ...services.env }))
  console.log(`${name}=${value}`);
console.error(
  `Service stand-ins running${args.demo ? ' with the demo data' : ''}; admin API under /_admin/ (services/README.md). Ctrl-C stops them.`,
);

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  console.error(`${signal}: stopping the stand-ins`);
  services.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
