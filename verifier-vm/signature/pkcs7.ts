/**
 * Verification of PKCS#7 (CMS SignedData, RFC 5652) module signatures as written by the
 * kernel's scripts/sign-file.c and found on Debian's modules (trailer id_type PKEY_ID_PKCS7).
 *
 * Kernel facts (crypto/asymmetric_keys/pkcs7_verify.c, Debian 6.1 fixtures): the content is
 * detached (the module's ELF image is the signed data); Debian signs with RSA-4096 and SHA-256
 * and without signed attributes (`sign-file` uses CMS_NOATTR), in which case the PKCS#1 v1.5
 * signature covers the ELF bytes directly. With signed attributes, the messageDigest attribute
 * must equal the ELF's digest and the signature covers the DER of the attributes re-tagged as
 * a SET OF (RFC 5652 5.4).
 *
 * Deliberate restrictions, all failing closed: exactly one SignerInfo; RSA only; digests
 * SHA-256/384/512 only; the signer's certificate must be in the keyring (certificates
 * embedded in the blob are ignored, there is no chain building).
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { ContentInfo, SignedData, id_data, id_signedData, type SignerInfo } from '@peculiar/asn1-cms';
import type { Keyring, KeyringCertificate } from '../keyring.ts';
import { children, readTlv } from './der.ts';
import { formatName, nameDer, serialToHex } from './x509.ts';

/** Digest algorithms accepted, by OID, with their node:crypto names. */
const DIGESTS: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** rsaEncryption: the hash is given by the digest algorithm. */
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
/** sha*WithRSAEncryption: the hash is part of the OID and must agree with the digest algorithm. */
const RSA_WITH_HASH: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};
/** PKCS#9 contentType and messageDigest attributes. */
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
/** The DER of OBJECT IDENTIFIER id-data (1.2.840.113549.1.7.1), as a contentType attribute value holds it. */
const DER_OID_DATA = Buffer.from('06092a864886f70d010701', 'hex');

/** Why a PKCS#7 signature was refused. */
export type Pkcs7FailureKind =
  | 'malformed'
  | 'not-detached'
  | 'signer-count'
  | 'unknown-signer'
  | 'revoked'
  | 'unsupported-digest'
  | 'unsupported-signature-algorithm'
  | 'digest-mismatch'
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

/**
 * The exact DER of the first SignerInfo's `signedAttrs` ([0] IMPLICIT SET OF Attribute), found
 * by walking ContentInfo > [0] > SignedData > signerInfos > SignerInfo. The ASN.1 library does
 * not keep these bytes, and the signature covers them as they were sent, not a re-encoding.
 */
function rawSignedAttrs(blob: Uint8Array): Uint8Array | undefined {
  const ci = readTlv(blob, 0, blob.length);
  if (ci === undefined) return undefined;
  const content = children(blob, ci)?.[1];
  if (content === undefined || content.tag !== 0xa0) return undefined;
  const sd = children(blob, content)?.[0];
  if (sd === undefined) return undefined;
  const sdKids = children(blob, sd);
  const signerInfos = sdKids?.[sdKids.length - 1];
  if (signerInfos === undefined || signerInfos.tag !== 0x31) return undefined;
  const si = children(blob, signerInfos)?.[0];
  if (si === undefined) return undefined;
  const attrs = children(blob, si)?.[3];
  if (attrs === undefined || attrs.tag !== 0xa0) return undefined;
  return blob.subarray(attrs.start, attrs.end);
}

/** Finds the keyring certificate a SignerInfo names, by issuer + serial or subjectKeyIdentifier. */
function findSigner(si: SignerInfo, keyring: Keyring): { cert: KeyringCertificate | undefined; described: string } {
  const ias = si.sid.issuerAndSerialNumber;
  if (ias !== undefined) {
    const issuer = nameDer(ias.issuer);
    const serial = serialToHex(ias.serialNumber);
    const cert = keyring.certificates().find((c) => c.issuerDer === issuer && c.serialHex === serial);
    return { cert, described: `issuer "${formatName(ias.issuer)}" serial ${serial}` };
  }
  const ski = si.sid.subjectKeyIdentifier;
  if (ski !== undefined) {
    const hex = Buffer.from(ski.buffer).toString('hex');
    const cert = keyring.certificates().find((c) => c.subjectKeyIdHex === hex);
    return { cert, described: `subjectKeyIdentifier ${hex}` };
  }
  return { cert: undefined, described: '(no signer identifier)' };
}

