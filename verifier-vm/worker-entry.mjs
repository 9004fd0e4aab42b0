// Entry point of the verifier worker thread. A worker_thread does not inherit the parent's
// tsx loader, so register it here, then load the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
