/**
 * Tar shards (WebDataset) as inputs, streamed, never unpacked to disk. Two passes over each archive:
 * a listing pass reads the headers (bodies are read through and dropped) so the run knows its
 * inputs before it starts (the header's `inputs`, shards, resume); the run then reads the archive
 * again in order, holding one member's bytes at a time per decode in flight.
 * Member names are only names: an absolute or `..` name is never a path, and nothing is written.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { extract, type Extract } from 'tar-stream';
import { pathOfBytes } from '../core/path-text.js';
import { MAX_JSON_DEPTH, nestedTooDeep } from '../core/json-depth.js';
import { sidecarIdentity } from '../core/json-identity.js';

/** A member larger than this is a recorded 'too-large' failure, read through without being held. */
export const TAR_MEMBER_MAX_BYTES = 256 * 2 ** 20;
/** Members (of any type) one archive may hold: a tar bomb of empty entries must not make the list unbounded. */
export const TAR_MAX_MEMBERS = 1_000_000;

/** `.tar`, or gzip-compressed `.tar.gz` / `.tgz` (decompressed as it streams). */
export const isTarPath = (p: string): boolean => /\.(tar|tar\.gz|tgz)$/i.test(p);
const isGzip = (p: string) => /\.(tar\.gz|tgz)$/i.test(p);

export interface TarLimits {
  maxMemberBytes?: number;
  maxMembers?: number;
  /** Hash image members' bodies as they stream by (--resume, --update compare them with the stored rows'). */
  hash?: boolean;
}
/** keepJson: each image member's ref says where its sample's `key.json` is (--keep-json). */
export interface TarListOptions extends TarLimits { keepJson?: boolean }

/** The sidecar identity of an image whose sidecar the listing could not read through: equal to no stored one. */
export const UNREAD_SIDECAR = '!unread';

/** A sidecar larger than this is not read: the image's record has no `json`, and a warning says why. */
export const TAR_SIDECAR_MAX_BYTES = 2 ** 20;
/**
 * Image members of one sample that lie between an image and its sidecar (key.jpg, key.png, key.json)
 * are held while the reader goes on to the sidecar; past this many bytes of them, those images get no `json`.
 */
export const TAR_SIDECAR_HOLD_BYTES = 64 * 2 ** 20;
/** Sidecars nested deeper are not kept: a record line holding one must stay within what readers parse (core/json-depth.ts). */
const SIDECAR_MAX_DEPTH = MAX_JSON_DEPTH - 4;

/** An archive with more members than TAR_MAX_MEMBERS: refused before anything is written. */
export class TarTooManyMembersError extends Error {
  constructor(archive: string, max: number) {
    super(`${archive}: more than ${max} members in one archive; nothing written (split it into shards of fewer members)`);
    this.name = 'TarTooManyMembersError';
  }
}

/** What the listing gives for a member (an InputEntry of expand.ts; declared here so neither module imports the other). */
export interface TarInput {
  path: string;
  pathBytes?: Buffer;
  source: 'tar';
  /** The archive as given: a member's failure goes to the same --shard task as the rest of its archive. */
  archive: string;
  failure?: InputFailure;
  member?: TarMemberRef;
  /**
   * With --keep-json, a member the listing records as a failure (a link, one too large) whose sample
   * has a sidecar: where it is, so that its failure record keeps the sidecar too. Never read itself.
   */
  sample?: TarMemberRef;
}
type InputFailure = { readonly reason: 'unreadable' | 'truncated' | 'corrupt' | 'too-large'; readonly error: string };

/** Where an image member is: its archive, its position among all the archive's members, its size, its WebDataset key. */
export interface TarMemberRef {
  readonly archive: TarArchive;
  readonly ordinal: number;
  /** The header's name, one char per byte (latin1). */
  readonly name: string;
  readonly size: number;
  readonly key: string;
  /** SHA-256 of the member's bytes, when the listing was asked to hash (TarLimits.hash). */
  sha256?: string;
  /**
   * Hashing with --keep-json: the identity (core/json-identity.ts) of the `json` a run records for
   * it now; undefined when it records none; UNREAD_SIDECAR when its sidecar could not be read.
   */
  jsonSha256?: string;
  /** With --keep-json, when its sample has a `key.json`: where it is, or why it is not read. */
  readonly sidecar?: SidecarRef;
}

/**
 * A sample's `key.json`: its position and size, and the listed image members between the image and
 * it (held on the way to it); or why the image gets none (`problem`, said as a warning).
 */
