import { createHash } from 'node:crypto';

/**
 * A kept sidecar's identity (--update --keep-json): SHA-256 of JSON.stringify of its object, the
 * text a record holds. Parsed from the sidecar or from a stored record, the same object gives the
 * same text, so equal identities mean a fresh run would record the same `json`.
 */
export function sidecarIdentity(json: unknown): string | undefined {
  return json === undefined ? undefined : createHash('sha256').update(JSON.stringify(json)).digest('hex');
}

/** An input's identity with its kept sidecar's: the image's bytes and what its record's `json` is. */
export function withSidecar(sha256: string | undefined, json: string | undefined): string | undefined {
  return sha256 === undefined || json === undefined ? sha256 : `${sha256}+json:${json}`;
}