/** Parses the blob down to its single SignerInfo, or the failure. */
function parseSignerInfo(blob: Uint8Array): { si: SignerInfo } | { failure: Pkcs7Verdict } {
  // The ASN.1 parser ignores bytes after the ContentInfo; we refuse them.
  const outer = readTlv(blob, 0, blob.length);
  if (outer === undefined || outer.tag !== 0x30 || outer.end !== blob.length) {
    return { failure: fail('malformed', `malformed PKCS#7 blob: not one DER SEQUENCE spanning the ${blob.length}-byte signature`) };
  }
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
    return { failure: fail('malformed', `malformed PKCS#7 blob: digest algorithm ${si.digestAlgorithm.algorithm} of the signer is not listed in SignedData.digestAlgorithms`) };
  }
  // RFC 5652 5.3: SignerInfo version 1 goes with issuerAndSerialNumber, 3 with subjectKeyIdentifier.
  const expected = si.sid.subjectKeyIdentifier !== undefined ? 3 : 1;
  if (si.version !== expected) {
    return { failure: fail('malformed', `malformed PKCS#7 blob: SignerInfo version ${si.version} does not match its signer identifier (expected ${expected})`) };
  }
  return { si };
}

/**
 * Verifies a PKCS#7 module signature `blob` over `elf` against the keyring's certificates and
 * revocations. Never throws; every refusal has a `reason` naming it (malformed PKCS#7 blob,
 * unknown signer with its issuer and serial, revoked certificate, unsupported digest or
 * signature algorithm with its OID, digest or signature mismatch).
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
    const sigHash = RSA_WITH_HASH[sigOid];
    if (sigHash === undefined) return fail('unsupported-signature-algorithm', `unsupported signature algorithm ${sigOid}`);
    if (sigHash !== hash) {
      return fail('unsupported-signature-algorithm', `signature algorithm ${sigOid} (${sigHash}) disagrees with digest algorithm ${digestOid} (${hash})`);
    }
  }

  const { cert, described } = findSigner(si, keyring);
  if (cert === undefined) return fail('unknown-signer', `unknown signer ${described}: no such certificate in the keyring`);
  // TRUST: revocation overrides the keyring: checked before any signature math.
  if (keyring.isCertificateRevoked(cert.sha256)) {
    return fail('revoked', `revoked certificate ${cert.sha256} ("${cert.subject}")`, cert);
  }
  if (cert.publicKey.asymmetricKeyType !== 'rsa') {
    return fail('unsupported-signature-algorithm', `certificate "${cert.subject}" has a ${cert.publicKey.asymmetricKeyType ?? 'unknown'} key; only RSA is supported`, cert);
  }

  const signature = new Uint8Array(si.signature.buffer);
  let signedBytes: Uint8Array = elf;
  const digest = createHash(hash).update(elf).digest();
  if (si.signedAttrs !== undefined) {
    const attrs = si.signedAttrs;
    const md = attrs.filter((a) => a.attrType === OID_MESSAGE_DIGEST);
    const firstMd = md[0];
    if (md.length !== 1 || firstMd === undefined || firstMd.attrValues.length !== 1) {
      return fail('malformed', 'malformed PKCS#7 blob: signed attributes need exactly one messageDigest value', cert);
    }
    let mdValue: Uint8Array;
    try {
      mdValue = new Uint8Array(AsnConvert.parse(firstMd.attrValues[0]!, OctetString).buffer);
    } catch (e) {
      return fail('malformed', `malformed PKCS#7 blob: messageDigest is not an OCTET STRING (${message(e)})`, cert);
    }
    if (!Buffer.from(mdValue).equals(digest)) {
      return fail('digest-mismatch', `messageDigest attribute does not match the module's ${hash} digest`, cert);
    }
    for (const ct of attrs.filter((a) => a.attrType === OID_CONTENT_TYPE)) {
      for (const v of ct.attrValues) {
        if (!Buffer.from(v).equals(DER_OID_DATA)) {
          return fail('malformed', `malformed PKCS#7 blob: contentType attribute ${Buffer.from(v).toString('hex')} is not id-data`, cert);
        }
      }
    }
    const raw = rawSignedAttrs(blob);
    if (raw === undefined) {
      return fail('malformed', 'malformed PKCS#7 blob: cannot find the DER of the signed attributes', cert);
    }
    // RFC 5652 5.4: the signature covers the attributes with an EXPLICIT SET OF tag (0x31),
    // not the [0] IMPLICIT tag (0xa0) they carry inside SignerInfo.
    const der = Uint8Array.from(raw);
    der[0] = 0x31;
    signedBytes = der;
  }

  let good: boolean;
  try {
    good = cryptoVerify(hash, signedBytes, cert.publicKey, signature);
  } catch {
    good = false;
  }
  if (!good) return fail('signature-mismatch', `PKCS#7 signature mismatch for signer "${cert.subject}" serial ${cert.serialHex}`, cert);
  return { ok: true, reason: `signed by "${cert.subject}" serial ${cert.serialHex} (PKCS#7, RSA, ${hash})`, signer: cert, digest: digest.toString('hex') };
}

