/** Who the message claims to be from, against where replies and bounces go and which brand the name claims. */

export const domainOf = (address: string | undefined): string | undefined => {
  const at = address?.lastIndexOf('@') ?? -1;
  return at >= 0 ? address!.slice(at + 1).toLowerCase().replace(/[>\s]+$/, '') : undefined;
};

/** The registrable part, roughly: the last two labels (three for a two-letter second level like co.uk). */
export function baseDomain(domain: string): string {
  const labels = domain.toLowerCase().split('.').filter(Boolean);
  const n = labels.length >= 3 && labels[labels.length - 2]!.length <= 3 && labels[labels.length - 1]!.length === 2 ? 3 : 2;
  return labels.slice(-n).join('.');
}

export interface SenderSignals {
  /** Reply-To's domain differs from From's. */
  replyToMismatch: boolean;
  /** Return-Path's (envelope sender) domain differs from From's. */
  returnPathMismatch: boolean;
  /** The display name claims a brand whose domains the sender's is not one of. */
  brandImpersonation?: string;
}

/** Brands phishers impersonate most, with the domains they really send from. */
export const BRANDS: Record<string, string[]> = {
  PayPal: ['paypal.com', 'paypal.de', 'paypal.co.uk'],
  Amazon: ['amazon.com', 'amazon.de', 'amazon.co.uk', 'amazonses.com', 'amazon.fr'],
  Apple: ['apple.com', 'icloud.com'],
  Microsoft: ['microsoft.com', 'outlook.com', 'office.com', 'office365.com', 'live.com', 'microsoftonline.com'],
  Google: ['google.com', 'gmail.com', 'youtube.com'],
  Netflix: ['netflix.com'],
  DHL: ['dhl.com', 'dhl.de'],
  FedEx: ['fedex.com'],
  UPS: ['ups.com'],
  DocuSign: ['docusign.com', 'docusign.net'],
  Facebook: ['facebook.com', 'facebookmail.com', 'meta.com'],
  Instagram: ['instagram.com', 'facebookmail.com'],
  LinkedIn: ['linkedin.com'],
  Dropbox: ['dropbox.com'],
  'Wells Fargo': ['wellsfargo.com'],
  'Bank of America': ['bankofamerica.com', 'bofa.com'],
  Chase: ['chase.com', 'jpmorgan.com'],
  eBay: ['ebay.com', 'ebay.de', 'ebay.co.uk'],
  Coinbase: ['coinbase.com'],
  Adobe: ['adobe.com'],
};

const BRAND_PATTERNS = Object.entries(BRANDS).map(([brand, domains]) => ({
  brand,
  domains: domains.map(baseDomain),
  pattern: new RegExp(`(^|[^a-z])${brand.toLowerCase().replace(/ /g, '\\s*')}([^a-z]|$)`, 'i'),
}));

export function senderSignals(from: { address?: string; name?: string } | undefined, replyTo?: string, returnPath?: string): SenderSignals {
  const fromDomain = domainOf(from?.address);
  const differs = (other: string | undefined) => {
    const d = domainOf(other);
    return Boolean(fromDomain && d && baseDomain(d) !== baseDomain(fromDomain));
  };
  const out: SenderSignals = { replyToMismatch: differs(replyTo), returnPathMismatch: differs(returnPath) };
  const name = from?.name ?? '';
  if (fromDomain && name) {
    const sender = baseDomain(fromDomain);
    const claimed = BRAND_PATTERNS.find((b) => b.pattern.test(name));
    if (claimed && !claimed.domains.includes(sender)) out.brandImpersonation = claimed.brand;
  }
  return out;
}
