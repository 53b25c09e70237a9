import { randomUUID } from 'node:crypto';
import {
  CtError,
  LINE_ITEM_STATE_KEYS,
  notFound,
  type Customer,
  type CustomFields,
  type LineItem,
  type Money,
  type Order,
  type OrderManagementStore,
  type Payment,
  type Reference,
  type Transaction,
  type UpdateAction,
} from './store.js';

/**
 * The checkout side of the order management stand-in, as commercetools answers it: the catalogue
 * (products by SKU and their standalone prices), carts, customers and payments created by draft, orders
 * created from a cart, and custom objects. Keys and order numbers are unique, as in commercetools
 * (DuplicateField), and every write checks versions (ConcurrentModification): the mobile order flow
 * relies on both to keep two requests for one purchase from making two orders.
 *
 *   GET    /{projectKey}/carts?where=…            GET /{projectKey}/carts/{id}   GET /carts/key={key}
 *   POST   /{projectKey}/carts                    CartDraft → 201
 *   POST   /{projectKey}/carts/{id}               { version, actions }: addPayment, setBillingAddress,
 *                                                 setShippingAddress, setCustomField
 *   DELETE /{projectKey}/carts/{id}?version=N
 *   POST   /{projectKey}/orders                   OrderFromCartDraft → 201
 *   POST   /{projectKey}/payments                 PaymentDraft → 201
 *   POST   /{projectKey}/customers                CustomerDraft → 201 { customer }
 *   GET    /{projectKey}/standalone-prices?where=sku = :sku
 *   GET    /{projectKey}/custom-objects/{container}/{key}
 *   POST   /{projectKey}/custom-objects           { container, key, value, version? }
 */

export interface Cart {
  id: string;
  version: number;
  key?: string;
  createdAt: string;
  lastModifiedAt: string;
  customerId?: string;
  customerEmail?: string;
  cartState: 'Active' | 'Ordered' | 'Merged' | 'Frozen';
  lineItems: LineItem[];
  totalPrice: Money;
  paymentInfo?: { payments: Reference[] };
  billingAddress?: { country: string };
  shippingAddress?: { country: string };
  custom?: CustomFields;
}
export interface Product {
  id: string;
  sku: string;
  name: Record<string, string>;
  mode: string;
}
export interface StandalonePrice {
  id: string;
  version: number;
  sku: string;
  value: Money;
  active: boolean;
  createdAt: string;
  lastModifiedAt: string;
}
export interface CustomObject {
  id: string;
  version: number;
  container: string;
  key: string;
  value: unknown;
  createdAt: string;
  lastModifiedAt: string;
}

export interface SeedProduct {
  /** The SKU: a course run key. */
  sku: string;
  title: string;
  /** The standalone price in USD cents. */
  usdCents: number;
  /** @default 'verified' */
  mode?: string;
}
export interface SeedCart {
  id?: string;
  /** The customer (by LMS user id) whose active cart this is. */
  lmsUserId: number;
  sku: string;
}
export interface SeedMobilePayment {
  id?: string;
  method: 'ios_iap' | 'android_iap';
  /** The store's transaction id (Apple transactionId, Google orderId). */
  transactionId: string;
  usdCents: number;
}
export interface SeedCustomObject {
  container: string;
  key: string;
  value: unknown;
}
export interface CheckoutSeed {
  products?: SeedProduct[];
  carts?: SeedCart[];
  mobilePayments?: SeedMobilePayment[];
  customObjects?: SeedCustomObject[];
}

const money = (centAmount: number, currencyCode: string, fractionDigits = 2): Money => ({
  type: 'centPrecision',
  currencyCode,
  centAmount,
  fractionDigits,
});
const typeRef = (key: string): Reference => ({ typeId: 'type', id: `type-${key}` });
const clone = <T>(value: T): T => structuredClone(value);
const invalidInput = (message: string) => new CtError(400, 'InvalidInput', message);
const invalidOperation = (message: string) => new CtError(400, 'InvalidOperation', message);
const missing = (field: string) =>
  new CtError(400, 'InvalidJsonInput', 'Request body does not contain valid JSON.', {
    detailedErrorMessage: `${field}: Missing required value`,
  });
