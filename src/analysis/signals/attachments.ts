/** Attachments that can run code or hide it from a scanner, by kind; names are not kept. */

export type RiskyKind = 'executable' | 'script' | 'disk_image' | 'html' | 'macro_document' | 'encrypted_archive';

const BY_EXTENSION: Record<string, RiskyKind> = {
  ...Object.fromEntries(['exe', 'scr', 'com', 'pif', 'msi', 'msix', 'dll', 'cpl', 'jar', 'apk', 'app', 'bin', 'reg', 'lnk'].map((e) => [e, 'executable'])),
  ...Object.fromEntries(['js', 'jse', 'vbs', 'vbe', 'wsf', 'wsh', 'ps1', 'bat', 'cmd', 'hta', 'sh', 'py', 'scf'].map((e) => [e, 'script'])),
  ...Object.fromEntries(['iso', 'img', 'vhd', 'vhdx', 'dmg'].map((e) => [e, 'disk_image'])),
  ...Object.fromEntries(['htm', 'html', 'shtml', 'xhtml', 'svg'].map((e) => [e, 'html'])),
  ...Object.fromEntries(['docm', 'dotm', 'xlsm', 'xltm', 'xlam', 'pptm', 'potm', 'ppam', 'sldm', 'xlsb'].map((e) => [e, 'macro_document'])),
} as Record<string, RiskyKind>;

const BY_TYPE: [RegExp, RiskyKind][] = [
  [/^application\/(x-msdownload|x-msdos-program|x-executable|vnd\.microsoft\.portable-executable|java-archive)$/, 'executable'],
  [/^application\/(javascript|x-javascript|x-sh|x-bat|hta)$/, 'script'],
  [/^application\/(x-iso9660-image|x-apple-diskimage)$/, 'disk_image'],
  [/^text\/html$/, 'html'],
  [/macroenabled/i, 'macro_document'],
];

export function riskyAttachments(attachments: { filename?: string; contentType: string; encrypted?: boolean }[]): Partial<Record<RiskyKind, number>> {
  const out: Partial<Record<RiskyKind, number>> = {};
  for (const a of attachments) {
    // A double extension (invoice.pdf.exe) is judged by its last one.
    const ext = a.filename?.toLowerCase().match(/\.([a-z0-9]{1,5})\s*$/)?.[1];
    const kind: RiskyKind | undefined = a.encrypted
      ? 'encrypted_archive'
      : (ext ? BY_EXTENSION[ext] : undefined) ?? BY_TYPE.find(([re]) => re.test(a.contentType.toLowerCase()))?.[1];
    // An HTML attachment without a name is an HTML body part mailparser listed, not an attachment.
    if (kind && !(kind === 'html' && !a.filename)) out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}
