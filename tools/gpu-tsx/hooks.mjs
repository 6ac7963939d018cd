// Module hooks that run this repository's TypeScript without esbuild: .ts files are transpiled one
// by one with typescript's transpileModule (types stripped, no checking: `npm run typecheck` does
// that where the code is written), and `./x.js` specifiers fall back to `./x.ts` as tsc resolves them.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const ts = createRequire(import.meta.url)('typescript');
const options = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  inlineSourceMap: true,
  useDefineForClassFields: true,
};

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js'))
      return next(`${specifier.slice(0, -3)}.ts`, context);
    throw err;
  }
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !/\.m?ts$/.test(url)) return next(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const out = ts.transpileModule(source, { fileName: new URL(url).pathname, compilerOptions: options });
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
