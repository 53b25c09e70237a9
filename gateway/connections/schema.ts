import { z } from 'zod';
import { durationSchema, retryPolicySchema, toMs, type Duration } from '../retry-policy.js';

/**
 * The connections config: every Internal Connection of the Coordinator in one file. Filters are
 * synchronous pipelines of Action calls; signals are asynchronous fan-outs to receivers, each an
 * Action call. Names are the registry: a step or receiver refers to an Action by its GraphQL field.
 */

const connectionName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/,
    "a dotted lower-case name such as 'order.refund.requested.v1'",
  );

const graphqlName = z.string().regex(/^[_A-Za-z][_0-9A-Za-z]*$/, 'a GraphQL name');

/** A field of the accumulated data, or a path into it through objects: `payment.psp`. */
const dataPath = z
  .string()
  .regex(
    /^[_A-Za-z][_0-9A-Za-z]*(\.[_A-Za-z][_0-9A-Za-z]*)*$/,
    "a field name or a dotted path such as 'payment.psp'",
  );

const whenValue = z.union([z.string(), z.number(), z.boolean()]);

/** Where a step's arguments come from when the name in the accumulated data differs from the Action's. */
const inputMapping = z.record(graphqlName, dataPath);

const stepSchema = z
  .object({
    /** The Action: a Mutation (or Query) field of the supergraph. */
    action: graphqlName,
    /** `{ actionInputField: accumulatedField }` for inputs named differently in the flow. */
    input: inputMapping.optional(),
    /**
     * Stores the whole result under this name instead of merging its fields: required for an Action
     * that returns a list or a scalar (e.g. a page of orders).
     */
    as: graphqlName.optional(),
    /** Overrides the filter's retry policy for this step. */
    retry: retryPolicySchema.optional(),
    /**
     * The Action that undoes this step; run, in reverse order, for every completed step when a later
     * step fails. Its input comes from the accumulated data as it was when the flow failed.
     */
    compensate: graphqlName.optional(),
    /**
     * Whether the compensation also runs when the later step's outcome is unknown: a mutation that
     * failed without a refusal (a timeout, a 5xx) may have acted. Only for a compensation that is right
     * whatever that step did (one that leaves alone what succeeded); otherwise the step stays done, the
     * flow ends FAILED and a retry replays the failed step under its key. @default false
     */
    compensateOnUnknownOutcome: z.boolean().optional(),
    /**
     * Runs the step only when every named field of the accumulated data has the value (or one of the
     * values); otherwise it is recorded as skipped. Alternative Implementations chosen by data (the
     * order's PSP) are steps with exclusive conditions.
     */
    when: z.record(dataPath, z.union([whenValue, z.array(whenValue).min(1)])).optional(),
  })
  .strict()
  .refine((step) => step.compensateOnUnknownOutcome === undefined || step.compensate, {
    message: 'compensateOnUnknownOutcome needs a compensate Action',
    path: ['compensateOnUnknownOutcome'],
  });

const emitSchema = z
  .object({
    signal: connectionName,
    /** `{ payloadField: accumulatedField }` for fields named differently in the flow. */
    input: inputMapping.optional(),
    /**
     * When the signal is emitted: `completed` (the default), or `failed` — the flow ended FAILED or
     * COMPENSATED, its steps' retries spent. A failed flow's payload is taken from the data as it was
     * when it failed, plus `failure` (`{ type, message }`, the error that failed it); fields of steps
     * that never ran are absent, so such a signal's payload names them nullable.
     */
    on: z.enum(['completed', 'failed']).default('completed'),
  })
  .strict();

/** Who calls: the kinds of verified principal (the Plugin SDK's principal.ts). */
export const callerKind = z.enum(['learner', 'staff', 'service']);
export type CallerKind = z.infer<typeof callerKind>;

/**
 * One field of a filter's typed result: its GraphQL output type (a type of the supergraph, e.g.
 * `[OrderHistoryEntry!]`), and where in the accumulated data it comes from (the same name by default).
 */
const resultFieldSchema = z.union([
  z.string(),
  z.object({ type: z.string(), from: dataPath.optional() }).strict(),
]);

/** A duration's milliseconds; NaN when absent or malformed (that is reported by its own schema). */
const msOf = (duration: unknown): number => {
  try {
    return duration === undefined ? NaN : toMs(duration as Duration);
  } catch {
    return NaN;
  }
};

/**
 * When the Coordinator itself retries a flow that ended FAILED on a step that may have acted: after
 * `initialInterval`, then twice as long each time up to `maximumInterval`, until the flow's attempts
 * (its first run, recoveries and every retry included) reach `maximumAttempts`.
 */
const retryUnknownOutcomeSchema = z
  .object({
    initialInterval: durationSchema,
    /** @default 100 × initialInterval */
    maximumInterval: durationSchema.optional(),
    /** Attempts of the flow in all, its first run included. */
    maximumAttempts: z.number().int().min(2, 'at least 2: the first run and one retry'),
  })
  .strict()
  .refine((p) => !(msOf(p.initialInterval) <= 0), {
    message: 'initialInterval must be greater than 0',
    path: ['initialInterval'],
  })
  .refine((p) => !(msOf(p.maximumInterval) < msOf(p.initialInterval)), {
    message: 'maximumInterval cannot be less than initialInterval',
    path: ['maximumInterval'],
  });
export type RetryUnknownOutcomePolicy = z.infer<typeof retryUnknownOutcomeSchema>;

