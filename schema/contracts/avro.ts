/**
 * The subset of Avro's binary encoding that openedx-events writes for event-bus payloads: a schemaless
 * record (no header, no schema fingerprint; `fastavro.schemaless_writer`), with `string`, `long`,
 * `boolean`, `double`, `null`, arrays, nested records and `["null", T]` unions for optional fields.
 * Both ends must hold the same schema: nothing on the wire says which schema wrote it.
 *
 * Spec: https://avro.apache.org/docs/1.11.1/specification/#binary-encoding
 */

export type AvroPrimitive = 'null' | 'boolean' | 'long' | 'double' | 'string';
export interface AvroArray {
  type: 'array';
  items: AvroType;
}
export interface AvroField {
  name: string;
  type: AvroType;
  default?: null;
}
export interface AvroRecord {
  type: 'record';
  name: string;
  namespace?: string;
  doc?: string;
  fields: readonly AvroField[];
}
export type AvroType = AvroPrimitive | AvroArray | AvroRecord | readonly AvroType[];

export class AvroError extends Error {
  override readonly name = 'AvroError';
}

const typeName = (type: AvroType): string =>
  typeof type === 'string' ? type : Array.isArray(type) ? 'union' : (type as AvroArray | AvroRecord).type;

function matches(type: AvroType, value: unknown): boolean {
  switch (typeName(type)) {
    case 'null':
      return value === null || value === undefined;
    case 'boolean':
      return typeof value === 'boolean';
    case 'long':
      return (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint';
    case 'double':
      return typeof value === 'number';
    case 'string':
      return typeof value === 'string';
    case 'array':
      return Array.isArray(value);
    case 'record':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return false;
  }
}

/** Zig-zag varint of a 64-bit signed integer. */
function writeLong(out: number[], value: number | bigint): void {
  let n = BigInt(value);
  if (n < -(2n ** 63n) || n >= 2n ** 63n) throw new AvroError(`long out of range: ${n}`);
  n = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  while (n >= 0x80n) {
    out.push(Number((n & 0x7fn) | 0x80n));
    n >>= 7n;
  }
  out.push(Number(n));
}

function write(out: number[], type: AvroType, value: unknown, path: string): void {
  if (Array.isArray(type)) {
    const index = type.findIndex((branch) => matches(branch, value));
    if (index < 0) throw new AvroError(`${path}: ${JSON.stringify(value)} matches no branch of the union`);
    writeLong(out, index);
    write(out, type[index] as AvroType, value, path);
    return;
  }
  if (!matches(type, value))
    throw new AvroError(`${path}: expected ${typeName(type)}, got ${JSON.stringify(value)}`);
  switch (typeName(type)) {
    case 'null':
      return;
    case 'boolean':
      out.push(value ? 1 : 0);
      return;
    case 'long':
      writeLong(out, value as number | bigint);
      return;
    case 'double': {
      const bytes = Buffer.alloc(8);
      bytes.writeDoubleLE(value as number);
      out.push(...bytes);
      return;
    }
    case 'string': {
      const bytes = Buffer.from(value as string, 'utf8');
      writeLong(out, bytes.length);
      out.push(...bytes);
      return;
    }
    case 'array': {
      const items = value as unknown[];
      if (items.length) {
        writeLong(out, items.length);
        items.forEach((item, i) => write(out, (type as AvroArray).items, item, `${path}[${i}]`));
      }
      writeLong(out, 0);
      return;
    }
    case 'record':
      for (const field of (type as AvroRecord).fields)
        write(out, field.type, (value as Record<string, unknown>)[field.name], `${path}.${field.name}`);
      return;
  }
}

/** Encodes `value` with `schema`, as `fastavro.schemaless_writer` does. */
export function avroEncode(schema: AvroType, value: unknown): Buffer {
  const out: number[] = [];
  write(out, schema, value, '$');
  return Buffer.from(out);
}

class Reader {
  offset = 0;
  constructor(private readonly bytes: Buffer) {}

  private need(n: number): void {
    if (this.offset + n > this.bytes.length) throw new AvroError('unexpected end of Avro data');
  }

  long(): number {
    let n = 0n;
    let shift = 0n;
    for (;;) {
      this.need(1);
      const byte = BigInt(this.bytes[this.offset++] as number);
      n |= (byte & 0x7fn) << shift;
      if (byte < 0x80n) break;
      shift += 7n;
      if (shift > 63n) throw new AvroError('varint longer than 10 bytes');
    }
    const value = n & 1n ? -(n >> 1n) - 1n : n >> 1n;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
      throw new AvroError(`long ${value} does not fit a JavaScript number`);
    return Number(value);
  }

  bytesOf(length: number): Buffer {
    if (length < 0) throw new AvroError('negative length');
    this.need(length);
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  read(type: AvroType): unknown {
    if (Array.isArray(type)) {
      const index = this.long();
      const branch = type[index] as AvroType | undefined;
      if (branch === undefined) throw new AvroError(`union branch ${index} does not exist`);
      return this.read(branch);
    }
    switch (typeName(type)) {
      case 'null':
        return null;
      case 'boolean':
        return this.bytesOf(1)[0] === 1;
      case 'long':
        return this.long();
      case 'double':
        return this.bytesOf(8).readDoubleLE(0);
      case 'string':
        return this.bytesOf(this.long()).toString('utf8');
      case 'array': {
        const items: unknown[] = [];
        for (let count = this.long(); count !== 0; count = this.long()) {
          // A negative count is followed by the block's size in bytes (which we do not need).
          if (count < 0) {
            count = -count;
            this.long();
          }
          for (let i = 0; i < count; i++) items.push(this.read((type as AvroArray).items));
        }
        return items;
      }
      case 'record': {
        const record: Record<string, unknown> = {};
        for (const field of (type as AvroRecord).fields) record[field.name] = this.read(field.type);
        return record;
      }
      default:
        throw new AvroError(`unsupported Avro type ${typeName(type)}`);
    }
  }
}

/** Decodes bytes written with `schema` (`fastavro.schemaless_reader` with the same schema). */
export function avroDecode(schema: AvroType, bytes: Buffer): unknown {
  const reader = new Reader(bytes);
  const value = reader.read(schema);
  if (reader.offset !== bytes.length)
    throw new AvroError(`${bytes.length - reader.offset} bytes left after the Avro record`);
  return value;
}
