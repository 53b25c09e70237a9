import { DomainError, domainCodeOf, ErrorCode, isTransient } from '../errors.js';
import { unstorablePath } from '../flows/input.js';
import { flagContext, type Flags } from '../flags/flags.js';
import type { FlowEngine } from '../flows/engine.js';
import type { FlowStore } from '../flows/store.js';
import type { Logger } from '../log.js';
import type { FlagEvaluator } from '../federation/data-sources.js';
import {
  KEY_MAX_LENGTH,
  type FilterResult,
  type Plugin,
  type PluginRuntime,
  type Principal,
} from '@commerce-coordinator/plugin-sdk';

/** The LaunchDarkly context of a caller: the learner (or staff member) by LMS id when known. */
export function principalFlagContext(principal: Principal | undefined, orderId?: string) {
  const learnerId =
    principal && principal.kind !== 'service' && principal.lmsUserId !== undefined
      ? String(principal.lmsUserId)
      : undefined;
  return flagContext({
    learnerId,
    orderId,
    ...(principal?.kind === 'service' ? { service: principal.service } : {}),
  });
}

export const evaluatorFrom =
  (flags: Flags): FlagEvaluator =>
  (flag, principal, fallback) =>
    flags.evaluate(flag, principalFlagContext(principal), fallback);

/** What the Coordinator lends one Plugin's routes and background work. */
export function createPluginRuntime(
  plugin: Plugin,
  deps: {
    engine: FlowEngine;
    store: FlowStore;
    flags: Flags;
    signals: ReadonlySet<string>;
    logger: Logger;
  },
): PluginRuntime {
  const source = `plugin:${plugin.name}`;
  const evaluate = evaluatorFrom(deps.flags);
  return {
    logger: deps.logger.child({ plugin: plugin.name }),
    async publish(signal, payload, { id }) {
      // A signal with no entry in the connections config would reach no receiver: a bug, not an event.
      if (!deps.signals.has(signal))
        throw new Error(`${source} published '${signal}', which the connections config does not declare`);
      // What the outbox cannot store is the sender's bad input, answered as such (a 400 to a webhook).
      // The id is indexed (it dedupes the event): too long, PostgreSQL would refuse the insert.
      if (id.length > KEY_MAX_LENGTH)
        throw new DomainError(
          ErrorCode.BAD_USER_INPUT,
          `The event id is longer than ${KEY_MAX_LENGTH} characters`,
        );
      const path = unstorablePath({ payload, id });
      if (path)
        throw new DomainError(
          ErrorCode.BAD_USER_INPUT,
          `The event holds a NUL character or an unpaired surrogate at ${path}`,
        );
      return deps.store.publishSignal({
        name: signal,
        payload,
        source,
        dedupeKey: `${signal}:${id}`,
      });
    },
    async runFilter(name, input, options = {}): Promise<FilterResult> {
      try {
        const flow = await deps.engine.runFilter(name, input, options);
        return {
          flowId: flow.id,
          status: flow.status.toUpperCase(),
          output: flow.output as FilterResult['output'],
        };
      } catch (error) {
        const code = domainCodeOf(error);
        // "Not now" is not an outcome: the caller (a webhook, an event consumer) must try again later.
        if (!code || isTransient(code)) throw error;
        const extensions = (error as { extensions?: { flowId?: string; flowStatus?: string } }).extensions;
        return {
          flowId: extensions?.flowId ?? '',
          status: extensions?.flowStatus ?? 'REJECTED',
          output: null,
          error: { code: code ?? ErrorCode.INTERNAL_SERVER_ERROR, message: (error as Error).message },
        };
      }
    },
    variation: async (flag, principal, fallback) => (await evaluate(flag, principal, fallback)).value,
  };
}
