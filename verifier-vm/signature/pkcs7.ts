/**
 * Verification of PKCS#7 (CMS SignedData, RFC 5652) module signatures as written by the
 * kernel's scripts/sign-file.c and found on Debian's modules (trailer id_type PKEY_ID_PKCS7).
 *
 * Kernel facts (crypto/asymmetric_keys/pkcs7_parser.c and pkcs7_verify.c, Debian 6.1
 * fixtures): the content is detached (the module's ELF image is the signed data); Debian
 * signs with RSA-4096 and SHA-256 and without signed attributes (`sign-file` uses
 * CMS_NOATTR), so the PKCS#1 v1.5 signature covers the ELF bytes directly. pkcs7_verify()
 * refuses signed attributes on a module signature altogether (VERIFYING_MODULE_SIGNATURE:
 * "Invalid module sig (has authattrs)", -EKEYREJECTED), and so do we. The signer is found
 * by the raw bytes of its issuer and serial number (or subjectKeyIdentifier), never by a
 * normalised form. SignedData and SignerInfo versions must agree as pkcs7_parser.c demands.
 *
 * The blob must be DER (der.ts `derViolation`): stricter than the kernel, whose BER decoder
 * (lib/asn1_decoder.c) also takes long-form and indefinite lengths; sign-file writes DER,
 * so this refuses nothing real and leaves one encoding of every field to match on.
 *
 * Deliberate restrictions, all failing closed: exactly one SignerInfo; RSA only, named
 * rsaEncryption as the kernel requires; digests SHA-256/384/512 only; the signer's
 * certificate must be in the keyring (certificates embedded in the blob are ignored, there
 * is no chain building).
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ContentInfo, SignedData, id_data, id_signedData, type SignerInfo } from '@peculiar/asn1-cms';
import type { Keyring, KeyringCertificate } from '../keyring.ts';
import { children, derViolation, tlvAt, type Tlv } from './der.ts';
import { verifyRsaPkcs1v15, type RsaDigest } from './rsa.ts';
import { formatName } from './x509.ts';

/** Digest algorithms accepted, by OID, with their node:crypto names. */
const DIGESTS: Readonly<Record<string, RsaDigest>> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** rsaEncryption: the hash is given by the digest algorithm. */
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
/**
 * sha*WithRSAEncryption: OpenSSL takes them as a SignerInfo's signature algorithm, Linux does
 * not: pkcs7_sig_note_pkey_algo() knows only rsaEncryption for RSA ("Unsupported pkey algo",
 * -ENOPKG, which module_sig_check() turns into "module with unsupported crypto", refused
 * when signatures are enforced). Named here only to say so.
 */
const RSA_WITH_HASH: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
};

/** Why a PKCS#7 signature was refused. */
export type Pkcs7FailureKind =
  | 'malformed'
  | 'not-detached'
  | 'signer-count'
  | 'unknown-signer'
  | 'revoked'
  | 'unsupported-digest'
  | 'unsupported-signature-algorithm'
  | 'signed-attributes'
  | 'signature-mismatch';

/** The outcome of {@link verifyPkcs7ModuleSignature}: plain data, `reason` names what happened. */
export type Pkcs7Verdict =
  | { readonly ok: true; readonly reason: string; readonly signer: KeyringCertificate; readonly digest: string }
  | { readonly ok: false; readonly kind: Pkcs7FailureKind; readonly reason: string; readonly signer?: KeyringCertificate };

function fail(kind: Pkcs7FailureKind, reason: string, signer?: KeyringCertificate): Pkcs7Verdict {
  return signer === undefined ? { ok: false, kind, reason } : { ok: false, kind, reason, signer };
}

