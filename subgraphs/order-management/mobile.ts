import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import {
  orderManagementClient,
  OrderManagementError,
  type CtCustomer,
  type CtLineItem,
  type CtOrder,
  type CtPayment,
  type CustomFields,
  type Money,
  type Reference,
  type UpdateAction,
} from './client.js';
import { lineState, moveLine } from './model.js';

/**
 * The order-management Actions of the mobile in-app purchase flow (reference §5.11): the learner's
 * customer, a fresh cart with the course run at the app's price and the next order number, the store
 * payment attached to it, and the order placed from it. Each is safe to retry as a flow step: a
 * retried step finds what it made before (the cart by a key derived from the step's idempotency key,
 * the order number it allocated, the payment by the purchase's transaction id, the order by its cart).
 *
 * One purchase never pays for two orders: the payment's key is the store's transaction id, which the
 * Service keeps unique, and the payment names the cart it pays for (custom field `cartId`), claimed with
 * optimistic concurrency; a payment whose cart is gone (a flow that failed after creating it) is
 * dangling and is claimed again by the next order of that purchase.
 */

export type MobileProcessor = 'ios_iap' | 'android_iap';

interface CtCart {
  id: string;
  version: number;
  key?: string;
  customerId?: string;
  cartState: 'Active' | 'Ordered' | 'Merged' | 'Frozen';
  lineItems: CtLineItem[];
  totalPrice: Money;
  paymentInfo?: { payments: Reference[] };
  custom?: CustomFields;
}
interface CtCustomObject {
  id: string;
  version: number;
  value: unknown;
}
type MobilePayment = CtPayment & { key?: string; custom?: CustomFields };

/** The custom object holding the order-number counter of the current year. */
export const ORDER_NUMBER_COUNTER = { container: 'coordinator', key: 'order-number' } as const;
/** Allocations remembered on the counter, so a retried step gets its number again. */
const REMEMBERED_ALLOCATIONS = 50;
const counterSchema = z.object({
  year: z.number().int(),
  counter: z.number().int().min(0),
  allocations: z.array(z.object({ key: z.string(), counter: z.number().int() })).default([]),
});

/** Custom types provisioned in the project (reference §6.2). */
const ORDER_TYPE = '2u-order';
const LINE_TYPE = 'lineItemsBundleCustomType';
const PAYMENT_TYPE = '2u-mobile-payment';

const badInput = (message: string) => new DomainError(ErrorCode.BAD_USER_INPUT, message);
const conflict = (message: string, details?: Record<string, unknown>) =>
  new DomainError(ErrorCode.CONFLICT, message, details);
/** The flow's cart is gone or was checked out elsewhere: CONFLICT, for the app to send the request again. */
const cartReplaced = (cartId: string) =>
  conflict('The cart of this order was replaced by another checkout of the learner; try again', { cartId });
const errorCode = (error: unknown) => (error instanceof OrderManagementError ? error.code : undefined);
const isStatus = (error: unknown, status: number) =>
  error instanceof OrderManagementError && error.status === status;

/** The payment key of a store transaction: the reference keeps [A-Za-z0-9_-] and replaces the rest. */
export const paymentKeyOf = (transactionId: string) => transactionId.replace(/[^A-Za-z0-9_-]/g, '_');

function api() {
  const client = orderManagementClient();
  return { client, ct: client.api, execute: client.execute };
}

async function getCart(cartId: string): Promise<CtCart | undefined> {
  const { ct, execute } = api();
  try {
    return await execute<CtCart>(`GET /carts/${cartId}`, ct.carts().withId({ ID: cartId }).get());
  } catch (error) {
    if (isStatus(error, 404)) return undefined;
    throw error;
  }
}

async function queryCarts(where: string, variables: Record<string, string>): Promise<CtCart[]> {
  const { ct, execute } = api();
  const queryArgs: Record<string, string | number> = { where, limit: 500 };
  for (const [name, value] of Object.entries(variables)) queryArgs[`var.${name}`] = value;
  const page = await execute<{ results: CtCart[] }>('GET /carts', ct.carts().get({ queryArgs }));
  return page.results;
}

