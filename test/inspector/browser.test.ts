import { describe, expect, it } from 'vitest';
import { launchChromium } from '../support/browser.js';

describe('the browser tests', () => {
  it('fail saying how to install Chromium when it is missing, never skip', async () => {
    await expect(launchChromium('/nonexistent/chromium')).rejects.toThrow(
      "Chromium is not installed at /nonexistent/chromium: install Debian's package with `apt-get install chromium`",
    );
  });
});