function absentOrNull(params: unknown): boolean {
  return params === undefined || params === null;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** How a SignerInfo names its signer, as raw bytes of the blob. */
type RawSignerId =
  | { readonly kind: 'issuer-serial'; readonly issuerDer: string; readonly serial: Tlv; readonly serialHex: string }
  | { readonly kind: 'skid'; readonly hex: string };

/**
 * The signer identifier of the first SignerInfo, as the blob encodes it: ContentInfo > [0] >
 * SignedData > signerInfos (its last element) > SignerInfo > sid. Undefined when the blob
 * does not have that shape. The kernel keeps these raw bytes (pkcs7_sig_note_issuer,
 * pkcs7_sig_note_serial, pkcs7_sig_note_skid) and matches certificates on them.
 */
function rawSignerId(blob: Uint8Array): RawSignerId | undefined {
  const sd = tlvAt(blob, [1, 0]);
  const sdKids = sd === undefined ? undefined : children(blob, sd);
  const signerInfos = sdKids?.[sdKids.length - 1];
  if (signerInfos === undefined || signerInfos.tag !== 0x31) return undefined;
  const si = children(blob, signerInfos)?.[0];
  const sid = si === undefined ? undefined : children(blob, si)?.[1];
  if (sid === undefined) return undefined;
  const hex = (t: Tlv, from: number): string => Buffer.from(blob.subarray(from, t.end)).toString('hex');
  if (sid.tag === 0x80) return { kind: 'skid', hex: hex(sid, sid.contentStart) };
  const [issuer, serial] = children(blob, sid) ?? [];
  if (sid.tag !== 0x30 || issuer?.tag !== 0x30 || serial?.tag !== 0x02) return undefined;
  return { kind: 'issuer-serial', issuerDer: hex(issuer, issuer.start), serial, serialHex: hex(serial, serial.contentStart) };
}

/** Finds the keyring certificate a SignerInfo names, by the raw bytes of issuer + serial or subjectKeyIdentifier. */
function findSigner(si: SignerInfo, id: RawSignerId, keyring: Keyring): { cert: KeyringCertificate | undefined; described: string } {
  if (id.kind === 'issuer-serial') {
    const cert = keyring.certificates().find((c) => c.issuerDer === id.issuerDer && c.serialHex === id.serialHex);
    const issuer = si.sid.issuerAndSerialNumber;
    return { cert, described: `issuer "${issuer === undefined ? '?' : formatName(issuer.issuer)}" serial ${id.serialHex}` };
  }
  const cert = keyring.certificates().find((c) => c.subjectKeyIdHex === id.hex);
  return { cert, described: `subjectKeyIdentifier ${id.hex}` };
}

/**
 * Why a blob that is not DER is refused. A signer serial number with a redundant leading
 * byte gets its own reason: OpenSSL refuses it ("illegal padding"), and the kernel, which
 * matches the raw bytes, would look for a certificate with that serial and find none.
 */
function notDer(blob: Uint8Array): Pkcs7Verdict | undefined {
  const bad = derViolation(blob);
  if (bad === undefined) return undefined;
  const id = rawSignerId(blob);
  if (id?.kind === 'issuer-serial' && bad.offset === id.serial.start) {
    return fail(
      'malformed',
      `malformed PKCS#7 blob: the signer's serial number ${id.serialHex} is not minimal DER (${bad.problem}); ` +
        'OpenSSL refuses it ("illegal padding"), and the kernel, which matches the raw serial bytes ' +
        '(pkcs7_sig_note_serial, asymmetric_key_generate_id), would find no certificate with this serial (-ENOKEY)',
    );
  }
  return fail('malformed', `malformed PKCS#7 blob: not DER: ${bad.problem} at offset ${bad.offset}`);
}

/** Parses the blob down to its single SignerInfo, or the failure. */
function parseSignerInfo(blob: Uint8Array): { si: SignerInfo; id: RawSignerId } | { failure: Pkcs7Verdict } {
  // One DER element spanning the blob (the ASN.1 parser would ignore bytes after it).
  const failure = notDer(blob);
  if (failure !== undefined) return { failure };
  if (blob[0] !== 0x30) return { failure: fail('malformed', `malformed PKCS#7 blob: not one DER SEQUENCE spanning the ${blob.length}-byte signature`) };
  let sd: SignedData;
  try {
    const ci = AsnConvert.parse(blob, ContentInfo);
    if (ci.contentType !== id_signedData) {
      return { failure: fail('malformed', `malformed PKCS#7 blob: content type ${ci.contentType} is not signedData`) };
    }
    sd = AsnConvert.parse(ci.content, SignedData);
    // INVARIANT: we verify exactly what we parsed. The ASN.1 library is lenient (it accepts
    // wrong tags and lengths in places), so the blob must be the canonical DER re-encoding
    // of the parsed structures, byte for byte; anything else is refused as malformed.
    const reSd = Buffer.from(AsnConvert.serialize(sd));
    const reCi = Buffer.from(AsnConvert.serialize(ci));
    if (!reSd.equals(Buffer.from(ci.content)) || !reCi.equals(blob)) {
      return { failure: fail('malformed', 'malformed PKCS#7 blob: not in canonical DER form') };
    }
  } catch (e) {
    return { failure: fail('malformed', `malformed PKCS#7 blob: ${message(e)}`) };
  }
  // RFC 5652 5.1: SignedData version 1 (or 3 when a SignerInfo uses subjectKeyIdentifier).
  if (sd.version !== 1 && sd.version !== 3) {
    return { failure: fail('malformed', `malformed PKCS#7 blob: SignedData version ${sd.version} is not 1 or 3`) };
  }
  if (sd.encapContentInfo.eContentType !== id_data) {
    return { failure: fail('malformed', `malformed PKCS#7 blob: encapsulated content type ${sd.encapContentInfo.eContentType} is not data`) };
  }
  if (sd.encapContentInfo.eContent !== undefined) {
    return { failure: fail('not-detached', 'PKCS#7 content is not detached: the blob carries its own content instead of signing the module') };
  }
  if (sd.signerInfos.length !== 1) {
    return { failure: fail('signer-count', `PKCS#7 has ${sd.signerInfos.length} signers; exactly one is supported`) };
  }
  const si = sd.signerInfos[0]!;
  // RFC 5652 5.1: digestAlgorithms lists the digest algorithm of every signer.
  if (!sd.digestAlgorithms.some((a) => a.algorithm === si.digestAlgorithm.algorithm)) {
    return {
      failure: fail(
        'malformed',
        `malformed PKCS#7 blob: digest algorithm ${si.digestAlgorithm.algorithm} of the signer is not listed in SignedData.digestAlgorithms`,
      ),
    };
  }
  // RFC 5652 5.3: SignerInfo version 1 goes with issuerAndSerialNumber, 3 with subjectKeyIdentifier.
  const expected = si.sid.subjectKeyIdentifier !== undefined ? 3 : 1;
  if (si.version !== expected) {
    return {
      failure: fail('malformed', `malformed PKCS#7 blob: SignerInfo version ${si.version} does not match its signer identifier (expected ${expected})`),
    };
  }
  // pkcs7_note_signerinfo_version(): a version 1 SignerInfo needs SignedData version 1 and a
  // version 3 one needs SignedData version 3 ("SignedData-SignerInfo version mismatch",
  // -EBADMSG); RFC 5652 5.1 agrees for id-data content without attribute certificates.
  if (sd.version !== si.version) {
    return {
      failure: fail(
        'malformed',
        `malformed PKCS#7 blob: SignedData version ${sd.version} with a version ${si.version} SignerInfo (the kernel refuses this: "SignedData-SignerInfo version mismatch", -EBADMSG)`,
      ),
    };
  }
  // The kernel refuses signed attributes on module signatures outright (pkcs7_verify(),
  // VERIFYING_MODULE_SIGNATURE), whatever they hold; refused here before any key lookup.
  if (si.signedAttrs !== undefined) {
    return {
      failure: fail(
        'signed-attributes',
        `PKCS#7 module signature with signed attributes (${si.signedAttrs.length}): Linux refuses them on module signatures ` +
          '(pkcs7_verify() for VERIFYING_MODULE_SIGNATURE: "Invalid module sig (has authattrs)", -EKEYREJECTED)',
      ),
    };
  }
  const id = rawSignerId(blob);
  if (id === undefined) return { failure: fail('malformed', 'malformed PKCS#7 blob: cannot find the signer identifier') };
  return { si, id };
}

/**
 * Verifies a PKCS#7 module signature `blob` over `elf` against the keyring's certificates and
 * revocations. Never throws; every refusal has a `reason` naming it (malformed PKCS#7 blob
 * with the DER rule or field at fault, signed attributes, unknown signer with its issuer and
 * serial, revoked certificate, unsupported digest or signature algorithm with its OID,
 * signature mismatch).
 */
export function verifyPkcs7ModuleSignature(elf: Uint8Array, blob: Uint8Array, keyring: Keyring): Pkcs7Verdict {
  const parsed = parseSignerInfo(blob);
  if ('failure' in parsed) return parsed.failure;
  const si = parsed.si;

  const digestOid = si.digestAlgorithm.algorithm;
  const hash = DIGESTS[digestOid];
  if (hash === undefined) return fail('unsupported-digest', `unsupported digest algorithm ${digestOid}`);
  // RFC 3279 / RFC 4055: parameters of these algorithms are absent or NULL, nothing else.
  if (!absentOrNull(si.digestAlgorithm.parameters)) return fail('malformed', `malformed PKCS#7 blob: digest algorithm ${digestOid} has parameters`);
  if (!absentOrNull(si.signatureAlgorithm.parameters)) {
    return fail('malformed', `malformed PKCS#7 blob: signature algorithm ${si.signatureAlgorithm.algorithm} has parameters`);
  }
  const sigOid = si.signatureAlgorithm.algorithm;
  if (sigOid !== OID_RSA_ENCRYPTION) {
    const name = RSA_WITH_HASH[sigOid];
    if (name === undefined) return fail('unsupported-signature-algorithm', `unsupported signature algorithm ${sigOid}`);
    return fail(
      'unsupported-signature-algorithm',
      `signature algorithm ${sigOid} (${name}) in the SignerInfo: Linux takes only rsaEncryption there ` +
        '(pkcs7_sig_note_pkey_algo: "Unsupported pkey algo", -ENOPKG; module_sig_check refuses a "module with unsupported crypto")',
    );
  }

  const { cert, described } = findSigner(si, parsed.id, keyring);
  if (cert === undefined) return fail('unknown-signer', `unknown signer ${described}: no such certificate in the keyring`);
  // TRUST: revocation overrides the keyring: checked before any signature math.
  if (keyring.isCertificateRevoked(cert.sha256)) {
    return fail('revoked', `revoked certificate ${cert.sha256} ("${cert.subject}")`, cert);
  }
  if (cert.publicKey.asymmetricKeyType !== 'rsa') {
    return fail(
      'unsupported-signature-algorithm',
      `certificate "${cert.subject}" has a ${cert.publicKey.asymmetricKeyType ?? 'unknown'} key; only RSA is supported`,
      cert,
    );
  }

  // No signed attributes (refused above): the signature covers the module's bytes.
  const signature = new Uint8Array(si.signature.buffer);
  if (!verifyRsaPkcs1v15(hash, elf, cert.publicKey, signature)) {
    return fail('signature-mismatch', `PKCS#7 signature mismatch for signer "${cert.subject}" serial ${cert.serialHex}`, cert);
  }
  const digest = createHash(hash).update(elf).digest('hex');
  return { ok: true, reason: `signed by "${cert.subject}" serial ${cert.serialHex} (PKCS#7, RSA, ${hash})`, signer: cert, digest };
}