const duplicate = (field: string, value: unknown, resource: Reference) =>
  new CtError(400, 'DuplicateField', `A duplicate value '"${String(value)}"' exists for field '${field}'.`, {
    field,
    duplicateValue: value,
    conflictingResource: resource,
  });
const conflict = (id: string, expected: unknown, actual: number) =>
  new CtError(
    409,
    'ConcurrentModification',
    `Object ${id} has a different version than expected. Expected: ${String(expected)} - Actual: ${actual}.`,
    { currentVersion: actual },
  );
/** commercetools keys: 2-256 characters of [A-Za-z0-9_-]. */
const KEY = /^[A-Za-z0-9_-]{2,256}$/;

function customFrom(draft: unknown): CustomFields | undefined {
  const custom = draft as
    { type?: { key?: string; id?: string }; fields?: Record<string, unknown> } | undefined;
  if (!custom || typeof custom !== 'object') return undefined;
  const type = custom.type ?? {};
  if (!type.key && !type.id) throw missing('custom -> type');
  return {
    type: type.id ? { typeId: 'type', id: type.id } : typeRef(type.key!),
    fields: clone(custom.fields ?? {}),
  };
}

export type CheckoutAnswer = { status: number; body: unknown };

export class Checkout {
  readonly carts = new Map<string, Cart>();
  readonly products = new Map<string, Product>();
  readonly standalonePrices = new Map<string, StandalonePrice>();
  readonly customObjects = new Map<string, CustomObject>();

  constructor(private readonly store: OrderManagementStore) {}

  /** The collections `GET /{resource}?where=` queries. */
  collection(resource: string): Iterable<unknown> | undefined {
    if (resource === 'carts') return this.carts.values();
    if (resource === 'standalone-prices') return this.standalonePrices.values();
    if (resource === 'custom-objects') return this.customObjects.values();
    return undefined;
  }

  /**
   * Answers the checkout requests; undefined for any other request (the store's resources). `path` is
   * the path after the project key, decoded.
   */
  handle(method: string, path: string[], search: URLSearchParams, body: unknown): CheckoutAnswer | undefined {
    const [resource, id, ...rest] = path;
    if (resource === 'custom-objects') {
      if (method === 'GET' && id !== undefined && rest.length === 1) {
        const found = this.customObjects.get(`${id}/${rest[0]}`);
        if (!found)
          throw new CtError(
            404,
            'ResourceNotFound',
            `The CustomObject with ID '${id}/${rest[0]}' was not found.`,
          );
        return { status: 200, body: found };
      }
      if (method === 'POST' && id === undefined) return this.writeCustomObject(body);
      return undefined;
    }
    if (resource === 'carts' && rest.length === 0) {
      if (method === 'POST' && id === undefined) return { status: 201, body: this.createCart(body) };
      if (method === 'GET' && id !== undefined) {
        const found = id.startsWith('key=')
          ? [...this.carts.values()].find((c) => c.key === id.slice(4))
          : this.carts.get(id);
        if (!found) throw notFound(id);
        return { status: 200, body: found };
      }
      if (method === 'POST' && id !== undefined) {
        const update = (body ?? {}) as { version?: unknown; actions?: unknown };
        return { status: 200, body: this.updateCart(id, update.version, update.actions) };
      }
      if (method === 'DELETE' && id !== undefined) {
        const cart = this.carts.get(id);
        if (!cart) throw notFound(id);
        const version = Number(search.get('version'));
        if (!search.has('version') || !Number.isInteger(version))
          throw invalidInput('version: Missing required value');
        if (version !== cart.version) throw conflict(id, version, cart.version);
        this.carts.delete(id);
        return { status: 200, body: cart };
      }
      return undefined;
    }
    if (method === 'POST' && id === undefined && rest.length === 0) {
      if (resource === 'orders') return { status: 201, body: this.createOrderFromCart(body) };
      if (resource === 'payments') return { status: 201, body: this.createPayment(body) };
      if (resource === 'customers') return { status: 201, body: { customer: this.createCustomer(body) } };
    }
    return undefined;
  }

