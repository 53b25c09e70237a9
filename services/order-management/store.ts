import { randomUUID } from 'node:crypto';

/**
 * The in-memory state of the order management stand-in: commercetools-shaped customers, orders,
 * payments and States, and the update actions the Coordinator uses. Every update is all-or-nothing
 * and checks the resource's version first (optimistic concurrency), as commercetools does.
 */

export interface Reference {
  typeId: string;
  id: string;
  obj?: unknown;
}
/** A reference to a resource by id or by key, as update actions take it. */
export interface ResourceIdentifier {
  typeId?: string;
  id?: string;
  key?: string;
}
export interface Money {
  type: 'centPrecision';
  currencyCode: string;
  centAmount: number;
  fractionDigits: number;
}
export interface CustomFields {
  type: Reference;
  fields: Record<string, unknown>;
}
interface Versioned {
  id: string;
  version: number;
  createdAt: string;
  lastModifiedAt: string;
}
export interface State extends Versioned {
  key: string;
  type: 'LineItemState' | 'OrderState';
  name: Record<string, string>;
  initial: boolean;
  builtIn: boolean;
  /** Absent: any transition is allowed; empty: none (a final state). */
  transitions?: Reference[];
}
export interface Customer extends Versioned {
  key?: string;
  email: string;
  firstName?: string;
  lastName?: string;
  authenticationMode: 'ExternalAuth' | 'Password';
  custom?: CustomFields;
}
export interface ItemState {
  quantity: number;
  state: Reference;
}
export interface LineItem {
  id: string;
  productId: string;
  name: Record<string, string>;
  variant: { id: number; sku?: string; attributes: Array<{ name: string; value: unknown }> };
  price: { id: string; value: Money };
  quantity: number;
  totalPrice: Money;
  state: ItemState[];
  custom?: CustomFields;
}
export type ReturnPaymentState = 'NonRefundable' | 'Initial' | 'Refunded' | 'NotRefunded';
export interface ReturnItem {
  type: 'LineItemReturnItem';
  id: string;
  quantity: number;
  lineItemId: string;
  comment?: string;
  shipmentState: 'Advised' | 'Returned' | 'BackInStock' | 'Unusable';
  paymentState: ReturnPaymentState;
  custom?: CustomFields;
  createdAt: string;
  lastModifiedAt: string;
}
export interface ReturnInfo {
  items: ReturnItem[];
  returnTrackingId?: string;
  returnDate?: string;
}
export interface Order extends Versioned {
  orderNumber?: string;
  customerId?: string;
  customerEmail?: string;
  orderState: 'Open' | 'Confirmed' | 'Complete' | 'Cancelled';
  /** The order's workflow State (e.g. the sanctioned state). */
  state?: Reference;
  totalPrice: Money;
  lineItems: LineItem[];
  paymentInfo?: { payments: Reference[] };
  returnInfo: ReturnInfo[];
  custom?: CustomFields;
}
export type TransactionState = 'Initial' | 'Pending' | 'Success' | 'Failure';
export interface Transaction {
  id: string;
  timestamp: string;
  type: 'Authorization' | 'CancelAuthorization' | 'Charge' | 'Refund' | 'Chargeback';
  amount: Money;
  interactionId?: string;
  state: TransactionState;
}
export interface Payment extends Versioned {
  key?: string;
  interfaceId?: string;
  amountPlanned: Money;
  paymentMethodInfo: { paymentInterface?: string; method?: string };
  paymentStatus: { interfaceCode?: string; interfaceText?: string };
  transactions: Transaction[];
  custom?: CustomFields;
}

export type ResourceKind = 'orders' | 'payments' | 'customers' | 'states';
type Resource = Order | Payment | Customer | State;
export type UpdateAction = { action: string } & Record<string, unknown>;

/** A commercetools error: status, and the body commercetools answers with. */
export class CtError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
  body() {
    return {
      statusCode: this.statusCode,
      message: this.message,
      errors: [{ code: this.code, message: this.message, ...this.extra }],
    };
  }
}

export const notFound = (id: string) =>
  new CtError(404, 'ResourceNotFound', `The Resource with ID '${id}' was not found.`);
