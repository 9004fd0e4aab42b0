/**
 * The Linux module signature trailer, read and written.
 *
 * A signed module is the ELF image followed by a trailer (kernel fact, from
 * include/linux/module_signature.h and scripts/sign-file.c):
 *
 * ```
 * [ELF][signer name][key id][signature][struct module_signature][MODULE_SIG_STRING]
 *
 * struct module_signature {        // 12 bytes
 *   u8 algo;        // public-key algorithm (unused: 0)
 *   u8 hash;        // digest algorithm (unused for PKCS#7: 0)
 *   u8 id_type;     // PKEY_ID_PGP 0, PKEY_ID_X509 1, PKEY_ID_PKCS7 2
 *   u8 signer_len;  // length of the signer's name
 *   u8 key_id_len;  // length of the key identifier
 *   u8 __pad[3];
 *   __be32 sig_len; // length of the signature data
 * };
 * MODULE_SIG_STRING = "~Module signature appended~\n"   // 28 bytes
 * ```
 *
 * Real kernels only accept PKEY_ID_PKCS7 with every other field zero (kernel/module_signature.c,
 * `mod_check_sig`): the whole CMS blob is the "signature". heki-sim adds
 * {@link PKEY_ID_HEKI_ED25519}: a raw 64-byte Ed25519 signature, an 8-byte key id and an
 * optional signer name.
 *
 * This file is format code shared by the guest (which builds signed modules) and the verifier
 * (which parses them): it imports nothing outside `shared/`, and never throws on bad input.
 */
import { ok, err, type Result } from './result.ts';

/** `MODULE_SIG_STRING`, the marker that ends every signed module (include/linux/module_signature.h). */
export const MODULE_SIG_STRING = '~Module signature appended~\n';

/** The marker's bytes (28). */
export const MODULE_SIG_MARKER: Uint8Array = new TextEncoder().encode(MODULE_SIG_STRING);

/** `sizeof(struct module_signature)`. */
export const MODULE_SIGNATURE_STRUCT_SIZE = 12;

/** PGP key identifier (legacy; never accepted by current kernels). */
export const PKEY_ID_PGP = 0;
/** X.509 key identifier (legacy; never accepted by current kernels). */
export const PKEY_ID_X509 = 1;
/** Signature in PKCS#7 (CMS SignedData) form: what `sign-file` writes and kernels verify. */
export const PKEY_ID_PKCS7 = 2;
/**
 * heki-sim's own scheme: a raw Ed25519 signature (see shared/crypto/ed25519.ts).
 * Not a kernel value: the kernel's enum pkey_id_type stops at PKEY_ID_PKCS7.
 */
export const PKEY_ID_HEKI_ED25519 = 3;

/** The id_type values this parser knows. */
export type ModuleSigIdType = typeof PKEY_ID_PGP | typeof PKEY_ID_X509 | typeof PKEY_ID_PKCS7 | typeof PKEY_ID_HEKI_ED25519;

/** `HASH_ALGO_SHA256` in the kernel's enum hash_algo (include/uapi/linux/hash_info.h). */
export const HASH_ALGO_SHA256 = 4;

/** Length of a heki Ed25519 key id: the first 8 bytes of SHA-256(public key). */
export const HEKI_ED25519_KEY_ID_LEN = 8;
/** Length of an Ed25519 signature. */
export const HEKI_ED25519_SIG_LEN = 64;

/** A human name for an id_type, for messages. */
export function idTypeName(idType: number): string {
  switch (idType) {
    case PKEY_ID_PGP:
      return 'PKEY_ID_PGP';
    case PKEY_ID_X509:
      return 'PKEY_ID_X509';
    case PKEY_ID_PKCS7:
      return 'PKEY_ID_PKCS7';
    case PKEY_ID_HEKI_ED25519:
      return 'PKEY_ID_HEKI_ED25519';
    default:
      return `unknown id_type ${idType}`;
  }
}

/** A module with a well-formed trailer, split into its parts. All byte fields are views into the input. */
export interface SignedModule {
  /** The ELF image: everything before the trailer (a subarray of the input, not a copy). */
  readonly elf: Uint8Array;
  readonly idType: ModuleSigIdType;
  readonly algo: number;
  readonly hash: number;
  readonly signer: Uint8Array;
  readonly keyId: Uint8Array;
  /** The signature data: a CMS blob for PKCS#7, 64 raw bytes for Ed25519. */
  readonly signature: Uint8Array;
}

