import { pack, type Header } from 'tar-stream';

export type Member = { header: Partial<Header> & { name: string }; body?: Buffer };

/** A tar archive made by the library's pack side (headers exactly as given: links, devices, odd names). */
export async function tarOf(members: readonly Member[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const m of members) {
    await new Promise<void>((resolve, reject) => p.entry(m.header, m.body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  await ended;
  return Buffer.concat(chunks);
}
