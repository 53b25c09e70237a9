// Loads Prisma's schema engine (the WebAssembly build) without Node's --experimental-wasm-modules flag.
//
// The package's main entry does `import * as wasm from "./schema_engine_bg.wasm"`, which Node 20 only
// accepts behind that flag. Its `_bg` module holds all the JavaScript glue and takes the instance
// through `__wbg_set_wasm`, so instantiating the .wasm ourselves with the `_bg` module as its import
// object is exactly what the main entry does, minus the flag. The gateway applies migrations at
// start-up, so it must not depend on a Node flag.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg';

export type { SchemaEngine } from '@prisma/schema-engine-wasm/schema_engine_bg';

interface EngineExports {
  __wbindgen_start(): void;
}

// The project's `lib` has no DOM and @types/node 20 does not declare WebAssembly; only this much is used.
interface WasmRuntime {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, Record<string, unknown>>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
const { WebAssembly: wasmRuntime } = globalThis as unknown as { WebAssembly: WasmRuntime };

/**
 * The glue module keeps the instance in a module variable, so there can only be one per process: a
 * second instantiation would swap the memory under engines created from the first. Hence one shared,
 * lazily started load (about 20 ms of compilation) rather than one per call.
 */
let loading: Promise<typeof glue> | undefined;

/** The schema engine's module, ready to `SchemaEngine.new(...)`. */
export function loadSchemaEngine(): Promise<typeof glue> {
  loading ??= instantiate().catch((error: unknown) => {
    loading = undefined;
    throw error;
  });
  return loading;
}

async function instantiate(): Promise<typeof glue> {
  const gluePath = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg');
  const bytes = await readFile(gluePath.replace(/\.js$/, '.wasm'));
  // The .wasm imports every glue function from the module named after the glue file.
  const { instance } = await wasmRuntime.instantiate(bytes, {
    './schema_engine_bg.js': withUnrefTimers(glue),
  });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports as unknown as EngineExports).__wbindgen_start();
  return glue;
}

/**
 * The engine arms a 10-second timer (its advisory-lock timeout) on every migration run and never clears
 * it: the glue imports `setTimeout` but no `clearTimeout`. That timer alone would keep a finished
 * process alive for 10 s. Unreferenced timers still fire while the engine works (its database sockets
 * keep the process alive then) but no longer hold the process open afterwards.
 */
function withUnrefTimers(module: typeof glue): Record<string, unknown> {
  const imports: Record<string, unknown> = { ...module };
  for (const [name, value] of Object.entries(imports)) {
    if (!name.startsWith('__wbg_setTimeout_') || typeof value !== 'function') continue;
    imports[name] = (...args: unknown[]) => {
      const timer: unknown = value(...args);
      (timer as { unref?: () => void } | undefined)?.unref?.();
      return timer;
    };
  }
  return imports;
}
