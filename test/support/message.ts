/** A small RFC 5322 message for delivery in tests: the same headers every time, a body and extra headers as given. */
export function testMessage(id: string, to: string, subject: string, body: string, extra: string[] = []): string {
  return [
    'From: Sender <sender@example.net>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}@example.net>`,
    'Date: Sat, 21 Nov 2026 10:00:00 +0000',
    ...extra,
    '',
    body,
    '',
  ].join('\r\n');
}