  private writeCustomObject(body: unknown): CheckoutAnswer {
    const draft = (body ?? {}) as { container?: unknown; key?: unknown; value?: unknown; version?: unknown };
    if (typeof draft.container !== 'string' || !/^[-_~.a-zA-Z0-9]+$/.test(draft.container))
      throw missing('container');
    if (typeof draft.key !== 'string' || !/^[-_~.a-zA-Z0-9]+$/.test(draft.key)) throw missing('key');
    if (draft.value === undefined) throw missing('value');
    const id = `${draft.container}/${draft.key}`;
    const current = this.customObjects.get(id);
    const now = new Date().toISOString();
    // With a version: an update of exactly that version (0: creation only); without: create or overwrite.
    if (draft.version !== undefined) {
      const expected = draft.version;
      if (current ? expected !== current.version : expected !== 0)
        throw conflict(id, expected, current?.version ?? 0);
    }
    const next: CustomObject = current
      ? { ...current, value: clone(draft.value), version: current.version + 1, lastModifiedAt: now }
      : {
          id: randomUUID(),
          version: 1,
          container: draft.container,
          key: draft.key,
          value: clone(draft.value),
          createdAt: now,
          lastModifiedAt: now,
        };
    this.customObjects.set(id, next);
    return { status: current ? 200 : 201, body: next };
  }

  private createCart(body: unknown): Cart {
    const draft = (body ?? {}) as Record<string, unknown>;
    if (typeof draft.currency !== 'string' || !/^[A-Z]{3}$/.test(draft.currency)) throw missing('currency');
    const currency = draft.currency;
    if (draft.key !== undefined) {
      if (typeof draft.key !== 'string' || !KEY.test(draft.key))
        throw invalidInput(`Invalid key '${String(draft.key)}'.`);
      const taken = [...this.carts.values()].find((c) => c.key === draft.key);
      if (taken) throw duplicate('key', draft.key, { typeId: 'cart', id: taken.id });
    }
    let customer: Customer | undefined;
    if (draft.customerId !== undefined) {
      customer = this.store.customers.get(String(draft.customerId));
      if (!customer)
        throw new CtError(
          400,
          'ReferencedResourceNotFound',
          `The referenced object of type 'customer' with ID '${String(draft.customerId)}' was not found.`,
          {
            typeId: 'customer',
            id: draft.customerId,
          },
        );
    }
    const drafts = Array.isArray(draft.lineItems) ? (draft.lineItems as Array<Record<string, unknown>>) : [];
    const initial = this.store.stateByKey(LINE_ITEM_STATE_KEYS.INITIAL)!;
    const lineItems = drafts.map((line): LineItem => {
      const product = typeof line.sku === 'string' ? this.products.get(line.sku) : undefined;
      if (!product) throw invalidInput(`No published product with an sku '${String(line.sku)}' exists.`);
      const quantity = line.quantity === undefined ? 1 : Number(line.quantity);
      if (!Number.isInteger(quantity) || quantity < 1)
        throw invalidInput('quantity must be a positive integer.');
      const external = line.externalPrice as { currencyCode?: unknown; centAmount?: unknown } | undefined;
      let price: Money;
      if (external) {
        if (external.currencyCode !== currency)
          throw invalidInput(`The external price's currency must be the cart's currency ${currency}.`);
        if (!Number.isInteger(external.centAmount) || (external.centAmount as number) < 0)
          throw invalidInput('externalPrice -> centAmount must be a non-negative integer.');
        price = money(external.centAmount as number, currency);
      } else {
        const standalone = [...this.standalonePrices.values()].find(
          (p) => p.sku === product.sku && p.value.currencyCode === currency,
        );
        if (!standalone) throw invalidInput(`No price in ${currency} for the sku '${product.sku}'.`);
        price = clone(standalone.value);
      }
      return {
        id: randomUUID(),
        productId: product.id,
        name: clone(product.name),
        variant: { id: 1, sku: product.sku, attributes: [{ name: 'mode', value: product.mode }] },
        price: { id: randomUUID(), value: price },
        quantity,
        totalPrice: money(price.centAmount * quantity, currency),
        state: [{ quantity, state: { typeId: 'state', id: initial.id } }],
        ...(line.custom ? { custom: customFrom(line.custom) } : {}),
      };
    });
    const now = new Date().toISOString();
    const cart: Cart = {
      id: randomUUID(),
      version: 1,
      ...(draft.key !== undefined ? { key: draft.key as string } : {}),
      createdAt: now,
      lastModifiedAt: now,
      ...(customer ? { customerId: customer.id } : {}),
      ...(typeof draft.customerEmail === 'string'
        ? { customerEmail: draft.customerEmail }
        : customer
          ? { customerEmail: customer.email }
          : {}),
      cartState: 'Active',
      lineItems,
      totalPrice: money(
        lineItems.reduce((sum, l) => sum + l.totalPrice.centAmount, 0),
        currency,
      ),
      ...(draft.custom ? { custom: customFrom(draft.custom) } : {}),
    };
    this.carts.set(cart.id, cart);
    return cart;
  }

