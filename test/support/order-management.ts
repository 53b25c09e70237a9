import { afterAll, beforeAll } from 'vitest';
import type { ActionIdentity } from '@commerce-coordinator/plugin-sdk';
import { startOrderManagement, type OrderManagement } from '../../services/order-management/server.js';
import plugin from '../../subgraphs/order-management/index.js';
import { executePlugin } from './plugins.js';

/**
 * The order management stand-in for a test file, over real HTTP: started before its tests with the
 * Plugin's variables pointing at it, stopped (and the variables restored) after them.
 */
export function useOrderManagementStandIn(): { readonly om: OrderManagement } {
  const standIn = {} as { om: OrderManagement };
  const savedEnv = { ...process.env };
  beforeAll(async () => {
    standIn.om = await startOrderManagement({});
    Object.assign(process.env, {
      ORDER_MANAGEMENT_URL: standIn.om.url,
      ORDER_MANAGEMENT_PROJECT_KEY: standIn.om.projectKey,
      ORDER_MANAGEMENT_CLIENT_ID: standIn.om.clientId,
      ORDER_MANAGEMENT_CLIENT_SECRET: standIn.om.clientSecret,
      RETIREMENT_SALT: 'test-retirement-salt',
    });
  });
  afterAll(async () => {
    process.env = savedEnv;
    await standIn.om?.close();
  });
  return standIn;
}

/** Executes `document` on the order management Plugin's schema as the gateway does, as `identity`. */
export const executeOrderManagement = <T = Record<string, unknown>>(
  document: string,
  variables: Record<string, unknown>,
  identity: ActionIdentity,
) => executePlugin<T>(plugin.schema, document, variables, identity);
