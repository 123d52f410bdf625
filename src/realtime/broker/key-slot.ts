/**
 * The Redis Cluster slot of a key or sharded channel (CRC16/XMODEM of the key,
 * or of its hash tag, modulo 16384), as Redis computes it (cluster spec, "Keys
 * distribution model"). The sharded broker uses it to know which master serves
 * a channel; presence uses hash tags to keep keys that change together in one
 * slot.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    // A tag counts only when it is not empty: "{}" hashes the whole key.
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