  private updateCart(id: string, version: unknown, actions: unknown): Cart {
    const current = this.carts.get(id);
    if (!current) throw notFound(id);
    if (typeof version !== 'number') throw missing('version');
    if (!Array.isArray(actions)) throw missing('actions');
    if (version !== current.version) throw conflict(id, version, current.version);
    const next = clone(current);
    for (const raw of actions as UpdateAction[]) {
      const action = (raw ?? {}) as UpdateAction;
      switch (action.action) {
        case 'addPayment': {
          const ref = (action.payment ?? {}) as { id?: string };
          if (!ref.id || !this.store.payments.has(ref.id))
            throw new CtError(
              400,
              'ReferencedResourceNotFound',
              `The referenced object of type 'payment' with ID '${String(ref.id)}' was not found.`,
              {
                typeId: 'payment',
                id: ref.id,
              },
            );
          next.paymentInfo ??= { payments: [] };
          next.paymentInfo.payments.push({ typeId: 'payment', id: ref.id });
          break;
        }
        case 'setBillingAddress':
        case 'setShippingAddress': {
          const address = action.address as { country?: unknown } | undefined;
          const field = action.action === 'setBillingAddress' ? 'billingAddress' : 'shippingAddress';
          if (!address) delete next[field];
          else if (
            typeof address.country !== 'string' ||
            !/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/.test(address.country)
          )
            throw invalidInput(`address -> country: '${String(address.country)}' is not a country code.`);
          else next[field] = { country: address.country };
          break;
        }
        case 'setCustomField': {
          if (!next.custom) throw invalidOperation('The cart has no custom type.');
          if (typeof action.name !== 'string') throw missing('name');
          if (action.value === undefined || action.value === null) delete next.custom.fields[action.name];
          else next.custom.fields[action.name] = clone(action.value);
          break;
        }
        default:
          throw new CtError(400, 'InvalidJsonInput', 'Request body does not contain valid JSON.', {
            detailedErrorMessage: `actions -> action: Unknown action '${String(action.action)}' for a cart`,
          });
      }
    }
    next.version = current.version + 1;
    next.lastModifiedAt = new Date().toISOString();
    this.carts.set(id, next);
    return next;
  }

