// The npm tarball as a user gets it: tools/pack-check.sh packs, installs into an empty project (no
// compiler runs), checks the bundled shared libraries resolve inside the package, and runs a CPU
// smoke test, also with the system copies of those libraries hidden. It needs prebuilds/ for this
// platform, which .ci/run makes with `npm run build:prebuilds` before the tests: without them this test
// fails (a missing prebuild is a packaging bug, not a reason to skip). pack-check runs once per ava run
// (test/helpers/pack-once.ts); test/readme.test.ts uses the same tarball.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { packCheckOnce, root } from './helpers/pack-once.ts';

const tuple = `${process.platform}-${process.arch}`;

test('npm tarball installs without compiling and runs on its bundled libraries', async (t) => {
  const dir = path.join(root, 'prebuilds', tuple);
  const addons = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
  if (addons.length === 0) {
    t.fail(`no prebuilt addon in prebuilds/${tuple}/: run \`npm run build:prebuilds\` before the tests`);
    return;
  }
  const r = await packCheckOnce();
  t.log(r.output.trim());
  t.is(r.error, undefined, `pack-check did not finish: ${r.error}`);
  t.is(r.status, 0, 'pack-check failed (see the log above)');
  t.regex(r.stdout, /^pack-check: ok$/m);
});
