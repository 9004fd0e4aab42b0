// comlink ships its Node adapter as an .mjs file without a .d.mts beside it; this gives it
// the types of the .d.ts it does ship (node_modules/comlink/dist/esm/node-adapter.d.ts).
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  export interface NodeEndpoint {
    postMessage(message: unknown, transfer?: unknown[]): void;
    on(type: string, listener: (...args: never[]) => void, options?: object): void;
    off(type: string, listener: (...args: never[]) => void, options?: object): void;
    start?: () => void;
  }
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
