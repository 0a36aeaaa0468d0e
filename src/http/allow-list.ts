import { BlockList, isIP } from 'node:net';

/**
 * Addresses and networks (PUSH_ALLOW_FROM: `127.0.0.1, 172.22.1.0/24, ::1`). An address is
 * compared as the socket reports it; an IPv4 client on a dual-stack listener (`::ffff:1.2.3.4`)
 * is compared as IPv4.
 */
export class AllowList {
  private constructor(
    private readonly list: BlockList,
    readonly entries: string[],
  ) {}

  /** Parses the entries; throws with every entry that is not an address or a CIDR. */
  static parse(entries: string[]): AllowList {
    const list = new BlockList();
    const bad: string[] = [];
    for (const entry of entries) {
      const [address, bits, extra] = entry.split('/');
      const family = isIP(address ?? '');
      const max = family === 4 ? 32 : 128;
      if (!family || extra !== undefined || (bits !== undefined && !/^\d{1,3}$/.test(bits)) || Number(bits ?? max) > max) {
        bad.push(entry);
        continue;
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) list.addAddress(address!, type);
      else list.addSubnet(address!, Number(bits), type);
    }
    if (bad.length) throw new Error(`not an IP address or CIDR: ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
    return new AllowList(list, entries);
  }

  allows(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return this.list.check(mapped[1]!, 'ipv4');
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}
