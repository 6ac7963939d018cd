// Opens a checkpoint in its own process and loads every tensor on a CPU engine, so that a file
// which crashes the reader (a stack overflow, an out-of-bounds read) fails one test, not the
// suite. Prints one JSON line: {"ok": true} or {"code": "E_..."} (with the message).
import { Engine, LatteError, openCheckpoint } from '../../lib/index.ts';

const e = new Engine({ backend: 'cpu', threads: 1 });
try {
  const ck = openCheckpoint(process.argv[2]);
  for (const name of ck.names()) await e.load(ck, name).read();
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  const le = LatteError.from(err);
  console.log(JSON.stringify({ code: le.code, message: le.message }));
} finally {
  await e.dispose();
}
