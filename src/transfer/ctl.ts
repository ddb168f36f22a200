import type { XMLParser } from 'fast-xml-parser';
import { InputError } from '../errors';

/**
 * DTSControl (.ctl) files, as the Java MESH Client reads and writes them (peers.md §2.4).
 * Published examples disagree on case and codes, so reading is lenient: element names are
 * case-insensitive, unknown elements are kept but ignored, Y/N flags accept yes/true/1.
 */

export interface StatusRecord {
  dateTime: string; // yyyyMMddHHmmss
  event: string;
  status: string;
  statusCode: string;
  description: string;
}

export interface ControlFile {
  version?: string;
  addressType?: string;
  messageType?: string; // Data | Report
  workflowId?: string;
  fromDts?: string;
  toDts?: string;
  subject?: string;
  localId?: string;
  dtsId?: string;
  partnerId?: string;
  compress?: boolean;
  encrypted?: boolean;
  allowChunking?: boolean;
  isCompressed?: boolean;
  dataChecksum?: string;
  fileName?: string;
  contentType?: string;
  statusRecords: StatusRecord[];
}

const FIELD_BY_ELEMENT: Record<string, keyof ControlFile> = {
  version: 'version',
  addresstype: 'addressType',
  messagetype: 'messageType',
  workflowid: 'workflowId',
  from_dts: 'fromDts',
  to_dts: 'toDts',
  subject: 'subject',
  localid: 'localId',
  dtsid: 'dtsId',
  partnerid: 'partnerId',
  compress: 'compress',
  encrypted: 'encrypted',
  allowchunking: 'allowChunking',
  iscompressed: 'isCompressed',
  datachecksum: 'dataChecksum',
  filename: 'fileName',
  contenttype: 'contentType',
};
const FLAGS = new Set<keyof ControlFile>(['compress', 'encrypted', 'allowChunking', 'isCompressed']);

let xml: { parser: XMLParser; validate: typeof import('fast-xml-parser').XMLValidator.validate } | undefined;
/** fast-xml-parser is loaded at the first control file (~11 ms), not by every `run --once`. */
function loadXml(): NonNullable<typeof xml> {
  if (xml) return xml;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require('fast-xml-parser') as typeof import('fast-xml-parser');
  const parser = new lib.XMLParser({
    ignoreAttributes: true,
    parseTagValue: false, // "00" must stay "00"
    trimValues: true,
    processEntities: true,
    isArray: (name) => name.toLowerCase() === 'statusrecord',
  });
  xml = { parser, validate: lib.XMLValidator.validate };
  return xml;
}

function flag(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (['y', 'yes', 'true', '1'].includes(v)) return true;
  if (['n', 'no', 'false', '0'].includes(v)) return false;
  return undefined;
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return '';
  return String(value).trim();
}

/** Parses a DTSControl document. Throws InputError CTL_INVALID naming what is wrong. */
export function parseControlFile(xml: string | Buffer): ControlFile {
  let source = Buffer.isBuffer(xml) ? xml.toString('utf8') : xml;
  if (source.charCodeAt(0) === 0xfeff) source = source.slice(1);
  // A control file never needs a DTD; refusing them rules out entity expansion attacks.
  if (/<!DOCTYPE|<!ENTITY/i.test(source)) {
    throw new InputError('CTL_INVALID', 'control file contains a DTD or entity declaration, which is not allowed');
  }
  const { parser, validate } = loadXml();
  const valid = validate(source);
  if (valid !== true) {
    throw new InputError('CTL_INVALID', `control file is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`);
  }
  const doc = parser.parse(source) as Record<string, unknown>;
  const rootKey = Object.keys(doc).find((k) => k.toLowerCase() === 'dtscontrol');
  if (!rootKey || typeof doc[rootKey] !== 'object' || doc[rootKey] === null) {
    throw new InputError('CTL_INVALID', 'control file has no <DTSControl> root element');
  }
  const root = doc[rootKey] as Record<string, unknown>;
  const ctl: ControlFile = { statusRecords: [] };
  for (const [name, value] of Object.entries(root)) {
    const lower = name.toLowerCase();
    if (lower === 'statusrecord') {
      for (const rec of value as unknown[]) {
        const r = lowerKeys(rec);
        ctl.statusRecords.push({
          dateTime: text(r.datetime),
          event: text(r.event),
          status: text(r.status),
          statusCode: text(r.statuscode),
          description: text(r.description),
        });
      }
      continue;
    }
    const field = FIELD_BY_ELEMENT[lower];
    if (!field) continue; // unknown elements are tolerated
    const v = text(value);
    if (FLAGS.has(field)) {
      if (v === '') continue;
      const f = flag(v);
      if (f === undefined) throw new InputError('CTL_INVALID', `control file element <${name}> must be Y or N`);
      (ctl as unknown as Record<string, unknown>)[field] = f;
    } else if (v !== '') {
      (ctl as unknown as Record<string, unknown>)[field] = v;
    }
  }
  return ctl;
}

function lowerKeys(value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out[k.toLowerCase()] = v;
  return out;
}

/** What an outbound .ctl must say before meshd will send it. */
export function checkOutboundControl(ctl: ControlFile): void {
  if (!ctl.toDts) throw new InputError('CTL_INVALID', 'control file has no <To_DTS> (the recipient mailbox)');
  if (!ctl.workflowId) throw new InputError('CTL_INVALID', 'control file has no <WorkflowId>');
  if (ctl.messageType && ctl.messageType.toLowerCase() !== 'data') {
    throw new InputError('CTL_INVALID', `control file <MessageType> is "${ctl.messageType}"; only Data can be sent`);
  }
}

function esc(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const yn = (b: boolean | undefined) => (b === undefined ? undefined : b ? 'Y' : 'N');

/** Serialises a control file in the Java client's element order. */
export function formatControlFile(ctl: ControlFile): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<DTSControl>'];
  const el = (name: string, value: string | undefined) => {
    if (value !== undefined) lines.push(value === '' ? `  <${name}/>` : `  <${name}>${esc(value)}</${name}>`);
  };
  el('Version', ctl.version ?? '1.0');
  el('AddressType', ctl.addressType ?? 'DTS');
  el('MessageType', ctl.messageType ?? 'Data');
  el('From_DTS', ctl.fromDts ?? '');
  el('To_DTS', ctl.toDts ?? '');
  el('Subject', ctl.subject);
  el('LocalId', ctl.localId);
  el('DTSId', ctl.dtsId);
  el('PartnerId', ctl.partnerId);
  el('Compress', yn(ctl.compress));
  el('Encrypted', yn(ctl.encrypted));
  el('WorkflowId', ctl.workflowId ?? '');
  el('DataChecksum', ctl.dataChecksum);
  el('IsCompressed', yn(ctl.isCompressed));
  el('AllowChunking', yn(ctl.allowChunking));
  el('FileName', ctl.fileName);
  el('ContentType', ctl.contentType);
  for (const r of ctl.statusRecords) {
    lines.push('  <StatusRecord>');
    lines.push(`    <DateTime>${esc(r.dateTime)}</DateTime>`);
    lines.push(`    <Event>${esc(r.event)}</Event>`);
    lines.push(`    <Status>${esc(r.status)}</Status>`);
    lines.push(`    <StatusCode>${esc(r.statusCode)}</StatusCode>`);
    lines.push(`    <Description>${esc(r.description)}</Description>`);
    lines.push('  </StatusRecord>');
  }
  lines.push('</DTSControl>', '');
  return lines.join('\n');
}

/** yyyyMMddHHmmss in UTC, the .ctl DateTime form. */
export function ctlDateTime(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