/** Deletes a cart unless it was ordered; false when there was nothing to delete. */
async function deleteCart(cartId: string): Promise<boolean> {
  const { ct, execute } = api();
  for (let attempt = 1; ; attempt++) {
    const cart = await getCart(cartId);
    if (!cart || cart.cartState !== 'Active') return false;
    try {
      await execute(
        `DELETE /carts/${cartId}`,
        ct
          .carts()
          .withId({ ID: cartId })
          .delete({ queryArgs: { version: cart.version } }),
      );
      return true;
    } catch (error) {
      if (isStatus(error, 404)) return false;
      if (!(error instanceof OrderManagementError && error.isConflict) || attempt >= 6) throw error;
    }
  }
}

async function updateCart(cart: CtCart, actions: UpdateAction[]): Promise<CtCart> {
  const { ct, execute } = api();
  return execute<CtCart>(
    `POST /carts/${cart.id}`,
    ct
      .carts()
      .withId({ ID: cart.id })
      .post({ body: { version: cart.version, actions: actions as never } }),
  );
}

// ---- The learner as a customer ------------------------------------------------------------------

/** First name, and the rest as the last name, of a full name (the reference's rule). */
function namesOf(fullName: string | null | undefined): { firstName?: string; lastName?: string } {
  const parts = (fullName ?? '').trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return {};
  return { firstName: parts[0], ...(parts.length > 1 ? { lastName: parts.slice(1).join(' ') } : {}) };
}

export async function ensureMobileCustomer(
  input: { lmsUserId: number; username: string; email?: string | null; fullName?: string | null },
  ctx: ActionContext,
) {
  const { client, ct, execute } = api();
  const names = namesOf(input.fullName);
  const email = input.email?.trim() || undefined;
  const find = () =>
    client.query(
      'customers',
      'custom(fields(lmsUserId = :lmsUserId))',
      { lmsUserId: input.lmsUserId },
      { limit: 2 },
    );
  let found = await find();
  if (!found.length) {
    if (!email) throw badInput(`The LMS has no email for learner ${input.username}: no customer can be made`);
    try {
      const created = await execute<{ customer: CtCustomer }>(
        'POST /customers',
        ct.customers().post({
          body: {
            // One customer per learner, even when two of their first orders arrive at once.
            key: `lms-user-${input.lmsUserId}`,
            email,
            ...names,
            authenticationMode: 'ExternalAuth',
            custom: {
              type: { typeId: 'type', key: '2u-user_information' },
              fields: { lmsUserId: input.lmsUserId, lmsUsername: input.username },
            },
          },
        }),
      );
      return { customerId: created.customer.id, lmsUserId: input.lmsUserId, username: input.username, email };
    } catch (error) {
      if (errorCode(error) !== 'DuplicateField') throw error;
      found = await find();
      if (!found.length)
        throw conflict(`Another customer of the order management Service has the email of ${input.username}`);
    }
  }
  if (found.length > 1) throw conflict(`More than one customer has LMS user id ${input.lmsUserId}`);
  const customer = found[0]!;
  // The LMS is the source of the learner's names and email: what changed there is brought over.
  await client.updateWithRetry(
    'customers',
    customer.id,
    (current) => {
      const actions: UpdateAction[] = [];
      if (email && current.email !== email) actions.push({ action: 'changeEmail', email });
      if (names.firstName && current.firstName !== names.firstName)
        actions.push({ action: 'setFirstName', firstName: names.firstName });
      if (names.lastName && current.lastName !== names.lastName)
        actions.push({ action: 'setLastName', lastName: names.lastName });
      if (current.custom && current.custom.fields.lmsUsername !== input.username)
        actions.push({ action: 'setCustomField', name: 'lmsUsername', value: input.username });
      return actions;
    },
    { current: customer, correlationId: ctx.idempotencyKey },
  );
  return {
    customerId: customer.id,
    lmsUserId: input.lmsUserId,
    username: input.username,
    email: email ?? customer.email,
  };
}

