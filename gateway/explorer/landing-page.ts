import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { EXPLORER_PATH } from './route.js';

/**
 * Apollo Sandbox, as Apollo Server's local landing page embeds it from its CDN, falling back to the
 * bundled explorer on this origin when the CDN cannot be reached (offline, a firewall, a blocked
 * host): once the page has loaded without Sandbox, or after `fallbackAfterMs` without it, the browser
 * goes to the explorer.
 */
export function sandboxWithFallback<TContext extends BaseContext>(
  options: { fallbackAfterMs?: number } = {},
): ApolloServerPlugin<TContext> {
  const sandbox = ApolloServerPluginLandingPageLocalDefault({ footer: false, embed: true });
  const fallbackAfterMs = options.fallbackAfterMs ?? 8_000;
  return {
    async serverWillStart(service) {
      const listener = await sandbox.serverWillStart?.(service as never);
      const render = listener?.renderLandingPage;
      if (!render) throw new Error("Apollo Server's landing page plugin no longer renders a page");
      return {
        async renderLandingPage() {
          const page = await render();
          const html = page.html;
          return {
            html: async () => withFallback(typeof html === 'string' ? html : await html(), fallbackAfterMs),
          };
        },
      };
    },
  };
}

const FALLBACK_TEXT = /<p>Apollo Sandbox cannot be loaded;[^<]*<\/p>/;

/** Adds the fallback to Sandbox's page, with the page's own CSP nonce (its only way to run a script). */
export function withFallback(html: string, fallbackAfterMs: number): string {
  const nonce = /'nonce-([^']+)'/.exec(html)?.[1];
  const head = html.indexOf('</head>');
  if (!nonce || head < 0 || !FALLBACK_TEXT.test(html))
    throw new Error("Apollo Server's landing page changed: the explorer fallback cannot be added to it");
  const script = `<script nonce="${nonce}">
  (function () {
    var explorer = location.pathname.replace(/\\/(graphql\\/?)?$/, '') + '${EXPLORER_PATH}/';
    function fallBack() { if (!window.EmbeddedSandbox) location.replace(explorer); }
    addEventListener('load', fallBack);
    setTimeout(fallBack, ${fallbackAfterMs});
  })();
</script>
`;
  return (html.slice(0, head) + script + html.slice(head)).replace(
    FALLBACK_TEXT,
    `<p>Apollo Sandbox cannot be loaded from its CDN: opening the <a href="..${EXPLORER_PATH}/">bundled explorer</a>.</p>`,
  );
}
