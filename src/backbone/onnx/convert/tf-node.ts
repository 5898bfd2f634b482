/** TF GraphDef nodes as tfjs's model.json stores them, and reading their attributes. */
import { UnsupportedOpError } from './common.js';
import type { Pad2 } from './builder.js';

type TfAttr = { s?: string; i?: string | number; f?: number; b?: boolean; list?: { i?: (string | number)[]; s?: string[]; f?: number[] } };
export type TfNode = { name: string; op: string; input?: string[]; attr?: Record<string, TfAttr> };

/** A node input reference without the control-dependency '^' and the ':output' suffix (rules.ts). */
export { cleanInput as clean } from '../../rules.js';
/** String attributes are base64 in model.json. */
export const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

export const unsupportedNode = (n: TfNode, detail?: string) => new UnsupportedOpError('node', n.name, n.op, detail);

export const ints = (n: TfNode, key: string, dflt: number[]) => (n.attr?.[key]?.list?.i ?? dflt).map(Number);
export const str = (n: TfNode, key: string) => b64(n.attr?.[key]?.s);

/** The converter maps NHWC axes to NCHW; an NCHW TF op would need the other mapping. */
export function checkFormat(n: TfNode): void {
  const fmt = str(n, 'data_format');
  if (fmt && fmt !== 'NHWC') throw unsupportedNode(n, `data_format ${fmt}`);
}

export function padOf(n: TfNode): Pad2 {
  const p = str(n, 'padding');
  if (p === 'SAME') return { kind: 'same' };
  if (p === 'VALID') return { kind: 'valid' };
  if (p === 'EXPLICIT') {
    const e = ints(n, 'explicit_paddings', []); // NHWC pairs
    return { kind: 'explicit', pads: [e[2], e[4], e[3], e[5]] };
  }
  throw unsupportedNode(n, `padding ${p}`);
}
