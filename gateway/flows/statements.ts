import type { PreparedStatement } from '../db/prepared.js';

// The flow record's hot writes (a flow of n steps runs n + 2 of them), prepared: see db/prepared.ts.

const STEP_COLUMNS = `"id", "flowId", "index", "action", "status", "input", "output", "implementation", "flagDecisions",
  "idempotencyKey", "attempt", "errorCode", "errorMessage", "failure", "startedAt", "finishedAt", "compensates"`;

/**
 * $1..$11: id, kind, name, receiver, status, idempotencyKey, inputHash, signalId, orderId, input,
 * principal; $12 owner; $13 now; $14 idempotencyScope; $15 orderClaim; $16 traceContext. Inserts nothing
 * when a unique key is taken: the caller's idempotency key for the filter, the signal for the receiver,
 * or the order another running flow holds.
 */
export const createFlowStatement: PreparedStatement = {
  name: 'coordinator.flow.create.v3',
  text: `INSERT INTO "FlowRun" ("id", "kind", "name", "receiver", "status", "idempotencyKey", "inputHash", "signalId",
                              "orderId", "input", "principal", "owner", "heartbeatAt", "startedAt",
                              "idempotencyScope", "orderClaim", "traceContext")
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8::uuid, $9, $10::jsonb, $11::jsonb, $12, $13, $13, $14, $15,
                 $16::jsonb)
         ON CONFLICT DO NOTHING
         RETURNING *`,
};

/**
 * One write of the record, atomic as one statement: $1 step rows (JSON array of whole rows, inserted or
 * replacing the row of the same index), $2 the flow id, $3 signals for the outbox (JSON array), $4 the
 * flow's end (JSON array of zero or one), $5 the run's attempt.
 *
 * The attempt fences the write: recovery takes a flow over by incrementing it, so a process that lost
 * its flow (its lease lapsed while it still ran) writes nothing — no step, no signal, no end — and
 * learns it from `owned` = 0. The row lock makes a write and a takeover take turns. An end releases the
 * order the flow held, and is not yet known to be on the event feed (`endPublishedAt`). Always returns one row: `owned`, and the flow's columns when an end was written.
 */
export const recordStatement: PreparedStatement = {
  name: 'coordinator.flow.record.v5',
  text: `WITH fence AS (
      SELECT "id" FROM "FlowRun"
      WHERE "id" = $2::uuid AND "attempt" = $5 AND "status" = 'running'
      FOR UPDATE
    ), written_steps AS (
      INSERT INTO "FlowStep" (${STEP_COLUMNS})
      SELECT ${STEP_COLUMNS}
      FROM jsonb_to_recordset($1::jsonb) AS s("id" uuid, "flowId" uuid, "index" int, "action" text, "status" text,
        "input" jsonb, "output" jsonb, "implementation" text, "flagDecisions" jsonb, "idempotencyKey" text, "attempt" int,
        "errorCode" text, "errorMessage" text, "failure" jsonb, "startedAt" timestamp(3), "finishedAt" timestamp(3),
        "compensates" int)
      WHERE EXISTS (SELECT 1 FROM fence)
      ON CONFLICT ("flowId", "index") DO UPDATE SET
        "action" = excluded."action", "status" = excluded."status", "input" = excluded."input",
        "output" = excluded."output", "implementation" = excluded."implementation",
        "flagDecisions" = excluded."flagDecisions", "attempt" = excluded."attempt",
        "errorCode" = excluded."errorCode", "errorMessage" = excluded."errorMessage",
        "failure" = excluded."failure", "startedAt" = excluded."startedAt", "finishedAt" = excluded."finishedAt",
        "idempotencyKey" = excluded."idempotencyKey", "compensates" = excluded."compensates"
      RETURNING 1
    ), written_signals AS (
      INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "flowId", "createdAt", "traceContext")
      SELECT "id", "name", "payload", "source", $2::uuid, "createdAt", "traceContext"
      FROM jsonb_to_recordset($3::jsonb)
        AS o("id" uuid, "name" text, "payload" jsonb, "source" text, "createdAt" timestamp(3), "traceContext" jsonb)
      WHERE EXISTS (SELECT 1 FROM fence)
      RETURNING 1
    ), ended AS (
      UPDATE "FlowRun" SET "status" = e."status", "output" = e."output", "haltedAt" = e."haltedAt",
        "errorCode" = e."errorCode", "errorMessage" = e."errorMessage", "failure" = e."failure",
        "finishedAt" = e."finishedAt", "endPublishedAt" = NULL, "owner" = NULL, "orderClaim" = NULL
      FROM jsonb_to_recordset($4::jsonb)
        AS e("status" text, "output" jsonb, "haltedAt" int, "errorCode" text, "errorMessage" text, "failure" jsonb,
             "finishedAt" timestamp(3))
      WHERE "FlowRun"."id" = (SELECT "id" FROM fence)
      RETURNING "FlowRun".*
    )
    SELECT (SELECT count(*) FROM fence)::int AS "owned", ended.*
    FROM (SELECT 1) AS one LEFT JOIN ended ON true`,
};

/** $1 id, $2 name, $3 payload, $4 source, $5 dedupeKey, $6 createdAt, $7 traceContext: once per dedupeKey. */
export const publishSignalStatement: PreparedStatement = {
  name: 'coordinator.signal.publish.v2',
  text: `INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "dedupeKey", "createdAt", "traceContext")
         VALUES ($1::uuid, $2, $3::jsonb, $4, $5, $6, $7::jsonb)
         ON CONFLICT ("dedupeKey") DO NOTHING`,
};