  private createOrderFromCart(body: unknown): Order {
    const draft = (body ?? {}) as Record<string, unknown>;
    const ref = (draft.cart ?? {}) as { id?: unknown };
    const cart = typeof ref.id === 'string' ? this.carts.get(ref.id) : undefined;
    if (!cart)
      throw new CtError(
        400,
        'ReferencedResourceNotFound',
        `The referenced object of type 'cart' with ID '${String(ref.id)}' was not found.`,
        {
          typeId: 'cart',
          id: ref.id,
        },
      );
    if (typeof draft.version !== 'number') throw missing('version');
    if (draft.version !== cart.version) throw conflict(cart.id, draft.version, cart.version);
    if (cart.cartState !== 'Active')
      throw invalidOperation(`Cart '${cart.id}' is not active (${cart.cartState}).`);
    const orderNumber = draft.orderNumber;
    if (orderNumber !== undefined) {
      if (typeof orderNumber !== 'string' || !orderNumber)
        throw invalidInput('orderNumber must be a string.');
      const taken = [...this.store.orders.values()].find((o) => o.orderNumber === orderNumber);
      if (taken) throw duplicate('orderNumber', orderNumber, { typeId: 'order', id: taken.id });
    }
    const states: Order['orderState'][] = ['Open', 'Confirmed', 'Complete', 'Cancelled'];
    const orderState = (draft.orderState ?? 'Open') as Order['orderState'];
    if (!states.includes(orderState)) throw invalidInput(`orderState: Unknown value '${String(orderState)}'`);
    const now = new Date().toISOString();
    const order: Order & Record<string, unknown> = {
      id: randomUUID(),
      version: 1,
      createdAt: now,
      lastModifiedAt: now,
      ...(typeof orderNumber === 'string' ? { orderNumber } : {}),
      ...(cart.customerId ? { customerId: cart.customerId } : {}),
      ...(cart.customerEmail ? { customerEmail: cart.customerEmail } : {}),
      orderState,
      paymentState: typeof draft.paymentState === 'string' ? draft.paymentState : undefined,
      shipmentState: typeof draft.shipmentState === 'string' ? draft.shipmentState : undefined,
      cart: { typeId: 'cart', id: cart.id },
      totalPrice: clone(cart.totalPrice),
      lineItems: clone(cart.lineItems),
      ...(cart.paymentInfo ? { paymentInfo: clone(cart.paymentInfo) } : {}),
      ...(cart.billingAddress ? { billingAddress: clone(cart.billingAddress) } : {}),
      ...(cart.shippingAddress ? { shippingAddress: clone(cart.shippingAddress) } : {}),
      returnInfo: [],
      ...(cart.custom ? { custom: clone(cart.custom) } : {}),
    };
    this.carts.set(cart.id, {
      ...cart,
      cartState: 'Ordered',
      version: cart.version + 1,
      lastModifiedAt: now,
    });
    this.store.orders.set(order.id, order);
    return order;
  }

  private createPayment(body: unknown): Payment {
    const draft = (body ?? {}) as Record<string, unknown>;
    const planned = (draft.amountPlanned ?? {}) as { centAmount?: unknown; currencyCode?: unknown };
    if (!Number.isInteger(planned.centAmount) || typeof planned.currencyCode !== 'string')
      throw missing('amountPlanned');
    if (draft.key !== undefined) {
      if (typeof draft.key !== 'string' || !KEY.test(draft.key))
        throw invalidInput(`Invalid key '${String(draft.key)}'.`);
      const taken = [...this.store.payments.values()].find((p) => p.key === draft.key);
      if (taken) throw duplicate('key', draft.key, { typeId: 'payment', id: taken.id });
    }
    const now = new Date().toISOString();
    const transactions = (Array.isArray(draft.transactions) ? draft.transactions : []).map(
      (raw): Transaction => {
        const t = raw as Record<string, unknown>;
        const amount = (t.amount ?? {}) as { centAmount?: unknown; currencyCode?: unknown };
        if (!Number.isInteger(amount.centAmount) || typeof amount.currencyCode !== 'string')
          throw missing('transactions -> amount');
        return {
          id: randomUUID(),
          timestamp: typeof t.timestamp === 'string' ? t.timestamp : now,
          type: t.type as Transaction['type'],
          amount: money(amount.centAmount as number, amount.currencyCode),
          ...(typeof t.interactionId === 'string' ? { interactionId: t.interactionId } : {}),
          state: (t.state as Transaction['state']) ?? 'Initial',
        };
      },
    );
    const method = (draft.paymentMethodInfo ?? {}) as Payment['paymentMethodInfo'];
    const status = (draft.paymentStatus ?? {}) as Payment['paymentStatus'];
    const payment: Payment & { custom?: CustomFields } = {
      id: randomUUID(),
      version: 1,
      createdAt: now,
      lastModifiedAt: now,
      ...(draft.key !== undefined ? { key: draft.key as string } : {}),
      ...(typeof draft.interfaceId === 'string' ? { interfaceId: draft.interfaceId } : {}),
      amountPlanned: money(planned.centAmount as number, planned.currencyCode),
      paymentMethodInfo: clone(method),
      paymentStatus: clone(status),
      transactions,
      ...(draft.custom ? { custom: customFrom(draft.custom) } : {}),
    };
    this.store.payments.set(payment.id, payment);
    return payment;
  }