export type SidecarRef = SidecarAt | { readonly problem: string };
type SidecarAt = { readonly ordinal: number; readonly name: string; readonly size: number; readonly hold: readonly number[] };

/** An image member's bytes, with its sidecar's object or why it has none (--keep-json). */
export interface TarSample { bytes: Buffer; json?: { readonly [field: string]: unknown }; warning?: string }
type SidecarResult = Omit<TarSample, 'bytes'>;
type Entry = Readable & { header: { name: string; size?: number } };

/** A member read in the run that is not as listed (the archive changed or is cut short): the member's failure. */
export class TarReadError extends Error {
  constructor(readonly reason: 'truncated' | 'unreadable', message: string) {
    super(message);
    this.name = 'TarReadError';
  }
}

function open(archive: string): { source: Readable; ex: Extract } {
  // latin1: one char per byte, so a name that is not UTF-8 keeps its bytes (escaped by pathOfBytes).
  const ex = extract({ filenameEncoding: 'latin1' } as never);
  const file = createReadStream(archive);
  const source: Readable = isGzip(archive) ? file.pipe(createGunzip()) : file;
  const fail = (err: Error) => ex.destroy(err);
  file.on('error', fail);
  if (source !== file) source.on('error', fail);
  source.pipe(ex as unknown as NodeJS.WritableStream);
  return { source: file, ex };
}

/** WebDataset's key: the name up to the first dot of its last component (`a/b.seg.png` → `a/b`). */
export function webDatasetKey(name: string): string {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  return dot < 0 ? name : name.slice(0, dot);
}

const textOf = (latin1: string) => pathOfBytes(Buffer.from(latin1, 'latin1')).path;
const hidden = (name: string) => name.slice(name.lastIndexOf('/') + 1).startsWith('.');
const extOf = (name: string) => {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot).toLowerCase();
};

/** One sequential reader of an archive for the run: members are asked for in archive order. */
export class TarArchive {
  private ex?: Extract;
  private source?: Readable;
  private it?: AsyncIterator<Entry>;
  private at = -1;
  private chain: Promise<unknown> = Promise.resolve();
  /** Image members read on the way to a sidecar after an earlier image of their sample, by ordinal. */
  private held = new Map<number, { name: string; bytes: Buffer }>();
  /** The last sidecar read: the images of one sample share it. */
  private sidecar?: { ordinal: number; result: SidecarResult };
  /** The last image member listed: the archive is closed once it is read. */
  lastOrdinal = -1;

  constructor(readonly path: string) {}

  /**
   * The member's bytes and, when its ref names one, its sample's sidecar (which may lie after it);
   * reads are queued so they go through the archive once, in order.
   */
  readSample(ref: TarMemberRef, label: string): Promise<TarSample> {
    return this.queue(() => this.readNow(ref, label, true));
  }

  /** Only the sidecar of a member the listing recorded as a failure (TarInput.sample): the member itself is read through. */
  async readSidecar(ref: TarMemberRef, label: string): Promise<Omit<TarSample, 'bytes'>> {
    const { bytes: _, ...sidecar } = await this.queue(() => this.readNow(ref, label, false));
    return sidecar;
  }