const invalidOperation = (message: string) => new CtError(400, 'InvalidOperation', message);
const invalidJson = (detail: string) =>
  new CtError(400, 'InvalidJsonInput', 'Request body does not contain valid JSON.', {
    detailedErrorMessage: detail,
  });

/** The States provisioned in the project (the reference's `provision_states`). */
export const LINE_ITEM_STATE_KEYS = {
  INITIAL: 'Initial',
  PENDING: '2u-fulfillment-pending-state',
  PROCESSING: '2u-fulfillment-processing-state',
  SUCCESS: '2u-fulfillment-success-state',
  FAILURE: '2u-fulfillment-failure-state',
} as const;
export type LineState = keyof typeof LINE_ITEM_STATE_KEYS;
export const SANCTIONED_STATE_KEY = '2u-sdn-order-state';

const LINE_TRANSITIONS: Record<LineState, LineState[]> = {
  INITIAL: ['PENDING', 'FAILURE'],
  PENDING: ['PROCESSING', 'FAILURE'],
  PROCESSING: ['SUCCESS', 'FAILURE'],
  SUCCESS: [],
  FAILURE: ['PENDING', 'SUCCESS'],
};

export interface SeedCustomer {
  id?: string;
  lmsUserId: number;
  username: string;
  email: string;
  firstName?: string;
  lastName?: string;
}
export interface SeedLineItem {
  id?: string;
  title: string;
  priceCents: number;
  courseRunKey?: string;
  bundleKey?: string;
  /** The course mode (variant attribute `mode`). @default 'verified' */
  mode?: string;
  /** The line of business (variant attribute `lob`); absent means edx, as the reference reads it. */
  lob?: string;
  /** A credit-mode line's credit provider (variant attribute `credit-provider`). */
  creditProvider?: string;
  state?: LineState;
  entitlementUuid?: string;
}
export interface SeedPayment {
  psp: 'STRIPE' | 'PAYPAL';
  /** Stripe PaymentIntent id, or PayPal capture id (the Charge transaction's interactionId). */
  pspPaymentId: string;
  /** PayPal: the PayPal order of the capture (the payment's interfaceId). @default PAYPAL-ORDER-<capture> */
  pspOrderId?: string;
  /** @default the order total */
  amountCents?: number;
  /** @default 'succeeded' */
  interfaceCode?: string;
}
export interface SeedOrder {
  id?: string;
  orderNumber: string;
  createdAt?: string;
  customer: SeedCustomer;
  orderState?: Order['orderState'];
  sanctioned?: boolean;
  /** @default 'USD' */
  currency?: string;
  lineItems: SeedLineItem[];
  payment?: SeedPayment;
}
export interface SeedData {
  customers?: SeedCustomer[];
  orders?: SeedOrder[];
}

const money = (centAmount: number, currencyCode: string): Money => ({
  type: 'centPrecision',
  currencyCode,
  centAmount,
  fractionDigits: 2,
});
const typeRef = (key: string): Reference => ({ typeId: 'type', id: `type-${key}` });
const clone = <T>(value: T): T => structuredClone(value);

export class OrderManagementStore {
  readonly states = new Map<string, State>();
  readonly customers = new Map<string, Customer>();
  readonly orders = new Map<string, Order>();
  readonly payments = new Map<string, Payment>();

  constructor() {
    const now = new Date().toISOString();
    const state = (key: string, type: State['type'], initial: boolean): State => ({
      id: randomUUID(),
      version: 1,
      createdAt: now,
      lastModifiedAt: now,
      key,
      type,
      name: { 'en-US': key },
      initial,
      builtIn: key === 'Initial',
    });
    const lineStates = Object.fromEntries(
      Object.entries(LINE_ITEM_STATE_KEYS).map(([name, key]) => [
        name,
        state(key, 'LineItemState', name === 'INITIAL'),
      ]),
    ) as Record<LineState, State>;
    for (const [name, s] of Object.entries(lineStates)) {
      s.transitions = LINE_TRANSITIONS[name as LineState].map((to) => ({
        typeId: 'state',
        id: lineStates[to].id,
      }));
      this.states.set(s.id, s);
    }
    // "Sanctioned" is deliberately not final (reference commit 9665d6d1): no transitions list.
    const sanctioned = state(SANCTIONED_STATE_KEY, 'OrderState', false);
    this.states.set(sanctioned.id, sanctioned);
  }