/**
 * Why no signed module came out of a file. `kind` is for code; `message` names the problem for
 * people. `unsigned` is the distinct "no trailer at all" outcome (the file has no marker); every
 * other kind is a malformed trailer.
 */
export type SignatureTrailerError =
  | { readonly kind: 'unsigned'; readonly message: string }
  | { readonly kind: 'truncated-struct'; readonly message: string }
  | { readonly kind: 'sig-len-overflow'; readonly message: string }
  | { readonly kind: 'signer-overflow'; readonly message: string }
  | { readonly kind: 'unknown-id-type'; readonly message: string }
  | { readonly kind: 'pkcs7-nonzero-fields'; readonly message: string }
  | { readonly kind: 'bad-ed25519-fields'; readonly message: string }
  | { readonly kind: 'nonzero-padding'; readonly message: string };

/** The message of the `unsigned` outcome. */
export const NOT_SIGNED_MESSAGE = 'module is not signed (no "~Module signature appended~" marker)';

/** Does `file` end with {@link MODULE_SIG_MARKER}? */
export function hasSignatureMarker(file: Uint8Array): boolean {
  const m = MODULE_SIG_MARKER.length;
  if (file.length < m) return false;
  for (let i = 0; i < m; i++) {
    if (file[file.length - m + i] !== MODULE_SIG_MARKER[i]) return false;
  }
  return true;
}

function trailerError(kind: SignatureTrailerError['kind'], message: string): { ok: false; error: SignatureTrailerError } {
  return err({ kind, message });
}

/**
 * Splits a module file into ELF and signature parts. A file without the marker gives the
 * distinct error kind `unsigned` (check `error.kind === 'unsigned'`; the whole file is then the
 * ELF). A file with the marker but a trailer that does not fit gives an error of another kind
 * naming the problem. Never throws.
 *
 * The checks follow kernel/module_signature.c `mod_check_sig` and are a little stricter:
 * the padding must be zero for every id_type, and Ed25519 trailers must have the exact field
 * sizes heki writes.
 */
export function parseModuleSignature(file: Uint8Array): Result<SignedModule, SignatureTrailerError> {
  if (!hasSignatureMarker(file)) return trailerError('unsigned', NOT_SIGNED_MESSAGE);
  const end = file.length - MODULE_SIG_MARKER.length;
  // Kernel: `if (len <= sizeof(ms)) return -EBADMSG;` (module_sig_check / mod_verify_sig).
  if (end <= MODULE_SIGNATURE_STRUCT_SIZE) {
    return trailerError(
      'truncated-struct',
      `truncated trailer: ${end} bytes before the marker, need more than the ${MODULE_SIGNATURE_STRUCT_SIZE}-byte struct module_signature`,
    );
  }
  const s = end - MODULE_SIGNATURE_STRUCT_SIZE;
  const algo = file[s]!;
  const hash = file[s + 1]!;
  const idType = file[s + 2]!;
  const signerLen = file[s + 3]!;
  const keyIdLen = file[s + 4]!;
  const pad = [file[s + 5]!, file[s + 6]!, file[s + 7]!];
  // __be32 sig_len; >>> 0 keeps it unsigned.
  const sigLen = ((file[s + 8]! << 24) | (file[s + 9]! << 16) | (file[s + 10]! << 8) | file[s + 11]!) >>> 0;

  // Kernel: `if (be32_to_cpu(ms->sig_len) >= file_len - sizeof(*ms)) return -EBADMSG;` —
  // the signature may not eat the whole file: some ELF must remain.
  if (sigLen >= s) {
    return trailerError('sig-len-overflow', `sig_len ${sigLen} does not fit: only ${s} bytes precede struct module_signature`);
  }
  const namesLen = signerLen + keyIdLen;
  if (namesLen + sigLen >= s) {
    return trailerError(
      'signer-overflow',
      `signer_len ${signerLen} + key_id_len ${keyIdLen} + sig_len ${sigLen} do not fit in the ${s} bytes before struct module_signature`,
    );
  }
  if (pad[0] !== 0 || pad[1] !== 0 || pad[2] !== 0) {
    return trailerError('nonzero-padding', `struct module_signature padding is not zero (${pad.join(',')})`);
  }
  if (idType !== PKEY_ID_PGP && idType !== PKEY_ID_X509 && idType !== PKEY_ID_PKCS7 && idType !== PKEY_ID_HEKI_ED25519) {
    return trailerError('unknown-id-type', `unknown id_type ${idType} in struct module_signature`);
  }
  if (idType === PKEY_ID_PKCS7 && (algo !== 0 || hash !== 0 || signerLen !== 0 || keyIdLen !== 0)) {
    // Kernel: "PKCS#7 signature info has unexpected non-zero params" (-EBADMSG).
    return trailerError(
      'pkcs7-nonzero-fields',
      `PKCS#7 trailer has unexpected non-zero fields (algo=${algo} hash=${hash} signer_len=${signerLen} key_id_len=${keyIdLen})`,
    );
  }
  if (idType === PKEY_ID_HEKI_ED25519 && (algo !== 0 || hash !== HASH_ALGO_SHA256 || keyIdLen !== HEKI_ED25519_KEY_ID_LEN || sigLen !== HEKI_ED25519_SIG_LEN)) {
    return trailerError(
      'bad-ed25519-fields',
      `Ed25519 trailer needs algo=0 hash=${HASH_ALGO_SHA256} key_id_len=${HEKI_ED25519_KEY_ID_LEN} sig_len=${HEKI_ED25519_SIG_LEN}, ` +
        `got algo=${algo} hash=${hash} key_id_len=${keyIdLen} sig_len=${sigLen}`,
    );
  }

  const sigStart = s - sigLen;
  const keyIdStart = sigStart - keyIdLen;
  const signerStart = keyIdStart - signerLen;
  return ok({
    elf: file.subarray(0, signerStart),
    idType,
    algo,
    hash,
    signer: file.subarray(signerStart, keyIdStart),
    keyId: file.subarray(keyIdStart, sigStart),
    signature: file.subarray(sigStart, s),
  });
}

