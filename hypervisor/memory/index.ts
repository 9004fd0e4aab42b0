export { GuestMemory, type GuestMemoryAccess } from './guest-memory.ts';
