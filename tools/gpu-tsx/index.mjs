// `node --import=tsx` on the GPU machine: registers hooks.mjs (see package.json's description).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