  private queue<T>(read: () => Promise<T>): Promise<T> {
    const p = this.chain.then(read);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async readNow(ref: TarMemberRef, name: string, withBody: boolean): Promise<TarSample> {
    try {
      for (const o of this.held.keys()) if (o < ref.ordinal) this.held.delete(o);
      const held = this.held.get(ref.ordinal);
      this.held.delete(ref.ordinal);
      let bytes: Buffer = Buffer.alloc(0);
      if (held && held.name === ref.name && held.bytes.length === ref.size) {
        bytes = held.bytes;
      } else {
        const entry = await this.seek(ref.ordinal, name, ref.sidecar);
        if (entry.header.name !== ref.name || (entry.header.size ?? 0) !== ref.size) {
          throw new TarReadError('unreadable', `${name}: the archive changed since it was listed`);
        }
        if (withBody) bytes = await body(entry, ref.size, name);
        else for await (const _ of entry);
      }
      const sample: TarSample = { bytes, ...(ref.sidecar ? await this.sidecarOf(ref.sidecar) : {}) };
      // Past the last image, unless images held on the way to a sidecar are still to be asked for.
      if (this.at >= this.lastOrdinal && this.held.size === 0) this.close();
      return sample;
    } catch (err) {
      this.close();
      if (err instanceof TarReadError) throw err;
      throw new TarReadError('truncated', `${name}: ${(err as Error).message}`);
    }
  }

  /** The member at `ordinal`, its body unread; a sidecar passed on the way is read, other members are read through. */
  private async seek(ordinal: number, name: string, sidecar?: SidecarRef): Promise<Entry> {
    // An earlier member (the run after a --pca-dim sample): read the archive again from its start.
    if (ordinal <= this.at) this.close();
    if (!this.it) {
      const { ex, source } = open(this.path);
      this.ex = ex;
      this.source = source;
      this.it = (ex as unknown as AsyncIterable<Entry>)[Symbol.asyncIterator]();
    }
    for (;;) {
      const next = await this.it.next();
      if (next.done) throw new TarReadError('truncated', `${name}: the archive ends before this member (changed since it was listed)`);
      this.at++;
      if (this.at === ordinal) return next.value;
      if (sidecar && 'ordinal' in sidecar && this.at === sidecar.ordinal) await this.take(next.value, sidecar);
      else for await (const _ of next.value);
    }
  }

  /** An image's sidecar: read already (before it, or for an earlier image of its sample), or read now. */
  private async sidecarOf(sidecar: SidecarRef): Promise<SidecarResult> {
    if (!('ordinal' in sidecar)) return { warning: sidecar.problem };
    if (this.sidecar?.ordinal === sidecar.ordinal) return this.sidecar.result;
    const label = `${this.path}#${textOf(sidecar.name)}`;
    if (sidecar.ordinal <= this.at) {
      // Before the image, but not on the way here (the read started past it): read the archive again up to it.
      await this.take(await this.seek(sidecar.ordinal, label), sidecar);
    } else {
      // After the image: read on, holding this sample's other images met on the way.
      const hold = new Set(sidecar.hold);
      for (;;) {
        const next = await this.it!.next();
        if (next.done) throw new TarReadError('truncated', `${label}: the archive ends before this member (changed since it was listed)`);
        this.at++;
        const entry = next.value;
        if (this.at === sidecar.ordinal) {
          await this.take(entry, sidecar);
          break;
        }
        if (hold.has(this.at)) this.held.set(this.at, { name: entry.header.name, bytes: await body(entry, entry.header.size ?? 0, label) });
        else for await (const _ of entry);
      }
    }
    return this.sidecar!.result;
  }

  /** Reads a sidecar member and keeps what it gives (its object, or why not) for the images of its sample. */
  private async take(entry: Entry, sidecar: SidecarAt): Promise<void> {
    const label = `${this.path}#${textOf(sidecar.name)}`;
    if (entry.header.name !== sidecar.name || entry.header.size !== sidecar.size) {
      throw new TarReadError('unreadable', `${label}: the archive changed since it was listed`);
    }
    let result: SidecarResult;
    if (sidecar.size > TAR_SIDECAR_MAX_BYTES) {
      for await (const _ of entry);
      result = { warning: `${label}: ${sidecar.size} bytes, over the ${TAR_SIDECAR_MAX_BYTES} bytes --keep-json reads; not kept` };
    } else {
      result = parseSidecar(await body(entry, sidecar.size, label), label);
    }
    this.sidecar = { ordinal: sidecar.ordinal, result };
  }

  /** Frees the file and the parser (after the last member, or when the run stops). */
  close(): void {
    this.ex?.destroy();
    this.source?.destroy();
    this.ex = undefined;
    this.source = undefined;
    this.it = undefined;
    this.at = -1;
    this.held.clear();
    this.sidecar = undefined;
  }
}

/** A member's body, exactly `size` bytes. */
async function body(entry: Entry, size: number, name: string): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const chunk of entry as AsyncIterable<Buffer>) {
    if (filled + chunk.length > size) throw new TarReadError('unreadable', `${name}: the archive changed since it was listed (member grew)`);
    chunk.copy(bytes, filled);
    filled += chunk.length;
  }
  if (filled !== size) throw new TarReadError('truncated', `${name}: the archive ends inside this member`);
  return bytes;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A sidecar's object, or why it is not kept: WebDataset and img2dataset write one JSON object per sample. */
