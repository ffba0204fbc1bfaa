// Test entry point of the agent: the production composition root (agent/src/main.ts runMain) with test-only hooks
// chosen by environment variables. Production never imports this file, so the bundle holds no fake and no fault hook.
//   KOA_TEST_BACKEND=fake         the in-memory FakeBackend: no Kubernetes, OVS or kernel (CNI protocol tests)
//   KOA_FAULT_AFTER_STEP=<op>     SIGKILL this process right after the ADD step <op> was applied (e.g. ovsAddPort)
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { runMain, type MainHooks } from '../../agent/src/main.ts';

/** A beforeStep hook that kills the process once the step named `after` has been applied. */
export function faultAfterStep(after: string): NonNullable<MainHooks['beforeStep']> {
  let previous = '';
  return (step, index) => {
    const prev = index === 0 ? '' : previous;
    previous = step.op;
    if (prev !== after) return;
    process.stderr.write(`fault injected: killing the agent after step ${after}, before ${step.op}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}

export function hooksFromEnv(env: NodeJS.ProcessEnv): MainHooks {
  const hooks: { -readonly [K in keyof MainHooks]: MainHooks[K] } = {};
  const backend = env.KOA_TEST_BACKEND ?? '';
  if (backend === 'fake') hooks.backend = new FakeBackend();
  else if (backend !== '') throw new Error(`KOA_TEST_BACKEND must be "fake" or unset (got "${backend}")`);
  if (env.KOA_FAULT_AFTER_STEP) hooks.beforeStep = faultAfterStep(env.KOA_FAULT_AFTER_STEP);
  return hooks;
}

if (import.meta.main) await runMain(process.argv.slice(2), hooksFromEnv(process.env));
