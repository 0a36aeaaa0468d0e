import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** An LMTP client session (nodemailer's, in LMTP mode), as Postfix would deliver to Dovecot. */
export class LmtpClient {
  private conn: SMTPConnection;
  private constructor(conn: SMTPConnection) {
    this.conn = conn;
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<LmtpClient> {
    const conn = new SMTPConnection({ port, host, lmtp: true, ignoreTLS: true, name: 'mx.test' });
    await new Promise<void>((res, rej) => {
      conn.once('error', rej);
      conn.connect(() => {
        conn.removeListener('error', rej);
        res();
      });
    });
    // A connection the server drops (Dovecot restarted) fails the next deliver(); it must not also
    // surface as an unhandled 'error' event.
    conn.on('error', () => {});
    return new LmtpClient(conn);
  }

  /** Delivers one message; resolves with the per-recipient LMTP replies, rejects if any failed. */
  async deliver(raw: string | Buffer, to: string[], from = 'sender@example.net'): Promise<void> {
    const info = await new Promise<any>((res, rej) =>
      this.conn.send({ from, to }, raw, (err, info) => (err ? rej(err) : res(info))),
    );
    if (info.rejected?.length) throw new Error(`LMTP rejected ${info.rejected.join(', ')}`);
  }

  close() {
    this.conn.quit();
  }
}

export async function deliver(port: number, raw: string | Buffer, to: string[], host = '127.0.0.1'): Promise<void> {
  const c = await LmtpClient.connect(port, host);
  try {
    await c.deliver(raw, to);
  } finally {
    c.close();
  }
}
