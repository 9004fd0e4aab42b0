export { Ept, type EptView } from './ept.ts';
export * from './permissions.ts';
