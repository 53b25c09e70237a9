import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * Answers what Node's HTTP parser refuses before any handler sees it (not HTTP, headers too large, a
 * request not received in time) in the REST error shape, with a code, as every other refusal is: Node's
 * own answer is a bare status line. The connection is closed after it, as Node does.
 */
export function answerMalformedRequest(error: Error & { code?: string }, socket: Duplex, logger: Logger) {
  // The peer is gone (a reset, a closed socket): there is no one to answer.
  if (error.code === 'ECONNRESET' || !socket.writable || (socket as Socket).writableEnded) {
    socket.destroy();
    return;
  }
  const [status, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, "The request's headers are larger than the gateway accepts"]
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'The request was not received in time']
        : [400, 'The request is not HTTP the gateway can read'];
  const body = JSON.stringify({ code: ErrorCode.BAD_REQUEST, message });
  logger.info({ status, parserCode: error.code }, 'malformed request refused');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
}
