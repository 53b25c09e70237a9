import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

/** `npm run stand-ins` (services/main.ts), as a user runs it: a process that prints its environment. */

const root = fileURLToPath(new URL('../..', import.meta.url));
let child: ChildProcess | undefined;

afterEach(() => {
  if (child?.exitCode === null) child.kill('SIGKILL');
});

/** Starts services/main.ts and reads the `KEY=value` lines it prints before saying it runs. */
async function startStandIns(...args: string[]): Promise<Record<string, string>> {
  child = spawn(process.execPath, ['--import', 'tsx', 'services/main.ts', '--port-base', '0', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child!.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('Service stand-ins running')) resolve();
    });
    child!.once('exit', (code) => reject(new Error(`services/main.ts exited ${code}: ${stderr}`)));
  });
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

const demoPayment = (env: Record<string, string>) =>
  fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/pi_demo_ada_0001`, {
    headers: { authorization: `Bearer ${env.STRIPE_SECRET_KEY}` },
  });

describe('npm run stand-ins', () => {
  it('prints the variables that point a Coordinator at seeded stand-ins, and stops on SIGTERM', async () => {
    const env = await startStandIns();
    expect(env).toMatchObject({
      SERVICES: 'configured',
      STRIPE_API_BASE: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      ORDER_MANAGEMENT_URL: expect.stringMatching(/^http:/),
      PAYPAL_API_BASE: expect.stringMatching(/^http:/),
      LMS_URL: expect.stringMatching(/^http:/),
      LEGACY_ECOMMERCE_URL: expect.stringMatching(/^http:/),
    });
    const payment = await demoPayment(env);
    expect(payment.status).toBe(200);
    expect(await payment.json()).toMatchObject({ id: 'pi_demo_ada_0001', status: 'succeeded' });

    child!.kill('SIGTERM');
    const [code] = await once(child!, 'exit');
    expect(code).toBe(0);
    await expect(demoPayment(env)).rejects.toThrow();
  });

  it('starts empty with --no-demo, to be seeded through the admin API', async () => {
    const env = await startStandIns('--no-demo');
    expect((await demoPayment(env)).status).toBe(404);
    child!.kill('SIGINT');
    expect((await once(child!, 'exit'))[0]).toBe(0);
  });

  it('refuses an option it does not know', async () => {
    await expect(startStandIns('--demo-please')).rejects.toThrow(/exited 2: .*demo-please/s);
  });
});