  private createCustomer(body: unknown): Customer {
    const draft = (body ?? {}) as Record<string, unknown>;
    if (typeof draft.email !== 'string' || !draft.email) throw missing('email');
    const email = draft.email;
    const customers = [...this.store.customers.values()];
    const sameEmail = customers.find((c) => c.email.toLowerCase() === email.toLowerCase());
    if (sameEmail)
      throw new CtError(
        400,
        'DuplicateField',
        `There is already an existing customer with the provided email.`,
        {
          field: 'email',
          duplicateValue: email,
          conflictingResource: { typeId: 'customer', id: sameEmail.id },
        },
      );
    if (draft.key !== undefined) {
      if (typeof draft.key !== 'string' || !KEY.test(draft.key))
        throw invalidInput(`Invalid key '${String(draft.key)}'.`);
      const taken = customers.find((c) => c.key === draft.key);
      if (taken) throw duplicate('key', draft.key, { typeId: 'customer', id: taken.id });
    }
    const now = new Date().toISOString();
    const customer: Customer = {
      id: randomUUID(),
      version: 1,
      createdAt: now,
      lastModifiedAt: now,
      ...(draft.key !== undefined ? { key: draft.key as string } : {}),
      email,
      ...(typeof draft.firstName === 'string' ? { firstName: draft.firstName } : {}),
      ...(typeof draft.lastName === 'string' ? { lastName: draft.lastName } : {}),
      authenticationMode: draft.authenticationMode === 'Password' ? 'Password' : 'ExternalAuth',
      ...(draft.custom ? { custom: customFrom(draft.custom) } : {}),
    };
    this.store.customers.set(customer.id, customer);
    return customer;
  }

  /** Loads the catalogue, active carts, dangling mobile payments and custom objects. */
  seed(data: CheckoutSeed) {
    const now = new Date().toISOString();
    for (const p of data.products ?? []) {
      this.products.set(p.sku, {
        id: randomUUID(),
        sku: p.sku,
        name: { 'en-US': p.title },
        mode: p.mode ?? 'verified',
      });
      for (const [id, price] of this.standalonePrices)
        if (price.sku === p.sku && price.value.currencyCode === 'USD') this.standalonePrices.delete(id);
      const price: StandalonePrice = {
        id: randomUUID(),
        version: 1,
        sku: p.sku,
        value: money(p.usdCents, 'USD'),
        active: true,
        createdAt: now,
        lastModifiedAt: now,
      };
      this.standalonePrices.set(price.id, price);
    }
    for (const o of data.customObjects ?? [])
      this.writeCustomObject({ container: o.container, key: o.key, value: o.value });
    const payments: Payment[] = [];
    for (const p of data.mobilePayments ?? []) {
      const payment = this.createPayment(mobilePaymentDraft(p.method, p.transactionId, p.usdCents));
      if (p.id) {
        this.store.payments.delete(payment.id);
        payment.id = p.id;
        this.store.payments.set(p.id, payment);
      }
      payments.push(payment);
    }
    const carts: Cart[] = [];
    for (const c of data.carts ?? []) {
      const customer = [...this.store.customers.values()].find(
        (x) => x.custom?.fields.lmsUserId === c.lmsUserId,
      );
      if (!customer) throw new Error(`No customer with LMS user id ${c.lmsUserId} for a seeded cart`);
      const cart = this.createCart({ currency: 'USD', customerId: customer.id, lineItems: [{ sku: c.sku }] });
      if (c.id) {
        this.carts.delete(cart.id);
        cart.id = c.id;
        this.carts.set(c.id, cart);
      }
      carts.push(cart);
    }
    return { mobilePayments: payments, carts };
  }
}

/** A mobile in-app purchase payment as the reference records it (also the Plugin's draft). */
export function mobilePaymentDraft(
  method: 'ios_iap' | 'android_iap',
  transactionId: string,
  usdCents: number,
) {
  const amount = { currencyCode: 'USD', centAmount: usdCents };
  return {
    key: transactionId.replace(/[^A-Za-z0-9_-]/g, '_'),
    interfaceId: transactionId,
    amountPlanned: amount,
    paymentMethodInfo: { paymentInterface: `${method}_edx`, method },
    paymentStatus: { interfaceCode: 'succeeded' },
    transactions: [{ type: 'Charge', amount, interactionId: transactionId, state: 'Success' }],
  };
}
