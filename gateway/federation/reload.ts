import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/**
 * Calls `changed` once a burst of changes to any of `files` has settled for `debounceMs`. Watches the
 * files' directories, not the files: an editor or `kubectl` replacing a file by a rename would leave a
 * watch on the file itself watching the old inode.
 */
export function watchFiles(
  files: readonly string[],
  changed: () => void,
  { debounceMs = 200 }: { debounceMs?: number } = {},
): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const byDir = new Map<string, Set<string>>();
  for (const file of files.map((f) => resolve(f)))
    byDir.set(dirname(file), (byDir.get(dirname(file)) ?? new Set()).add(basename(file)));
  const watchers: FSWatcher[] = [...byDir].map(([dir, names]) =>
    watch(dir, (_event, name) => {
      if (name !== null && !names.has(name)) return;
      clearTimeout(timer);
      timer = setTimeout(changed, debounceMs);
    }),
  );
  return {
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/**
 * Runs `reload` one at a time: a trigger while one runs schedules a single run after it (whatever
 * number of triggers came meanwhile), which reads the files as they are then. Each trigger's promise
 * settles with the run that saw its change.
 */
export function serialized<T>(reload: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let next: Promise<T> | undefined;
  const run = (): Promise<T> => {
    const current = reload().finally(() => {
      if (running === current) running = undefined;
    });
    return (running = current);
  };
  return () => {
    if (!running) return run();
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return run();
      });
    return next;
  };
}
