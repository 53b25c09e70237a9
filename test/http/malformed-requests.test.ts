import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

/**
 * What Node's HTTP parser refuses before any handler runs is answered like every other refusal: the
 * REST error shape with a code, then the connection closed. Node's own answer was a bare status line.
 */

let t: TestCoordinator;
beforeAll(async () => {
  t = await startTestCoordinator('http-malformed-requests', { redis: false });
});
afterAll(async () => {
  await t?.stop();
});

/** Sends `raw` on a connection of its own and reads everything until the gateway closes it. */
function exchange(raw: string): Promise<string> {
  const { hostname, port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(raw));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

function parsed(answer: string) {
  const [head, body] = answer.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1]), head: head!, body: JSON.parse(body!) };
}

describe('a request the HTTP parser refuses', () => {
  it('that is not HTTP: 400 BAD_REQUEST, in JSON', async () => {
    const answer = parsed(await exchange('GARBAGE\r\n\r\n'));
    expect(answer.status).toBe(400);
    expect(answer.head).toMatch(/content-type: application\/json/i);
    expect(answer.body).toEqual({
      code: 'BAD_REQUEST',
      message: 'The request is not HTTP the gateway can read',
    });
  });

  it('whose headers are too large: 431, BAD_REQUEST, in JSON', async () => {
    const answer = parsed(
      await exchange(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(answer.status).toBe(431);
    expect(answer.body).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('and the gateway goes on answering', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});