  private table(kind: ResourceKind): Map<string, Resource> {
    return this[kind] as Map<string, Resource>;
  }

  get(kind: ResourceKind, id: string): Resource | undefined {
    return this.table(kind).get(id);
  }

  stateByKey(key: string): State | undefined {
    return [...this.states.values()].find((s) => s.key === key);
  }

  private resolveState(identifier: unknown, field: string): State {
    const ref = (identifier ?? {}) as ResourceIdentifier;
    const found = ref.id ? this.states.get(ref.id) : ref.key ? this.stateByKey(ref.key) : undefined;
    if (!found)
      throw new CtError(
        400,
        'ReferencedResourceNotFound',
        `The referenced object of type 'state' ${ref.id ? `with ID '${ref.id}'` : `with key '${ref.key}'`} was not found. (${field})`,
        { typeId: 'state', ...(ref.id ? { id: ref.id } : { key: ref.key }) },
      );
    return found;
  }

  /** Applies `actions` to a copy of the resource; stores it (version + 1) only when all succeed. */
  update(kind: ResourceKind, id: string, version: unknown, actions: unknown): Resource {
    const current = this.table(kind).get(id);
    if (!current || kind === 'states') throw notFound(id);
    if (typeof version !== 'number') throw invalidJson('version: Missing required value');
    if (!Array.isArray(actions)) throw invalidJson('actions: Missing required value');
    if (version !== current.version)
      throw new CtError(
        409,
        'ConcurrentModification',
        `Object ${id} has a different version than expected. Expected: ${version} - Actual: ${current.version}.`,
        { currentVersion: current.version },
      );
    const next = clone(current);
    const now = new Date().toISOString();
    for (const raw of actions as unknown[]) {
      const action = (raw ?? {}) as UpdateAction;
      if (typeof action.action !== 'string') throw invalidJson('actions -> action: Missing required value');
      if (kind === 'orders') this.applyToOrder(next as Order, action, now);
      else if (kind === 'payments') this.applyToPayment(next as Payment, action, now);
      else this.applyToCustomer(next as Customer, action);
    }
    next.version = current.version + 1;
    next.lastModifiedAt = now;
    this.table(kind).set(id, next);
    return next;
  }

