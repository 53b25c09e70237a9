import { randomBytes, sign, type KeyObject } from 'node:crypto';

/**
 * Just enough DER to issue X.509 v3 certificates for the store stand-ins: the App Store signs its JWS
 * with an x5c chain (leaf, intermediate, root) that the App Store Server Library checks, and Google
 * serves its OIDC signing keys as certificates. Node can parse and verify certificates but not issue
 * them; no npm package is needed for the few fields used here.
 */

const tlv = (tag: number, body: Buffer): Buffer => {
  const length = body.length;
  if (length < 0x80) return Buffer.concat([Buffer.from([tag, length]), body]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.concat([Buffer.from([tag, 0x80 | bytes.length, ...bytes]), body]);
};

const sequence = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, body: Buffer) => tlv(0xa0 + n, body);
const octetString = (body: Buffer) => tlv(0x04, body);
const bitString = (body: Buffer, unusedBits = 0) =>
  tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), body]));
const boolean = (value: boolean) => tlv(0x01, Buffer.from([value ? 0xff : 0x00]));
const NULL = Buffer.from([0x05, 0x00]);

function integer(value: Buffer): Buffer {
  let bytes = value;
  while (bytes.length > 1 && bytes[0] === 0 && bytes[1]! < 0x80) bytes = bytes.subarray(1);
  return tlv(0x02, bytes[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const arc of rest) {
    const chunk: number[] = [];
    let n = arc;
    do {
      chunk.unshift(n & 0x7f);
      n = Math.floor(n / 128);
    } while (n > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime up to 2049, GeneralizedTime after, as RFC 5280 asks. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : tlv(0x18, Buffer.from(`${iso}Z`));
}

export interface DistinguishedName {
  commonName: string;
  organizationalUnit?: string;
  organization?: string;
  /** ISO 3166 alpha-2. */
  country?: string;
}

function name(dn: DistinguishedName): Buffer {
  const rdn = (type: string, value: Buffer) => set(sequence(oid(type), value));
  const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
  return sequence(
    rdn('2.5.4.3', utf8(dn.commonName)),
    ...(dn.organizationalUnit ? [rdn('2.5.4.11', utf8(dn.organizationalUnit))] : []),
    ...(dn.organization ? [rdn('2.5.4.10', utf8(dn.organization))] : []),
    ...(dn.country ? [rdn('2.5.4.6', tlv(0x13, Buffer.from(dn.country, 'ascii')))] : []),
  );
}

const extension = (id: string, critical: boolean, value: Buffer) =>
  sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));

export interface CertificateRequest {
  subject: DistinguishedName;
  /** The public key certified. */
  publicKey: KeyObject;
  /** Who signs: the subject itself for a root. */
  issuer: DistinguishedName;
  issuerKey: KeyObject;
  /** A CA certificate (basicConstraints cA), able to issue others. */
  ca: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /** Extensions by OID whose value is ASN.1 NULL: marker extensions, as Apple's are. */
  markers?: readonly string[];
}

/** Issues a DER certificate, signed ECDSA-SHA256 (EC issuer key) or RSA-SHA256 (RSA issuer key). */
export function issueCertificate(request: CertificateRequest): Buffer {
  const ec = request.issuerKey.asymmetricKeyType === 'ec';
  const algorithm = ec ? sequence(oid('1.2.840.10045.4.3.2')) : sequence(oid('1.2.840.113549.1.1.11'), NULL);
  const notBefore = request.notBefore ?? new Date(Date.now() - 24 * 3600_000);
  const notAfter = request.notAfter ?? new Date(Date.now() + 5 * 365 * 24 * 3600_000);
  // keyUsage: keyCertSign + cRLSign for a CA, digitalSignature for a leaf.
  const keyUsage = request.ca ? bitString(Buffer.from([0x06]), 1) : bitString(Buffer.from([0x80]), 7);
  const extensions = [
    extension('2.5.29.19', true, request.ca ? sequence(boolean(true)) : sequence()),
    extension('2.5.29.15', true, keyUsage),
    ...(request.markers ?? []).map((marker) => extension(marker, false, NULL)),
  ];
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(randomBytes(16)),
    algorithm,
    name(request.issuer),
    sequence(time(notBefore), time(notAfter)),
    name(request.subject),
    request.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, request.issuerKey);
  return sequence(tbs, algorithm, bitString(signature));
}

export const pem = (der: Buffer, label = 'CERTIFICATE') =>
  `-----BEGIN ${label}-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END ${label}-----\n`;