/** The parts of a trailer to append. Defaults: algo 0, hash 0, empty signer and key id. */
export interface SignatureParts {
  readonly idType: ModuleSigIdType;
  readonly algo?: number;
  readonly hash?: number;
  readonly signer?: Uint8Array;
  readonly keyId?: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Returns a new buffer: `elf` followed by a trailer built from `parts`, laid out as
 * scripts/sign-file.c does. Errors (never throws) when a field does not fit its width
 * (signer or key id over 255 bytes, signature over 2^32-1 bytes, a byte field out of 0..255).
 * The result parses back with {@link parseModuleSignature} for every valid input.
 */
export function appendModuleSignature(elf: Uint8Array, parts: SignatureParts): Result<Uint8Array, string> {
  const signer = parts.signer ?? new Uint8Array(0);
  const keyId = parts.keyId ?? new Uint8Array(0);
  const algo = parts.algo ?? 0;
  const hash = parts.hash ?? 0;
  const byteField = (name: string, v: number): string | undefined =>
    Number.isInteger(v) && v >= 0 && v <= 0xff ? undefined : `${name} ${v} does not fit in a u8`;
  const bad =
    byteField('algo', algo) ??
    byteField('hash', hash) ??
    byteField('id_type', parts.idType) ??
    byteField('signer length', signer.length) ??
    byteField('key id length', keyId.length);
  if (bad !== undefined) return err(bad);
  if (parts.signature.length > 0xffffffff) return err(`signature of ${parts.signature.length} bytes does not fit in sig_len`);
  if (elf.length === 0) return err('cannot sign an empty ELF image');

  const total = elf.length + signer.length + keyId.length + parts.signature.length + MODULE_SIGNATURE_STRUCT_SIZE + MODULE_SIG_MARKER.length;
  const out = new Uint8Array(total);
  let p = 0;
  for (const part of [elf, signer, keyId, parts.signature]) {
    out.set(part, p);
    p += part.length;
  }
  out[p] = algo;
  out[p + 1] = hash;
  out[p + 2] = parts.idType;
  out[p + 3] = signer.length;
  out[p + 4] = keyId.length;
  // p+5..p+7: padding, already zero.
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(p + 8, parts.signature.length, false);
  out.set(MODULE_SIG_MARKER, p + MODULE_SIGNATURE_STRUCT_SIZE);
  return ok(out);
}

/**
 * The ELF image of `file` without its trailer (a subarray, not a copy). An unsigned file is
 * returned whole. A malformed trailer is an error: stripping it blindly could leave garbage
 * the caller would then sign.
 */
export function stripModuleSignature(file: Uint8Array): Result<Uint8Array, SignatureTrailerError> {
  const parsed = parseModuleSignature(file);
  if (parsed.ok) return ok(parsed.value.elf);
  if (parsed.error.kind === 'unsigned') return ok(file);
  return parsed;
}
