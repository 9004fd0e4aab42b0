/** The verification ring: layout, the shared-memory ring, and the request and verdict codecs. */
export * from './layout.ts';
export * from './spsc-ring.ts';
export * from './patch-records.ts';
export * from './request-codec.ts';
export * from './verdict-codec.ts';
export * from './verdict-reader.ts';
export * from './wait-async.ts';
export * from './utf8.ts';