  private applyToOrder(order: Order, action: UpdateAction, now: string) {
    const lineItem = (id: unknown) => {
      const found = order.lineItems.find((l) => l.id === id);
      if (!found) throw invalidOperation(`A line item with ID '${String(id)}' does not exist on the order.`);
      return found;
    };
    const returnItem = (id: unknown) => {
      const found = order.returnInfo.flatMap((r) => r.items).find((i) => i.id === id);
      if (!found)
        throw invalidOperation(`A return item with ID '${String(id)}' does not exist on the order.`);
      return found;
    };
    switch (action.action) {
      case 'transitionLineItemState': {
        const line = lineItem(action.lineItemId);
        const quantity = Number(action.quantity);
        const from = this.resolveState(action.fromState, 'fromState');
        const to = this.resolveState(action.toState, 'toState');
        const entry = line.state.find((s) => s.state.id === from.id);
        if (!Number.isInteger(quantity) || quantity < 1 || !entry || entry.quantity < quantity)
          throw invalidOperation(
            `Line item '${line.id}' does not have quantity ${action.quantity} in state '${from.key}'.`,
          );
        if (action.force !== true && from.transitions && !from.transitions.some((t) => t.id === to.id))
          throw invalidOperation(`Transition from state '${from.key}' to state '${to.key}' is not allowed.`);
        entry.quantity -= quantity;
        const target = line.state.find((s) => s.state.id === to.id);
        if (target) target.quantity += quantity;
        else line.state.push({ quantity, state: { typeId: 'state', id: to.id } });
        line.state = line.state.filter((s) => s.quantity > 0);
        return;
      }
      case 'setLineItemCustomField': {
        const line = lineItem(action.lineItemId);
        if (!line.custom) throw invalidOperation(`Line item '${line.id}' has no custom type.`);
        setField(line.custom.fields, action);
        return;
      }
      case 'addReturnInfo': {
        const drafts = action.items;
        if (!Array.isArray(drafts) || drafts.length === 0) throw invalidJson('items: Missing required value');
        order.returnInfo.push({
          items: drafts.map((raw) => {
            const draft = raw as Record<string, unknown>;
            lineItem(draft.lineItemId);
            return {
              type: 'LineItemReturnItem' as const,
              id: randomUUID(),
              quantity: Number(draft.quantity ?? 1),
              lineItemId: String(draft.lineItemId),
              ...(typeof draft.comment === 'string' ? { comment: draft.comment } : {}),
              shipmentState: (draft.shipmentState as ReturnItem['shipmentState']) ?? 'Returned',
              paymentState: 'Initial' as const,
              createdAt: now,
              lastModifiedAt: now,
            };
          }),
          ...(typeof action.returnTrackingId === 'string'
            ? { returnTrackingId: action.returnTrackingId }
            : {}),
          returnDate: typeof action.returnDate === 'string' ? action.returnDate : now,
        });
        return;
      }
      case 'setReturnPaymentState': {
        const item = returnItem(action.returnItemId);
        const states: ReturnPaymentState[] = ['NonRefundable', 'Initial', 'Refunded', 'NotRefunded'];
        if (!states.includes(action.paymentState as ReturnPaymentState))
          throw invalidJson(`paymentState: Unknown value '${String(action.paymentState)}'`);
        item.paymentState = action.paymentState as ReturnPaymentState;
        item.lastModifiedAt = now;
        return;
      }
      case 'setReturnItemCustomType': {
        const item = returnItem(action.returnItemId);
        const type = (action.type ?? {}) as ResourceIdentifier;
        if (!type.key && !type.id) delete item.custom;
        else
          item.custom = {
            type: type.id ? { typeId: 'type', id: type.id } : typeRef(type.key!),
            fields: clone((action.fields ?? {}) as Record<string, unknown>),
          };
        item.lastModifiedAt = now;
        return;
      }
      case 'setCustomField':
        if (!order.custom) throw invalidOperation('The order has no custom type.');
        setField(order.custom.fields, action);
        return;
      case 'setCustomerEmail':
        if (typeof action.email === 'string') order.customerEmail = action.email;
        else delete order.customerEmail;
        return;
      case 'changeOrderState': {
        const states: Order['orderState'][] = ['Open', 'Confirmed', 'Complete', 'Cancelled'];
        if (!states.includes(action.orderState as Order['orderState']))
          throw invalidJson(`orderState: Unknown value '${String(action.orderState)}'`);
        order.orderState = action.orderState as Order['orderState'];
        return;
      }
      case 'transitionState': {
        const to = this.resolveState(action.state, 'state');
        if (to.type !== 'OrderState') throw invalidOperation(`State '${to.key}' is not an OrderState.`);
        const from = order.state ? this.states.get(order.state.id) : undefined;
        if (action.force !== true && from?.transitions && !from.transitions.some((t) => t.id === to.id))
          throw invalidOperation(`Transition from state '${from.key}' to state '${to.key}' is not allowed.`);
        order.state = { typeId: 'state', id: to.id };
        return;
      }
      default:
        throw invalidJson(`actions -> action: Unknown action '${action.action}' for an order`);
    }
  }

  private applyToPayment(payment: Payment, action: UpdateAction, now: string) {
    switch (action.action) {
      case 'addTransaction': {
        const draft = (action.transaction ?? {}) as Record<string, unknown>;
        const amount = (draft.amount ?? {}) as { centAmount?: unknown; currencyCode?: unknown };
        const types: Transaction['type'][] = [
          'Authorization',
          'CancelAuthorization',
          'Charge',
          'Refund',
          'Chargeback',
        ];
        if (!types.includes(draft.type as Transaction['type']))
          throw invalidJson(`transaction -> type: Unknown value '${String(draft.type)}'`);
        if (!Number.isInteger(amount.centAmount) || typeof amount.currencyCode !== 'string')
          throw invalidJson('transaction -> amount: Missing required value');
        payment.transactions.push({
          id: randomUUID(),
          timestamp: typeof draft.timestamp === 'string' ? draft.timestamp : now,
          type: draft.type as Transaction['type'],
          amount: money(amount.centAmount as number, amount.currencyCode),
          ...(typeof draft.interactionId === 'string' ? { interactionId: draft.interactionId } : {}),
          state: (draft.state as TransactionState) ?? 'Initial',
        });
        return;
      }
      case 'changeTransactionState': {
        const transaction = payment.transactions.find((t) => t.id === action.transactionId);
        if (!transaction)
          throw invalidOperation(`A transaction with ID '${String(action.transactionId)}' does not exist.`);
        transaction.state = action.state as TransactionState;
        return;
      }
      case 'setCustomField':
        if (!payment.custom) throw invalidOperation('The payment has no custom type.');
        setField(payment.custom.fields, action);
        return;
      case 'setCustomType': {
        const type = (action.type ?? {}) as ResourceIdentifier;
        if (!type.key && !type.id) delete payment.custom;
        else
          payment.custom = {
            type: type.id ? { typeId: 'type', id: type.id } : typeRef(type.key!),
            fields: clone((action.fields ?? {}) as Record<string, unknown>),
          };
        return;
      }
      default:
        throw invalidJson(`actions -> action: Unknown action '${action.action}' for a payment`);
    }
  }

