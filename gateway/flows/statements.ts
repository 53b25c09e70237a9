import type { PreparedStatement } from '../db/prepared.js';

// The flow record's hot writes (a flow of n steps runs n + 2 of them), prepared: see db/prepared.ts.

const STEP_COLUMNS = `"id", "flowId", "index", "action", "status", "input", "output", "implementation", "flagDecisions",
  "idempotencyKey", "attempt", "errorCode", "errorMessage", "failure", "startedAt", "finishedAt"`;

/** $1..$11: id, kind, name, receiver, status, idempotencyKey, inputHash, signalId, orderId, input, principal; $12 owner; $13 now. */
export const createFlowStatement: PreparedStatement = {
  name: 'coordinator.flow.create.v1',
  text: `INSERT INTO "FlowRun" ("id", "kind", "name", "receiver", "status", "idempotencyKey", "inputHash", "signalId",
                              "orderId", "input", "principal", "owner", "heartbeatAt", "startedAt")
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8::uuid, $9, $10::jsonb, $11::jsonb, $12, $13, $13)
         ON CONFLICT DO NOTHING
         RETURNING *`,
};

/**
 * One write of the record, atomic as one statement: $1 step rows (JSON array of whole rows, inserted or
 * replacing the row of the same index), $2 the flow id, $3 signals for the outbox (JSON array), $4 the
 * flow's end (JSON array of zero or one). Returns the flow row when an end was written.
 */
export const recordStatement: PreparedStatement = {
  name: 'coordinator.flow.record.v1',
  text: `WITH written_steps AS (
      INSERT INTO "FlowStep" (${STEP_COLUMNS})
      SELECT ${STEP_COLUMNS}
      FROM jsonb_to_recordset($1::jsonb) AS s("id" uuid, "flowId" uuid, "index" int, "action" text, "status" text,
        "input" jsonb, "output" jsonb, "implementation" text, "flagDecisions" jsonb, "idempotencyKey" text, "attempt" int,
        "errorCode" text, "errorMessage" text, "failure" jsonb, "startedAt" timestamp(3), "finishedAt" timestamp(3))
      ON CONFLICT ("flowId", "index") DO UPDATE SET
        "action" = excluded."action", "status" = excluded."status", "input" = excluded."input",
        "output" = excluded."output", "implementation" = excluded."implementation",
        "flagDecisions" = excluded."flagDecisions", "attempt" = excluded."attempt",
        "errorCode" = excluded."errorCode", "errorMessage" = excluded."errorMessage",
        "failure" = excluded."failure", "startedAt" = excluded."startedAt", "finishedAt" = excluded."finishedAt"
      RETURNING 1
    ), written_signals AS (
      INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "flowId", "createdAt")
      SELECT "id", "name", "payload", "source", $2::uuid, "createdAt"
      FROM jsonb_to_recordset($3::jsonb)
        AS o("id" uuid, "name" text, "payload" jsonb, "source" text, "createdAt" timestamp(3))
      RETURNING 1
    )
    UPDATE "FlowRun" SET "status" = e."status", "output" = e."output", "haltedAt" = e."haltedAt",
      "errorCode" = e."errorCode", "errorMessage" = e."errorMessage", "failure" = e."failure",
      "finishedAt" = e."finishedAt", "owner" = NULL
    FROM jsonb_to_recordset($4::jsonb)
      AS e("status" text, "output" jsonb, "haltedAt" int, "errorCode" text, "errorMessage" text, "failure" jsonb,
           "finishedAt" timestamp(3))
    WHERE "FlowRun"."id" = $2::uuid
    RETURNING "FlowRun".*`,
};

/** $1 id, $2 name, $3 payload, $4 source, $5 dedupeKey, $6 createdAt: once per dedupeKey. */
export const publishSignalStatement: PreparedStatement = {
  name: 'coordinator.signal.publish.v1',
  text: `INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "dedupeKey", "createdAt")
         VALUES ($1::uuid, $2, $3::jsonb, $4, $5, $6)
         ON CONFLICT ("dedupeKey") DO NOTHING`,
};
