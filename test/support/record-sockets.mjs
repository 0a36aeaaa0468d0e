// Preloaded into a mailsight process under test (node --import): records every outbound connection
// the process starts (TCP, TLS, Unix-domain) and every UDP datagram, one line each, to
// MAILSIGHT_SOCKET_LOG. It wraps net.Socket's connect, which every client goes through
// (net.connect, http, undici's fetch, tls, postgres.js's own sockets), so nothing slips past.
import dgram from 'node:dgram';
import { appendFileSync } from 'node:fs';
import net from 'node:net';

const file = process.env.MAILSIGHT_SOCKET_LOG;
const record = (line) => appendFileSync(file, `${line}\n`);

function target(args) {
  let [first, second] = args;
  if (Array.isArray(first)) [first] = first; // internal normalized form: [options, callback]
  if (first && typeof first === 'object') {
    if (first.path) return `unix ${first.path}`;
    return `connect ${first.host ?? 'localhost'}:${first.port}`;
  }
  if (typeof first === 'string' && Number.isNaN(Number(first))) return `unix ${first}`;
  return `connect ${typeof second === 'string' ? second : 'localhost'}:${first}`;
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  record(target(args));
  return connect.apply(this, args);
};

const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function (...args) {
  // send(msg, [offset, length,] port, address, cb): the message comes first and is not an address.
  const rest = args.slice(1);
  const port = rest.filter((a) => typeof a === 'number').at(-1);
  record(`udp ${rest.find((a) => typeof a === 'string') ?? this.remoteAddress?.()?.address ?? '?'}:${port ?? '?'}`);
  return send.apply(this, args);
};