  private applyToCustomer(customer: Customer, action: UpdateAction) {
    switch (action.action) {
      case 'changeEmail':
        if (typeof action.email !== 'string' || !action.email)
          throw invalidJson('email: Missing required value');
        customer.email = action.email;
        return;
      case 'setFirstName':
      case 'setLastName': {
        const field = action.action === 'setFirstName' ? 'firstName' : 'lastName';
        if (typeof action[field] === 'string') customer[field] = action[field];
        else delete customer[field];
        return;
      }
      case 'setCustomField':
        if (!customer.custom) throw invalidOperation('The customer has no custom type.');
        setField(customer.custom.fields, action);
        return;
      default:
        throw invalidJson(`actions -> action: Unknown action '${action.action}' for a customer`);
    }
  }

  /** Resolves `expand` paths such as `lineItems[*].state[*].state`, `state`, `paymentInfo.payments[*]`. */
  expand<T>(resource: T, paths: readonly string[]): T {
    if (!paths.length) return resource;
    const copy = clone(resource);
    const lookup = (ref: unknown) => {
      const r = ref as Reference | undefined;
      if (!r || typeof r !== 'object' || typeof r.id !== 'string') return;
      const kind = (
        { state: 'states', payment: 'payments', customer: 'customers', order: 'orders' } as const
      )[r.typeId as 'state'];
      const target = kind ? this.table(kind).get(r.id) : undefined;
      if (target) r.obj = clone(target);
    };
    const walk = (node: unknown, segments: string[]) => {
      if (!node || typeof node !== 'object' || !segments.length) return;
      const [segment, ...rest] = segments as [string, ...string[]];
      const all = segment.endsWith('[*]');
      const child = (node as Record<string, unknown>)[all ? segment.slice(0, -3) : segment];
      const children = all ? (Array.isArray(child) ? child : []) : [child];
      for (const c of children) {
        if (rest.length) walk(c, rest);
        else lookup(c);
      }
    };
    for (const path of paths) walk(copy, path.split('.'));
    return copy;
  }

