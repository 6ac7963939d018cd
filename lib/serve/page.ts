/**
 * The web page at `/`: one static HTML file with its script inline (lib/serve/page.html, shipped in
 * the package as it is; no build step). Found from the package root, which is two folders above both
 * lib/serve/ (a checkout under tsx) and dist/serve/ (the built package).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PAGE_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'serve', 'page.html');

let page: string | undefined;

/** The page's HTML, read once. */
export function pageHtml(): string {
  page ??= fs.readFileSync(PAGE_FILE, 'utf8');
  return page;
}