function parseSidecar(bytes: Buffer, label: string): SidecarResult {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    const why = err instanceof TypeError ? 'not UTF-8 text' : `not JSON (${(err as Error).message})`;
    return { warning: `${label}: ${why}; not kept` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { warning: `${label}: ${value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`}, not a JSON object; not kept` };
  }
  if (nestedTooDeep(value, SIDECAR_MAX_DEPTH)) return { warning: `${label}: nested more than ${SIDECAR_MAX_DEPTH} levels deep; not kept` };
  return { json: value as TarSample['json'] };
}

/**
 * Lists an archive's image members in archive order, reading headers only (bodies are read through
 * and dropped; a gzip archive is decompressed as it streams). Returns one input per regular member
 * whose name has one of `exts` (hidden names skipped, as in folder walks; other members skipped).
 * Recorded as failures, never read: a link member with an image extension (links are not followed),
 * a member over maxMemberBytes. An archive cut short or with a damaged header: the member cut short
 * is a 'truncated' failure, and so is the rest of the archive (one entry named after the archive).
 * More than maxMembers members: TarTooManyMembersError.
 * keepJson: each image member's ref also says where its sample's `key.json` is (sampleGroups).
 */
export async function listTar(archive: string, exts: ReadonlySet<string>, limits: TarListOptions = {}): Promise<TarInput[]> {
  const maxBytes = limits.maxMemberBytes ?? TAR_MEMBER_MAX_BYTES;
  const maxMembers = limits.maxMembers ?? TAR_MAX_MEMBERS;
  const reader = new TarArchive(archive);
  const out: TarInput[] = [];
  const member = (name: string, extra: Partial<TarInput>): TarInput => {
    const { path, pathBytes } = pathOfBytes(Buffer.concat([Buffer.from(archive, 'utf8'), Buffer.from('#'), Buffer.from(name, 'latin1')]));
    return { path, ...(pathBytes ? { pathBytes } : {}), source: 'tar', archive, ...extra };
  };
  const failure = (reason: InputFailure['reason'], error: string): { failure: InputFailure } => ({ failure: { reason, error } });
  const { ex, source } = open(archive);
  let ordinal = -1;
  let inBody: { name: string; entry?: TarInput } | undefined;
  let previous: string | undefined;
  const samples = limits.keepJson ? sampleGroups(archive) : undefined;
  try {
    for await (const entry of ex as unknown as AsyncIterable<Readable & { header: { name: string; size?: number; type?: string | null; linkname?: string | null } }>) {
      ordinal++;
      if (ordinal >= maxMembers) throw new TarTooManyMembersError(archive, maxMembers);
      const { name, size = 0, type, linkname } = entry.header;
      const image = exts.has(extOf(name)) && !hidden(name);
      let listed: TarInput | undefined;
      const ref = (): TarMemberRef => ({ archive: reader, ordinal, name, size, key: textOf(webDatasetKey(name)) });
      if (image && (type === 'file' || type === 'contiguous-file')) {
        listed = size > maxBytes
          ? member(name, { ...failure('too-large', `member of ${size} bytes; members over ${maxBytes} bytes are not read`), ...(samples ? { sample: ref() } : {}) })
          : member(name, { member: ref() });
      } else if (image && (type === 'symlink' || type === 'link')) {
        listed = member(name, {
          ...failure('unreadable', `a ${type === 'link' ? 'hard' : 'symbolic'} link member (to '${textOf(linkname ?? '')}'): links in archives are not followed`),
          ...(samples ? { sample: ref() } : {}),
        });
      }
      if (listed) out.push(listed);
      const isSidecar = samples?.add(ordinal, name, size, type === 'file' || type === 'contiguous-file', listed?.member ?? listed?.sample, listed?.member !== undefined);
      inBody = { name, entry: listed };
      const hash = limits.hash && listed?.member ? createHash('sha256') : undefined;
      // --update --keep-json: a sidecar is read as a run reads it, to compare what its images' records would hold.
      const sidecarBytes = limits.hash && isSidecar && size <= TAR_SIDECAR_MAX_BYTES ? Buffer.allocUnsafe(size) : undefined;
      let filled = 0;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        hash?.update(chunk);
        if (sidecarBytes && filled + chunk.length <= size) chunk.copy(sidecarBytes, filled);
        filled += chunk.length;
      }
      if (hash) listed!.member!.sha256 = hash.digest('hex');
      if (isSidecar && limits.hash) {
        samples!.identify(sidecarBytes && filled === size ? sidecarIdentity(parseSidecar(sidecarBytes, name).json) : sidecarBytes ? UNREAD_SIDECAR : undefined);
      }
      inBody = undefined;
      previous = name;
    }
  } catch (err) {
    if (err instanceof TarTooManyMembersError) throw err;
    const why = (err as Error).message ?? String(err);
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && ordinal < 0 && inBody === undefined) {
      // The archive itself could not be opened or read (EACCES, EISDIR…).
      out.push({ path: archive, source: 'tar', archive, ...failure('unreadable', `cannot read archive: ${why}`) });
      return out;
    }
    if (inBody?.entry && !inBody.entry.failure) {
      delete (inBody.entry as { member?: TarMemberRef }).member;
      delete inBody.entry.sample;
      Object.assign(inBody.entry, failure('truncated', `the archive ends inside this member (${why})`));
    }
    const after = inBody ? `inside member '${textOf(inBody.name)}'` : ordinal < 0 ? 'before its first member' : `after member '${textOf(previous ?? '')}'`;
    const what = /end of data|unexpected end/i.test(why) ? 'truncated' : 'corrupt';
    out.push({ path: archive, source: 'tar', archive, ...failure(what, `archive ${what === 'truncated' ? 'cut short' : 'damaged'} ${after}: anything after it is lost (${why})`) });
  } finally {
    ex.destroy();
    source.destroy();
  }
  samples?.end();
  for (const e of out) if (e.sample && !e.sample.sidecar) delete e.sample;
  for (let i = out.length - 1; i >= 0; i--) {
    const m = out[i]!.member ?? out[i]!.sample;
    if (m) {
      reader.lastOrdinal = m.ordinal;
      break;
    }
  }
  return out;
}

/** Image members held on the way to their sample's sidecar: at most this many (and TAR_SIDECAR_HOLD_BYTES). */
const SIDECAR_HOLD_MEMBERS = 1024;

/**
 * A sample is a run of consecutive members with one WebDataset key, as WebDataset reads them
 * (img2dataset writes key.jpg, key.txt, key.json; either order): its images get its `key.json`
 * (the first, if it has two), however many images share the key. Members of a key elsewhere in the
 * archive are another sample. Only ordinals and sizes are kept, never a sidecar's bytes.
 */
function sampleGroups(archive: string) {
  let key: string | undefined;
  let images: { ref: TarMemberRef; holdable: boolean }[] = [];
  let sidecar: { ordinal: number; name: string; size: number } | undefined;
  // The sidecar's identity once the listing has read it (hashing only); unread until then.
  let identity: string | undefined = UNREAD_SIDECAR;
  const end = () => {
    if (sidecar && images.length > 0) {
      const sc = sidecar;
      // Failures of the listing (links, members too large) are never held: their bodies are not read.
      const before = images.filter((m) => m.ref.ordinal < sc.ordinal && m.holdable).map((m) => m.ref);
      const held = before.slice(1).reduce((n, m) => n + m.size, 0);
      const hold = before.map((m) => m.ordinal);
      const tooMany = before.length - 1 > SIDECAR_HOLD_MEMBERS || held > TAR_SIDECAR_HOLD_BYTES;
      const problem = `${archive}#${textOf(sc.name)}: ${before.length} images of its sample (${held} bytes) come before it, more than --keep-json holds while it reads on; not kept for them`;
      for (const { ref: m } of images) {
        (m as { sidecar?: SidecarRef }).sidecar = m.ordinal > sc.ordinal ? { ...sc, hold: [] } : tooMany ? { problem } : { ...sc, hold };
        if (m.sha256 !== undefined && 'ordinal' in m.sidecar!) m.jsonSha256 = identity;
      }
    }
    key = undefined;
    images = [];
    sidecar = undefined;
    identity = UNREAD_SIDECAR;
  };
  return {
    /** Whether the member is its sample's sidecar. */
    add(ordinal: number, name: string, size: number, regular: boolean, image: TarMemberRef | undefined, holdable: boolean): boolean {
      const k = webDatasetKey(name);
      if (k !== key) end();
      key = k;
      if (image) images.push({ ref: image, holdable });
      else if (regular && sidecar === undefined && name.slice(k.length).toLowerCase() === '.json') {
        sidecar = { ordinal, name, size };
        return true;
      }
      return false;
    },
    /** The sample's sidecar, as the listing read it: the identity of the `json` it gives (undefined: none). */
    identify(id: string | undefined): void {
      identity = id;
    },
    end,
  };
}