const filterSchema = z
  .object({
    description: z.string().optional(),
    /** The Mutation the Coordinator exposes to run this filter. */
    mutation: graphqlName.optional(),
    /** Instead of `mutation`: a Query field, for filters that only read (order history, receipts). */
    query: graphqlName.optional(),
    /** The input object type of the flow (a type of the supergraph); its fields seed the accumulated data. */
    input: graphqlName,
    /** Which input field identifies the order the flow is about (recorded, queryable). */
    orderKey: graphqlName.optional(),
    /**
     * Who may run the filter, decided before anything runs or is recorded (a flow's steps then act for
     * its caller; an Action's own checks only narrow to the caller's own orders). Learners must be
     * named: most flows are for Services and staff.
     * @default [staff, service]
     */
    callers: z.array(callerKind).min(1, 'name at least one kind of caller').default(['staff', 'service']),
    /**
     * One running flow per order (by `orderKey`), across every gateway process: a flow of an order
     * another flow is changing waits for it (bounded), so two flows never interleave their changes.
     * @default true for a mutation with an orderKey, false for a query
     */
    exclusive: z.boolean().optional(),
    /**
     * What a failing step does when its error is not a domain error (domain errors always reach the
     * caller): `fail` stops the flow, `continue` records the failure and goes on without its output.
     */
    onError: z.enum(['fail', 'continue']).default('fail'),
    /** What a restarted gateway does with a flow a crash left running: finish it, or fail it. */
    recovery: z.enum(['resume', 'fail']).default('resume'),
    /** Retries of a step's transient failures. @default { maximumAttempts: 3 } */
    retry: retryPolicySchema.optional(),
    /**
     * Retries, by the Coordinator itself, of a flow that ended FAILED on a step that may have acted (a
     * mutation failing transiently to its last attempt: a timeout, a 5xx), as an operator's retryFlow
     * would and recorded as one. Only for filters whose steps are safe to replay under their keys at
     * any age. A refusal, a cancel, or a flow an operator retried is left alone. @default none
     */
    retryUnknownOutcome: retryUnknownOutcomeSchema.optional(),
    steps: z.array(stepSchema).min(1, 'a filter needs at least one step'),
    /**
     * Signals emitted, in the flow's final transaction, when the flow completes (not when it halts), or
     * with `on: failed` when it fails.
     */
    emits: z.array(emitSchema).optional(),
    /**
     * What the caller gets, typed: `{ field: Type }` or `{ field: { type, from: data.path } }`. The
     * filter's field returns these beside the flow record (`flow`), and nothing else of its data.
     * @default {} (only the flow record)
     */
    result: z.record(graphqlName, resultFieldSchema).default({}),
  })
  .strict()
  .refine((f) => (f.mutation === undefined) !== (f.query === undefined), {
    message: 'a filter is exposed as exactly one of `mutation` or `query`',
  })
  .refine((f) => f.retryUnknownOutcome === undefined || f.mutation !== undefined, {
    message: '`retryUnknownOutcome` is for a mutation: a query acts on nothing, so its outcome is known',
    path: ['retryUnknownOutcome'],
  })
  .refine((f) => !f.exclusive || f.orderKey !== undefined, {
    message: '`exclusive` needs an `orderKey`: the order the flows exclude each other on',
    path: ['exclusive'],
  });

const receiverSchema = z
  .object({
    /** Unique across all signals; the consumer group and the flow record use it. */
    name: connectionName,
    action: graphqlName,
    input: inputMapping.optional(),
    /** Deliveries and backoff; the signal is dead-lettered after `maximumAttempts`. @default 5 attempts */
    retry: retryPolicySchema.optional(),
  })
  .strict();

const signalSchema = z
  .object({
    description: z.string().optional(),
    /** The input object type describing the payload (a type of the supergraph). */
    payload: graphqlName,
    receivers: z.array(receiverSchema).min(1, 'a signal needs at least one receiver'),
  })
  .strict();

export const connectionsSchema = z
  .object({
    version: z.literal(1),
    filters: z.record(connectionName, filterSchema).default({}),
    signals: z.record(connectionName, signalSchema).default({}),
    /**
     * The federated entity (keyed by `id`) that the filters' `orderKey` names: the Coordinator adds the
     * flows about each one to it as `flows`, so one query reads an order with its Purchase Flows.
     */
    orderEntity: graphqlName.optional(),
  })
  .strict();

export type Connections = z.infer<typeof connectionsSchema>;
export type FilterDefinition = z.infer<typeof filterSchema>;

/** Whether a filter's flows hold their order while they run (see `exclusive`). */
export function isExclusive(filter: FilterDefinition): boolean {
  return filter.orderKey !== undefined && (filter.exclusive ?? filter.mutation !== undefined);
}

/** The root field a filter is run by. */
export function filterField(filter: FilterDefinition): { operation: 'Mutation' | 'Query'; name: string } {
  return filter.mutation !== undefined
    ? { operation: 'Mutation', name: filter.mutation }
    : { operation: 'Query', name: filter.query! };
}
export type StepDefinition = z.infer<typeof stepSchema>;
export type SignalDefinition = z.infer<typeof signalSchema>;
export type ReceiverDefinition = z.infer<typeof receiverSchema>;
export type EmitDefinition = z.infer<typeof emitSchema>;
export type ResultFieldDefinition = z.infer<typeof resultFieldSchema>;
