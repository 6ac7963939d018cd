// The web page at `/` in a real headless browser (Debian's chromium driven by puppeteer-core): generate
// an image and watch it form (progress, previews, the final image), then drop that image on the page
// and ask about it; what the page shows must be what the API gives for the same request. Without
// chromium this test is skipped, unless LATTE_REQUIRE_BROWSER=1 (CI), where that is a failure.
import test from 'ava';
import fs from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';
import { createServer, SHIPPED_MODEL, type LatteServer } from '../lib/index.ts';
import { json, post } from './helpers/serve.ts';

// LATTE_CHROMIUM names another browser binary (or, set to a missing path, shows what happens without one)
const CHROMIUM = (process.env.LATTE_CHROMIUM ? [process.env.LATTE_CHROMIUM] : ['/usr/bin/chromium', '/usr/bin/chromium-browser']).find((p) => fs.existsSync(p));
const PROMPT = 'a red circle to the left of a blue square';
const QUESTION = 'what colour is the circle?';

if (!CHROMIUM && process.env.LATTE_REQUIRE_BROWSER !== '1') {
  test.skip('the page in a headless browser (skipped: chromium is not installed; apt-get install chromium)', () => {});
} else {
  let app: LatteServer;
  let url: string;
  let browser: Browser;

  test.before(async () => {
    if (!CHROMIUM) throw new Error('LATTE_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)');
    app = await createServer({ model: SHIPPED_MODEL, load: { threads: 1 } });
    url = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], protocolTimeout: 60_000 });
  });

  test.after.always(async () => {
    await browser?.close();
    await app?.close();
  });

  test.serial('generate an image and ask about it through the page', async (t) => {
    const page = await browser.newPage();
    t.teardown(() => page.close());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${url}/`);
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
    t.regex(await page.$eval('#status', (e) => e.textContent ?? ''), /latte-flow-shapes ready/);

    // every kind the image element shows, in order (previews while it forms, then the final image);
    // page-side code is a string: this file is type-checked without the DOM's types
    await page.evaluate(`(() => {
      const img = document.getElementById('image');
      window.kinds = [];
      new MutationObserver(() => window.kinds.push(img.dataset.kind)).observe(img, { attributes: true, attributeFilter: ['src'] });
    })()`);
    await page.$eval('#prompt', (e) => ((e as unknown as { value: string }).value = ''));
    await page.type('#prompt', PROMPT);
    await page.type('#steps', '12');
    await page.$eval('#seed', (e) => ((e as unknown as { value: string }).value = '3'));
    await page.click('#generate');
    await page.waitForSelector('#gen[data-state="done"]', { timeout: 60_000 });
    const shown = (await page.evaluate(`(({ src, naturalWidth, dataset }) => ({ src, width: naturalWidth, kind: dataset.kind }))(document.getElementById('image'))`)) as { src: string; width: number; kind: string };
    t.is(shown.kind, 'final');
    t.is(shown.width, 64);
    const api = await json(await post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 12, seed: 3 }));
    t.is(shown.src, `data:image/png;base64,${api.data[0].b64_json}`, 'the page shows the image the API makes');
    const kinds = (await page.evaluate('window.kinds')) as string[];
    t.true(kinds.filter((k) => k === 'preview').length >= 1, `previews shown while it formed: ${kinds.join(', ')}`);
    t.is(kinds.at(-1), 'final');
    t.is(await page.$eval('#progress', (e) => e.textContent), 'done: 12 steps, seed 3');
    t.is(await page.evaluate(`document.getElementById('bar').value`), 12);

    // drop the image on the drop zone, as a user drags a file in
    await page.evaluate(`(() => {
      const bytes = Uint8Array.from(atob(${JSON.stringify(api.data[0].b64_json)}), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'shapes.png', { type: 'image/png' }));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    await page.waitForSelector('#ask-image');
    await page.$eval('#question', (e) => ((e as unknown as { value: string }).value = ''));
    await page.type('#question', QUESTION);
    await page.click('#ask-button');
    await page.waitForSelector('#ask[data-state="done"]', { timeout: 60_000 });
    const answer = await page.$eval('#answer', (e) => e.textContent);
    const want = await json(
      await post(`${url}/v1/chat/completions`, {
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${api.data[0].b64_json}` } }, { type: 'text', text: QUESTION }] }],
        max_tokens: 64,
      }),
    );
    t.truthy(answer);
    t.is(answer, want.choices[0].message.content, 'the page shows the answer the API gives');
    t.is(await page.$eval('#ask-error', (e) => e.textContent), '');
    t.deepEqual(errors, []);
  });

  test.serial('the page shows the API’s error message', async (t) => {
    const page = await browser.newPage();
    t.teardown(() => page.close());
    await page.goto(`${url}/`);
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
    await page.$eval('#steps', (e) => ((e as unknown as { value: string }).value = '0')); // the server refuses steps 0
    await page.$eval('#steps', (e) => e.removeAttribute('min'));
    await page.click('#generate');
    await page.waitForSelector('#gen[data-state="error"]', { timeout: 30_000 });
    t.regex(await page.$eval('#gen-error', (e) => e.textContent ?? ''), /steps/);
  });
}
