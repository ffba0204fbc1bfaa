// Cleanup registry for the test bed: everything the bed creates (namespaces, daemons, temp dirs) registers
// an undo step here the moment it exists, so a failed test, an exception or Ctrl-C still leaves nothing behind.
// Steps run last-in-first-out. Each step has a synchronous form because process 'exit' handlers cannot await.

export interface CleanupStep {
  label: string;
  run: () => void | Promise<void>;
  /** Synchronous variant for process exit; defaults to `run` when that is synchronous. */
  runSync?: () => void;
}

const steps: CleanupStep[] = [];
let hooked = false;

function hookProcess(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => runAllSync());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      runAllSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Registers an undo step; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(step: CleanupStep): () => Promise<void> {
  hookProcess();
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await step.run();
  };
}

/** Runs every registered step (LIFO); collects errors so one failure does not stop the rest. */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  while (steps.length > 0) {
    const step = steps.pop()!;
    try {
      await step.run();
    } catch (e) {
      errors.push(new Error(`cleanup ${step.label}: ${(e as Error).message}`));
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `bed cleanup had ${errors.length} error(s)`);
}

function runAllSync(): void {
  while (steps.length > 0) {
    const step = steps.pop()!;
    try {
      const r = (step.runSync ?? step.run)();
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // best effort at exit: keep going
    }
  }
}

export function pendingCleanups(): string[] {
  return steps.map((s) => s.label);
}
