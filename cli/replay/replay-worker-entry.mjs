// Entry point of the `heki replay` worker thread. A worker_thread does not inherit the
// parent's tsx loader, so register it here, then load the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./replay-worker.ts');
