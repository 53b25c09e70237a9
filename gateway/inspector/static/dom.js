// @ts-check
// Building the page: every value from a record becomes a text node or a property, never markup, so an
// attacker's text in an input or an output shows as text (there is no innerHTML in the page).

/**
 * @typedef {Node | string | number | null | undefined | false} Child
 * @typedef {Child | Child[] | Child[][] | Child[][][]} Children
 * @typedef {Record<string, string | number | boolean | EventListener | null | undefined>} Attributes
 */

/**
 * An element with attributes (`on…` ones are listeners; `false`, null and undefined are left out) and
 * children (strings become text nodes; arrays, however nested, are flattened).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attributes} [attributes]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'href') element.setAttribute(name, safeHref(String(value)));
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/**
 * @param {Node} parent
 * @param {Children[]} children
 */
function append(parent, children) {
  for (const child of /** @type {Child[]} */ (children.flat(Infinity))) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/**
 * The page links only to its own views (`#/…`): anything else (a `javascript:` URL built from a
 * record) is dropped.
 * @param {string} href
 */
function safeHref(href) {
  return href.startsWith('#/') ? href : '#/';
}

/**
 * Replaces an element's children.
 * @param {Element} element
 * @param {...Children} children
 */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/**
 * An element of index.html, which the page cannot run without.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`index.html has no ${type.name} #${id}`);
  return element;
}

/**
 * A JSON value, pretty-printed as text.
 * @param {unknown} value
 */
export function json(value) {
  return h('pre', { class: 'json' }, value === undefined ? '' : JSON.stringify(value, null, 2));
}
