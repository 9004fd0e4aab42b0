/**
 * Who signs code images for the guest: in a real system a build-time signer; in the
 * simulator the runtime passes a function holding a key (the guest never sees the key).
 */

/** Signs `image` for its placement; returns the key id (8 bytes) and the signature (64 bytes). */
export type CodePlacementSigner = (
  image: Uint8Array,
  placement: { readonly what: 'bpf-jit' | 'trampoline'; readonly addr: bigint },
) => { keyId: Uint8Array; signature: Uint8Array };