  /** Loads friendly seed data as commercetools resources; answers what it created. */
  seed(data: SeedData): { customers: Customer[]; orders: Order[]; payments: Payment[] } {
    const created = { customers: [] as Customer[], orders: [] as Order[], payments: [] as Payment[] };
    const customerFor = (seed: SeedCustomer) => {
      const existing = [...this.customers.values()].find(
        (c) => c.custom?.fields.lmsUserId === seed.lmsUserId,
      );
      if (existing) return existing;
      const now = new Date().toISOString();
      const customer: Customer = {
        id: seed.id ?? randomUUID(),
        version: 1,
        createdAt: now,
        lastModifiedAt: now,
        key: randomUUID(),
        email: seed.email,
        ...(seed.firstName ? { firstName: seed.firstName } : {}),
        ...(seed.lastName ? { lastName: seed.lastName } : {}),
        authenticationMode: 'ExternalAuth',
        custom: {
          type: typeRef('2u-user_information'),
          fields: { lmsUserId: seed.lmsUserId, lmsUsername: seed.username },
        },
      };
      this.customers.set(customer.id, customer);
      created.customers.push(customer);
      return customer;
    };
    for (const seed of data.customers ?? []) customerFor(seed);
    for (const seed of data.orders ?? []) {
      const customer = customerFor(seed.customer);
      const currency = seed.currency ?? 'USD';
      const createdAt = seed.createdAt ?? new Date().toISOString();
      const lineItems = seed.lineItems.map((line): LineItem => {
        const state = this.stateByKey(LINE_ITEM_STATE_KEYS[line.state ?? 'INITIAL'])!;
        return {
          id: line.id ?? randomUUID(),
          productId: randomUUID(),
          name: { 'en-US': line.title },
          variant: {
            id: 1,
            sku: line.courseRunKey ?? line.bundleKey,
            attributes: [
              { name: 'mode', value: line.mode ?? 'verified' },
              ...(line.lob ? [{ name: 'lob', value: line.lob }] : []),
              ...(line.creditProvider ? [{ name: 'credit-provider', value: line.creditProvider }] : []),
            ],
          },
          price: { id: randomUUID(), value: money(line.priceCents, currency) },
          quantity: 1,
          totalPrice: money(line.priceCents, currency),
          state: [{ quantity: 1, state: { typeId: 'state', id: state.id } }],
          custom: {
            type: typeRef('lineItemsBundleCustomType'),
            fields: {
              kind: line.bundleKey ? 'BUNDLE' : 'COURSE',
              ...(line.courseRunKey ? { courseRunKey: line.courseRunKey } : {}),
              ...(line.bundleKey ? { bundleKey: line.bundleKey } : {}),
              ...(line.entitlementUuid ? { entitlementUuid: line.entitlementUuid } : {}),
            },
          },
        };
      });
      const total = lineItems.reduce((sum, l) => sum + l.totalPrice.centAmount, 0);
      const payments: Reference[] = [];
      if (seed.payment) {
        const p = seed.payment;
        const amount = money(p.amountCents ?? total, currency);
        const payment: Payment = {
          id: randomUUID(),
          version: 1,
          createdAt,
          lastModifiedAt: createdAt,
          // The reference keys payments by the PSP id with anything outside [A-Za-z0-9_-] replaced.
          key: p.pspPaymentId.replace(/[^A-Za-z0-9_-]/g, '_'),
          // Stripe: the PaymentIntent; PayPal: the PayPal order (the capture is the Charge below).
          interfaceId:
            p.psp === 'STRIPE' ? p.pspPaymentId : (p.pspOrderId ?? `PAYPAL-ORDER-${p.pspPaymentId}`),
          amountPlanned: amount,
          paymentMethodInfo: { paymentInterface: p.psp === 'STRIPE' ? 'stripe_edx' : 'paypal_edx' },
          paymentStatus: { interfaceCode: p.interfaceCode ?? 'succeeded' },
          transactions: [
            {
              id: randomUUID(),
              timestamp: createdAt,
              type: 'Charge',
              amount,
              interactionId: p.pspPaymentId,
              state: 'Success',
            },
          ],
        };
        this.payments.set(payment.id, payment);
        created.payments.push(payment);
        payments.push({ typeId: 'payment', id: payment.id });
      }
      const order: Order = {
        id: seed.id ?? randomUUID(),
        version: 1,
        createdAt,
        lastModifiedAt: createdAt,
        orderNumber: seed.orderNumber,
        customerId: customer.id,
        customerEmail: customer.email,
        orderState: seed.orderState ?? 'Complete',
        ...(seed.sanctioned
          ? { state: { typeId: 'state', id: this.stateByKey(SANCTIONED_STATE_KEY)!.id } }
          : {}),
        totalPrice: money(total, currency),
        lineItems,
        ...(payments.length ? { paymentInfo: { payments } } : {}),
        returnInfo: [],
        custom: {
          type: typeRef('2u-order'),
          fields: {
            lmsUserId: seed.customer.lmsUserId,
            lmsUsername: seed.customer.username,
          },
        },
      };
      this.orders.set(order.id, order);
      created.orders.push(order);
    }
    return created;
  }
}

function setField(fields: Record<string, unknown>, action: UpdateAction) {
  if (typeof action.name !== 'string') throw invalidJson('name: Missing required value');
  if (action.value === undefined || action.value === null) delete fields[action.name];
  else fields[action.name] = clone(action.value);
}
