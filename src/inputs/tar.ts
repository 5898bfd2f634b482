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
  failure?: InputFailure;
  member?: TarMemberRef;
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
}

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
  private it?: AsyncIterator<Readable & { header: { name: string; size?: number } }>;
  private at = -1;
  private chain: Promise<unknown> = Promise.resolve();
  /** The last image member listed: the archive is closed once it is read. */
  lastOrdinal = -1;

  constructor(readonly path: string) {}

  /** The member's bytes; reads are queued so they go through the archive once, in order. */
  read(ref: TarMemberRef, label: string): Promise<Buffer> {
    const p = this.chain.then(() => this.readNow(ref, label));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async readNow({ ordinal, size, name: headerName }: TarMemberRef, name: string): Promise<Buffer> {
    // An earlier member (the run after a --pca-dim sample): read the archive again from its start.
    if (ordinal <= this.at) this.close();
    if (!this.it) {
      const { ex, source } = open(this.path);
      this.ex = ex;
      this.source = source;
      this.it = (ex as unknown as AsyncIterable<Readable & { header: { name: string; size?: number } }>)[Symbol.asyncIterator]();
    }
    try {
      for (;;) {
        const next = await this.it.next();
        if (next.done) throw new TarReadError('truncated', `${name}: the archive ends before this member (changed since it was listed)`);
        const entry = next.value;
        this.at++;
        if (this.at < ordinal) {
          for await (const _ of entry);
          continue;
        }
        if (entry.header.name !== headerName || entry.header.size !== size) {
          throw new TarReadError('unreadable', `${name}: the archive changed since it was listed`);
        }
        const body = Buffer.allocUnsafe(size);
        let filled = 0;
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          if (filled + chunk.length > size) throw new TarReadError('unreadable', `${name}: the archive changed since it was listed (member grew)`);
          chunk.copy(body, filled);
          filled += chunk.length;
        }
        if (filled !== size) throw new TarReadError('truncated', `${name}: the archive ends inside this member`);
        if (this.at >= this.lastOrdinal) this.close();
        return body;
      }
    } catch (err) {
      this.close();
      if (err instanceof TarReadError) throw err;
      throw new TarReadError('truncated', `${name}: ${(err as Error).message}`);
    }
  }

  /** Frees the file and the parser (after the last member, or when the run stops). */
  close(): void {
    this.ex?.destroy();
    this.source?.destroy();
    this.ex = undefined;
    this.source = undefined;
    this.it = undefined;
    this.at = -1;
  }
}

/**
 * Lists an archive's image members in archive order, reading headers only (bodies are read through
 * and dropped; a gzip archive is decompressed as it streams). Returns one input per regular member
 * whose name has one of `exts` (hidden names skipped, as in folder walks; other members skipped).
 * Recorded as failures, never read: a link member with an image extension (links are not followed),
 * a member over maxMemberBytes. An archive cut short or with a damaged header: the member cut short
 * is a 'truncated' failure, and so is the rest of the archive (one entry named after the archive).
 * More than maxMembers members: TarTooManyMembersError.
 */
export async function listTar(archive: string, exts: ReadonlySet<string>, limits: TarLimits = {}): Promise<TarInput[]> {
  const maxBytes = limits.maxMemberBytes ?? TAR_MEMBER_MAX_BYTES;
  const maxMembers = limits.maxMembers ?? TAR_MAX_MEMBERS;
  const reader = new TarArchive(archive);
  const out: TarInput[] = [];
  const member = (name: string, extra: Partial<TarInput>): TarInput => {
    const { path, pathBytes } = pathOfBytes(Buffer.concat([Buffer.from(archive, 'utf8'), Buffer.from('#'), Buffer.from(name, 'latin1')]));
    return { path, ...(pathBytes ? { pathBytes } : {}), source: 'tar', ...extra };
  };
  const failure = (reason: InputFailure['reason'], error: string): { failure: InputFailure } => ({ failure: { reason, error } });
  const { ex, source } = open(archive);
  let ordinal = -1;
  let inBody: { name: string; entry?: TarInput } | undefined;
  let previous: string | undefined;
  try {
    for await (const entry of ex as unknown as AsyncIterable<Readable & { header: { name: string; size?: number; type?: string | null; linkname?: string | null } }>) {
      ordinal++;
      if (ordinal >= maxMembers) throw new TarTooManyMembersError(archive, maxMembers);
      const { name, size = 0, type, linkname } = entry.header;
      const image = exts.has(extOf(name)) && !hidden(name);
      let listed: TarInput | undefined;
      if (image && (type === 'file' || type === 'contiguous-file')) {
        listed = size > maxBytes
          ? member(name, failure('too-large', `member of ${size} bytes; members over ${maxBytes} bytes are not read`))
          : member(name, { member: { archive: reader, ordinal, name, size, key: textOf(webDatasetKey(name)) } });
      } else if (image && (type === 'symlink' || type === 'link')) {
        listed = member(name, failure('unreadable', `a ${type === 'link' ? 'hard' : 'symbolic'} link member (to '${textOf(linkname ?? '')}'): links in archives are not followed`));
      }
      if (listed) out.push(listed);
      inBody = { name, entry: listed };
      const hash = limits.hash && listed?.member ? createHash('sha256') : undefined;
      for await (const chunk of entry) hash?.update(chunk as Buffer);
      if (hash) listed!.member!.sha256 = hash.digest('hex');
      inBody = undefined;
      previous = name;
    }
  } catch (err) {
    if (err instanceof TarTooManyMembersError) throw err;
    const why = (err as Error).message ?? String(err);
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && ordinal < 0 && inBody === undefined) {
      // The archive itself could not be opened or read (EACCES, EISDIR…).
      out.push({ path: archive, source: 'tar', ...failure('unreadable', `cannot read archive: ${why}`) });
      return out;
    }
    if (inBody?.entry && !inBody.entry.failure) {
      delete (inBody.entry as { member?: TarMemberRef }).member;
      Object.assign(inBody.entry, failure('truncated', `the archive ends inside this member (${why})`));
    }
    const after = inBody ? `inside member '${textOf(inBody.name)}'` : ordinal < 0 ? 'before its first member' : `after member '${textOf(previous ?? '')}'`;
    const what = /end of data|unexpected end/i.test(why) ? 'truncated' : 'corrupt';
    out.push({ path: archive, source: 'tar', ...failure(what, `archive ${what === 'truncated' ? 'cut short' : 'damaged'} ${after}: anything after it is lost (${why})`) });
  } finally {
    ex.destroy();
    source.destroy();
  }
  for (let i = out.length - 1; i >= 0; i--) {
    const m = out[i]!.member;
    if (m) {
      reader.lastOrdinal = m.ordinal;
      break;
    }
  }
  return out;
}
