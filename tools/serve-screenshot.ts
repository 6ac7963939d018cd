/**
 * The README's picture of the page `latte-flow serve` serves: the shipped model draws the README's
 * main prompt, then the drawn image is dropped on the page and asked about. Needs Debian's chromium.
 *
 *   node --import=tsx tools/serve-screenshot.ts [docs/images/serve-page.png]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { createServer, SHIPPED_MODEL } from '../lib/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'docs/images/serve-page.png'));

const app = await createServer({ model: SHIPPED_MODEL });
const url = await app.listen({ port: 0, host: '127.0.0.1' });
const browser = await puppeteer.launch({ executablePath: process.env.LATTE_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 940, height: 455 });
  await page.goto(`${url}/`);
  await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
  await page.$eval('#seed', (e) => ((e as unknown as { value: string }).value = '7'));
  await page.click('#generate');
  await page.waitForSelector('#gen[data-state="done"]', { timeout: 60_000 });
  await page.click('#use-generated');
  await page.waitForSelector('#ask-image');
  await page.click('#ask-button');
  await page.waitForSelector('#ask[data-state="done"]', { timeout: 60_000 });
  await page.screenshot({ path: out as `${string}.png` });
  console.log(`${out}: the page after "${await page.$eval('#prompt', (e) => (e as unknown as { value: string }).value)}" and its answer "${await page.$eval('#answer', (e) => e.textContent)}"`);
} finally {
  await browser.close();
  await app.close();
}
