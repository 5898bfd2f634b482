/**
 * Options that contradict each other or mean nothing alone (the table's conflicts / needs /
 * atLeast, src/core/options.ts), checked once for the command line (flags) and the library (keys).
 * Only options the caller set are checked: a default never contradicts anything.
 */
import { OptionConflictError } from './invalid.js';
import { flagName, type NameStyle, type OptionDef } from './options.js';

export interface GivenOptions {
  /** The checked value of every option the caller may use (defaults included), by table key. */
  readonly values: ReadonlyMap<string, unknown>;
  /** Keys the caller set (the command line: given on it; the library: present and not undefined). */
  readonly given: ReadonlySet<string>;
}

/** How an option and its value read to whoever passed it: `--pool gem`, `--no-resize`; `pool 'gem'`. */
export function said(def: OptionDef, value: unknown, style: NameStyle): string {
  const text = Array.isArray(value) ? value.join(',') : String(value);
  if (style === 'library') return `${def.key} ${typeof value === 'string' ? `'${value}'` : Array.isArray(value) ? `[${text}]` : text}`;
  if (def.type === 'boolean') return flagName(def);
  return `${flagName(def)} ${text}`;
}

const name = (def: OptionDef, style: NameStyle) => (style === 'cli' ? flagName(def) : def.key);

/** Throws on the first relation the given options break, naming both options and their values. */
export function checkRelations(defs: readonly OptionDef[], o: GivenOptions, style: NameStyle): void {
  const byKey = new Map(defs.map((d) => [d.key, d]));
  for (const def of defs) {
    if (!o.given.has(def.key)) continue;
    const value = o.values.get(def.key);
    const self = said(def, value, style);
    const applies = (r: { when?: readonly unknown[] }) => !r.when || r.when.includes(value);
    for (const r of def.conflicts ?? []) {
      const other = byKey.get(r.key);
      if (!other || !applies(r) || !matches(other, r.values, o)) continue;
      // Values only where they matter: `--size 448 and --no-resize`, but `--boxes and --grid`.
      const mine = r.values || r.when ? self : name(def, style);
      const theirs = r.values ? said(other, o.values.get(r.key), style) : name(other, style);
      throw new OptionConflictError(`${mine} and ${theirs} contradict each other: ${r.why ?? 'pick one'}`);
    }
    for (const r of def.needs ?? []) {
      const other = byKey.get(r.key);
      if (!other || !applies(r) || matches(other, r.values, o)) continue;
      const called = name(other, style);
      const wanted = r.values ? r.values.map((v) => said(other, v, style)).join(' or ') : called;
      const now = r.values ? ` (${said(other, o.values.get(r.key), style).replace(called, `${called} is`)}${o.given.has(r.key) ? '' : ', the default'})` : '';
      throw new OptionConflictError(`${self} applies to ${wanted} only${now}${r.why ? `: ${r.why}` : ''}`);
    }
    const floor = def.atLeast ? byKey.get(def.atLeast) : undefined;
    const bound = floor && o.given.has(floor.key) ? o.values.get(floor.key) : undefined;
    if (floor && typeof value === 'number' && typeof bound === 'number' && value < bound) {
      throw new OptionConflictError(`${self} is below ${said(floor, bound, style)}: raise ${name(def, style)} or lower ${name(floor, style)}`);
    }
  }
}

/** Whether `other` is in the state a relation names: one of `values` (its default counts), or set at all. */
function matches(other: OptionDef, values: readonly unknown[] | undefined, o: GivenOptions): boolean {
  if (!values) return o.given.has(other.key);
  return values.includes(o.values.get(other.key));
}
