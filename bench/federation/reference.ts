import { scenario } from './scenario.js';

/**
 * The response to the scenario's query, computed from data.json by the README's rules alone — no
 * GraphQL, no gateway — so the gateways' answers are checked against something none of them produced.
 */
export function referenceResponse(): { data: unknown } {
  const { users, products, inventory, reviews } = scenario.data;
  const productByUpc = new Map(products.map((p) => [p.upc, p]));
  const stock = new Map(inventory.map((i) => [i.upc, i.inStock]));
  const uri = users.find((u) => u.id === '1')!;
  const firstTwo = reviews.slice(0, 2);
  const reviewFields = (r: (typeof reviews)[number]) => ({ id: r.id, body: r.body });
  const productFields = (upc: string) => {
    const p = productByUpc.get(upc)!;
    return {
      inStock: stock.get(upc) ?? null,
      name: p.name,
      price: p.price,
      shippingEstimate: p.price > 1000 ? 0 : Math.trunc(p.weight / 2),
      upc: p.upc,
      weight: p.weight,
    };
  };
  const reviewsOf = (upc: string) => reviews.filter((r) => r.productUpc === upc);
  // Review.author is always user 1, username provided by reviews ('urigo'), name from accounts.
  const author = () => ({
    id: '1',
    username: 'urigo',
    name: uri.name,
    reviews: firstTwo.map((r) => ({ ...reviewFields(r), product: productFields(r.productUpc) })),
  });
  return {
    data: {
      users: users.map((u) => ({
        id: u.id,
        username: u.username,
        name: u.name,
        reviews: firstTwo.map((r) => ({
          ...reviewFields(r),
          product: {
            ...productFields(r.productUpc),
            reviews: reviewsOf(r.productUpc).map((pr) => ({ ...reviewFields(pr), author: author() })),
          },
        })),
      })),
      topProducts: products.slice(0, 5).map((p) => ({
        ...productFields(p.upc),
        reviews: reviewsOf(p.upc).map((r) => ({ ...reviewFields(r), author: author() })),
      })),
    },
  };
}
