import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * Trusted documents (persisted operations): documents registered ahead of
 * time, which clients name by id instead of sending their text (README,
 * "Trusted documents"). An id is `sha256:` and the hex SHA-256 of the exact
 * text, so a manifest cannot lie about what an id runs. The SDK's own
 * operations are always registered (src/generated/trusted-documents.ts, from
 * `npm run generate`); TRUSTED_DOCUMENTS adds manifests of other clients;
 * TRUSTED_DOCUMENTS_ONLY refuses any other text.
 */
export class TrustedDocuments {
  private readonly byId = new Map<string, string>();
  private readonly texts = new Set<string>();

  constructor(readonly only = false) {}

  static idOf(text: string): string {
    return `sha256:${createHash('sha256').update(text).digest('hex')}`;
  }

  /** Registers a manifest (`{ "sha256:<hex>": "<document text>" }`); throws on an id that is not its text's hash. */
  add(manifest: Record<string, unknown>, from: string): void {
    for (const [id, text] of Object.entries(manifest)) {
      if (typeof text !== 'string' || TrustedDocuments.idOf(text) !== normalizeId(id)) {
        throw new Error(`${from}: ${id} is not the sha256 of its document`);
      }
      this.byId.set(normalizeId(id)!, text);
      this.texts.add(text);
    }
  }

  async addFile(file: string): Promise<void> {
    this.add(JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>, file);
  }

  /** The text of a registered id (`sha256:<hex>`, or the bare hex as Apollo's persisted queries send it). */
  get(id: string): string | undefined {
    const normalized = normalizeId(id);
    return normalized ? this.byId.get(normalized) : undefined;
  }

  /** Whether this exact text is registered (a client may send a trusted document's text instead of its id). */
  has(text: string): boolean {
    return this.texts.has(text);
  }

  get size(): number {
    return this.byId.size;
  }
}

const HEX = /^[0-9a-f]{64}$/;

function normalizeId(id: string): string | undefined {
  const hex = id.startsWith('sha256:') ? id.slice(7) : id;
  return HEX.test(hex) ? `sha256:${hex}` : undefined;
}
