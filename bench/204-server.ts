// The floor for Dovecot's synchronous webhook call: a bare Node HTTP server answering 204.
import { createServer } from 'node:http';

createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.statusCode = req.url === '/health' ? 200 : 204;
    res.end();
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