/** Whether a cart is a mobile order's (createMobileCart's), not a web checkout's. */
const isMobileCart = (cart: CtCart) => cart.custom?.fields.mobileOrder === true;

/**
 * Deletes the customer's active web-checkout carts (one left behind): the mobile order gets a fresh
 * cart of its own. The carts of mobile orders are not touched: such a cart belongs to another mobile
 * order of the learner being made at the same moment (a second device, the app's queue of unfinished
 * purchases), already paid at the store; deleting it would leave that purchase without its order. Its
 * own flow deletes it if it fails (deleteMobileCart), or orders it.
 */
export async function replaceActiveCart(input: { customerId: string }) {
  const carts = await queryCarts('customerId = :customerId and cartState = "Active"', {
    customerId: input.customerId,
  });
  let replaced = 0;
  for (const cart of carts) if (!isMobileCart(cart) && (await deleteCart(cart.id))) replaced += 1;
  return { replacedCarts: replaced };
}

// ---- The order number ---------------------------------------------------------------------------

/**
 * The next order number, 2U-<year><6 digits>: a counter in a custom object, back to 1 in a new year,
 * written at the version it was read (two flows never get the same number). A retried step answers the
 * number it allocated, found by its idempotency key among the last allocations.
 */
export async function nextOrderNumber(_input: Record<string, never>, ctx: ActionContext) {
  const { ct, execute } = api();
  const object = ct.customObjects().withContainerAndKey(ORDER_NUMBER_COUNTER);
  for (let attempt = 1; ; attempt++) {
    let current: CtCustomObject | undefined;
    try {
      current = await execute<CtCustomObject>('GET /custom-objects', object.get());
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
    }
    const year = new Date().getUTCFullYear();
    const parsed = current ? counterSchema.safeParse(current.value) : undefined;
    if (parsed && !parsed.success)
      throw new Error(
        `The order-number counter (custom object ${ORDER_NUMBER_COUNTER.container}/${ORDER_NUMBER_COUNTER.key}) is not { year, counter }`,
      );
    const value = parsed?.data;
    const thisYear = value?.year === year ? value : undefined;
    const mine = ctx.idempotencyKey && thisYear?.allocations.find((a) => a.key === ctx.idempotencyKey);
    if (mine) return { orderNumber: formatOrderNumber(year, mine.counter) };
    let counter = (thisYear?.counter ?? 0) + 1;
    // Numbers that orders already have (placed by another system, or before the counter) are skipped.
    for (let skipped = 0; await orderNumberTaken(formatOrderNumber(year, counter)); skipped++) {
      if (skipped >= 1000) throw new Error(`The counter of ${year} is far behind the order numbers in use`);
      counter += 1;
    }
    if (counter > 999_999) throw new Error(`The order numbers of ${year} are used up (999999)`);
    try {
      await execute(
        'POST /custom-objects',
        ct.customObjects().post({
          body: {
            ...ORDER_NUMBER_COUNTER,
            value: {
              year,
              counter,
              allocations: [
                ...(thisYear?.allocations ?? []),
                ...(ctx.idempotencyKey ? [{ key: ctx.idempotencyKey, counter }] : []),
              ].slice(-REMEMBERED_ALLOCATIONS),
            },
            // 0: only if nobody created it meanwhile.
            version: current?.version ?? 0,
          },
        }),
      );
      return { orderNumber: formatOrderNumber(year, counter) };
    } catch (error) {
      if (!(error instanceof OrderManagementError && error.isConflict) || attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}

async function orderNumberTaken(orderNumber: string): Promise<boolean> {
  return (
    (await orderManagementClient().get('orders', `order-number=${encodeURIComponent(orderNumber)}`)) !==
    undefined
  );
}

export const formatOrderNumber = (year: number, counter: number) =>
  `2U-${year}${String(counter).padStart(6, '0')}`;

// ---- The cart -----------------------------------------------------------------------------------

/** Minor units of a decimal amount in `currency` (half up); BAD_USER_INPUT when it is not one. */
export function minorUnits(price: string, currency: string): number {
  let digits: number;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits!;
  } catch {
    throw badInput(`currencyCode '${currency}' is not an ISO 4217 currency`);
  }
  const match = /^(\d{1,12})(?:\.(\d{1,5}))?$/.exec(price.trim());
  if (!match) throw badInput(`price '${price}' is not a decimal amount with at most 5 decimals`);
  const fraction = (match[2] ?? '').padEnd(5, '0');
  const units = BigInt(match[1]!) * 10n ** BigInt(digits) + BigInt(fraction.slice(0, digits) || '0');
  const roundUp = Number(fraction.slice(digits, digits + 1) || '0') >= 5;
  const cents = Number(units + (roundUp ? 1n : 0n));
  if (!Number.isSafeInteger(cents)) throw badInput(`price '${price}' is too large`);
  return cents;
}

/** The store product the app sold: `mobile.<ios|android>.usd<whole USD price>` (the reference's ids). */
export const storeProductId = (processor: MobileProcessor, usdCents: number) =>
  `mobile.${processor === 'ios_iap' ? 'ios' : 'android'}.usd${Math.trunc(usdCents / 100)}`;

export async function createMobileCart(
  input: {
    customerId: string;
    lmsUserId: number;
    username: string;
    email: string;
    orderNumber: string;
    courseRunKey: string;
    currencyCode: string;
    price: string;
    paymentProcessor: string;
  },
  ctx: ActionContext,
) {
  const processor = input.paymentProcessor as MobileProcessor;
  if (processor !== 'ios_iap' && processor !== 'android_iap')
    throw badInput(`paymentProcessor '${input.paymentProcessor}' is not ios_iap or android_iap`);
  const currency = input.currencyCode.toUpperCase();
  const centAmount = minorUnits(input.price, currency);
  const { ct, execute } = api();
  // The USD standalone price is what the store sold and what the payment records (reference step 4).
  const prices = await execute<{ results: Array<{ value: Money }> }>(
    'GET /standalone-prices',
    ct.standalonePrices().get({
      queryArgs: {
        where: 'sku = :sku and value(currencyCode = "USD")',
        'var.sku': input.courseRunKey,
        limit: 1,
      },
    }),
  );
  const usd = prices.results[0]?.value;
  if (!usd) throw badInput(`Course run ${input.courseRunKey} has no USD price: the apps do not sell it`);

  // The step's idempotency key names the cart, so a retried step finds the cart it made.
  const key = `mobile-${createHash('sha256')
    .update(ctx.idempotencyKey ?? randomUUID())
    .digest('hex')
    .slice(0, 40)}`;
  let cart: CtCart;
  try {
    cart = await execute<CtCart>(
      'POST /carts',
      ct.carts().post({
        body: {
          key,
          currency,
          customerId: input.customerId,
          customerEmail: input.email,
          lineItems: [
            {
              sku: input.courseRunKey,
              quantity: 1,
              externalPrice: { currencyCode: currency, centAmount },
              custom: {
                type: { typeId: 'type', key: LINE_TYPE },
                fields: { kind: 'COURSE', courseRunKey: input.courseRunKey },
              },
            },
          ],
          custom: {
            type: { typeId: 'type', key: ORDER_TYPE },
            fields: {
              lmsUserId: input.lmsUserId,
              lmsUsername: input.username,
              mobileOrder: true,
              orderNumber: input.orderNumber,
              emailDomain: input.email.split('@')[1] ?? '',
            },
          },
        } as never,
      }),
    );
  } catch (error) {
    if (errorCode(error) === 'DuplicateField') {
      cart = await execute<CtCart>('GET /carts/key', ct.carts().withKey({ key }).get());
    } else if (isStatus(error, 400)) {
      throw badInput(`The order management Service refused the cart: ${(error as Error).message}`);
    } else throw error;
  }
  return {
    cartId: cart.id,
    usdCentAmount: usd.centAmount,
    productId: storeProductId(processor, usd.centAmount),
  };
}

/**
 * Compensation of createMobileCart: the cart goes. A cart an order was placed from stays, and the
 * compensation is refused (CONFLICT): the order exists, so the flow ends FAILED for a retry to finish it
 * from its failed step, rather than COMPENSATED as if nothing had been made.
 */
export async function deleteMobileCart(input: { cartId: string }) {
  const cart = await getCart(input.cartId);
  if (cart?.cartState === 'Ordered') {
    const { client } = api();
    const [order] = await client.query('orders', 'cart(id = :cart)', { cart: cart.id }, { limit: 1 });
    throw conflict(`An order was placed from cart ${cart.id}: the cart is not deleted`, {
      cartId: cart.id,
      ...(order ? { orderId: order.id, orderNumber: order.orderNumber } : {}),
    });
  }
  return { cartDeleted: await deleteCart(input.cartId) };
}

// ---- The payment --------------------------------------------------------------------------------

export async function attachMobilePayment(
  input: {
    cartId: string;
    transactionId: string;
    paymentProcessor: string;
    usdCentAmount: number;
    regionCode?: string | null;
  },
  ctx: ActionContext,
) {
  const processor = input.paymentProcessor as MobileProcessor;
  if (processor !== 'ios_iap' && processor !== 'android_iap')
    throw badInput(`paymentProcessor '${input.paymentProcessor}' is not ios_iap or android_iap`);
  // A payment key is 2 to 256 characters for the Service: a transaction id outside that is no store's.
  if (input.transactionId.length < 2 || input.transactionId.length > 256)
    throw badInput('transactionId must be 2 to 256 characters');
  // No payment is made for a cart that does not exist (it would be left dangling). The flow made the
  // cart a step before, so it was deleted meanwhile (a checkout of the learner's elsewhere): a request
  // sent again makes a new one.
  if (!(await getCart(input.cartId))) throw cartReplaced(input.cartId);
  const { client, ct, execute } = api();
  const key = paymentKeyOf(input.transactionId);
  const claim = (cartId: string) => ({ type: { typeId: 'type', key: PAYMENT_TYPE }, fields: { cartId } });
  // Which order or cart holds it is not said: it may be another learner's (a token sent twice).
  const used = () =>
    conflict(`The purchase ${input.transactionId} already paid for another order`, {
      transactionId: input.transactionId,
    });

  let payment: MobilePayment | undefined;
  let reused = false;
  for (let attempt = 1; !payment; attempt++) {
    if (attempt > 10) throw new Error(`The payment of ${input.transactionId} kept changing; try again`);
    const [existing] = (await client.query(
      'payments',
      'key = :key',
      { key },
      { limit: 1 },
    )) as MobilePayment[];
    if (!existing) {
      try {
        payment = await execute<MobilePayment>(
          'POST /payments',
          ct.payments().post({
            body: {
              key,
              interfaceId: input.transactionId,
              amountPlanned: { currencyCode: 'USD', centAmount: input.usdCentAmount },
              paymentMethodInfo: { paymentInterface: `${processor}_edx`, method: processor },
              paymentStatus: { interfaceCode: 'succeeded' },
              transactions: [
                {
                  type: 'Charge',
                  amount: { currencyCode: 'USD', centAmount: input.usdCentAmount },
                  interactionId: input.transactionId,
                  state: 'Success',
                },
              ],
              custom: claim(input.cartId),
            } as never,
          }),
        );
      } catch (error) {
        // Another request for the same purchase created it first: decide on that one.
        if (errorCode(error) !== 'DuplicateField') throw error;
      }
      continue;
    }
    const holder = existing.custom?.fields.cartId;
    if (holder === input.cartId) {
      payment = existing;
      break;
    }
    // Paid for an order, or held by a cart still being checked out: not this order's to take.
    const orders = await client.query(
      'orders',
      'paymentInfo(payments(id = :payment))',
      { payment: existing.id },
      { limit: 1 },
    );
    if (orders[0]) throw used();
    const carts = await queryCarts('paymentInfo(payments(id = :payment))', { payment: existing.id });
    const other = carts.find((c) => c.id !== input.cartId);
    if (other) throw used();
    const holderCart = typeof holder === 'string' ? await getCart(holder) : undefined;
    if (holderCart) throw used();
    // Dangling: its flow failed after creating it. Claimed at its version, so only one order takes it.
    try {
      payment = await client.update(
        'payments',
        existing.id,
        existing.version,
        [
          existing.custom
            ? { action: 'setCustomField', name: 'cartId', value: input.cartId }
            : { action: 'setCustomType', ...claim(input.cartId) },
        ],
        ctx.idempotencyKey,
      );
      reused = true;
    } catch (error) {
      if (!(error instanceof OrderManagementError && error.isConflict)) throw error;
    }
  }

  for (let attempt = 1; ; attempt++) {
    const cart = await getCart(input.cartId);
    if (!cart || cart.cartState !== 'Active') {
      if (cart?.paymentInfo?.payments.some((p) => p.id === payment.id)) break;
      throw cartReplaced(input.cartId);
    }
    const actions: UpdateAction[] = [];
    if (!cart.paymentInfo?.payments.some((p) => p.id === payment.id))
      actions.push({ action: 'addPayment', payment: { typeId: 'payment', id: payment.id } });
    // Google tells the buyer's country; the reference records it as the addresses' country.
    const country = input.regionCode?.toUpperCase();
    if (country && /^[A-Z]{2}$/.test(country))
      actions.push(
        { action: 'setBillingAddress', address: { country } },
        { action: 'setShippingAddress', address: { country } },
      );
    if (!actions.length) break;
    try {
      await updateCart(cart, actions);
      break;
    } catch (error) {
      if (
        !(error instanceof OrderManagementError && (error.isConflict || error.status === 404)) ||
        attempt >= 6
      )
        throw error;
    }
  }
  return { paymentId: payment.id, paymentReused: reused };
}

// ---- The order ----------------------------------------------------------------------------------

export async function placeMobileOrder(input: { cartId: string }, ctx: ActionContext) {
  const { client, ct, execute } = api();
  let order: CtOrder | undefined;
  for (let attempt = 1; !order; attempt++) {
    const cart = await getCart(input.cartId);
    if (!cart) throw cartReplaced(input.cartId);
    if (cart.cartState === 'Ordered') {
      // A retried step: the order was placed from this cart before.
      [order] = await client.query('orders', 'cart(id = :cart)', { cart: cart.id }, { limit: 1 });
      if (!order) throw new Error(`Cart ${cart.id} is ordered, but no order names it`);
      break;
    }
    if (cart.cartState !== 'Active') throw conflict(`Cart ${cart.id} is ${cart.cartState}`);
    if (!cart.paymentInfo?.payments.length) throw conflict(`Cart ${cart.id} has no payment`);
    const orderNumber = String(cart.custom?.fields.orderNumber ?? '');
    if (!orderNumber) throw new Error(`Cart ${cart.id} has no order number`);
    try {
      const created = await execute<CtOrder>(
        'POST /orders',
        ct.orders().post({
          body: {
            cart: { typeId: 'cart', id: cart.id },
            version: cart.version,
            orderNumber,
            orderState: 'Complete',
            paymentState: 'Paid',
            shipmentState: 'Shipped',
          },
        }),
      );
      order = created;
    } catch (error) {
      if (error instanceof OrderManagementError && error.isConflict && attempt < 6) continue;
      if (errorCode(error) === 'DuplicateField')
        throw conflict(
          `Order number ${orderNumber} is taken: the order-number counter is behind the orders`,
          {
            orderNumber,
          },
        );
      if (errorCode(error) === 'ReferencedResourceNotFound') throw cartReplaced(input.cartId);
      throw error;
    }
  }
  // Every line to the fulfillment-pending state: the Service's message of that transition starts the
  // fulfillment (reference §5.3).
  const placed = await client.updateWithRetry(
    'orders',
    order.id,
    (current) =>
      current.lineItems.flatMap((line) => (lineState(line) === 'INITIAL' ? moveLine(line, 'PENDING') : [])),
    { correlationId: ctx.idempotencyKey },
  );
  return { orderId: placed.id, orderNumber: placed.orderNumber ?? order.orderNumber ?? '' };
}
