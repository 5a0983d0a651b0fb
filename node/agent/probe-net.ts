#!/usr/bin/env node
// One http or tcp probe from inside a pod's network namespace, for a pod that has no address the
// node can reach (loopback only, before a network plugin gives it one). The agent runs it as
// `nsenter --net=<the pod's netns> -- node probe-net.js tcp|http PORT PATH TIMEOUT_MS` and reads
// one line: `ok <detail>` or `fail <detail>`; the exit status says the same (0 / 1).
import { request } from 'node:http';
import { connect } from 'node:net';

function done(ok: boolean, detail: string): never {
  process.stdout.write(`${ok ? 'ok' : 'fail'} ${detail.replace(/\s+/g, ' ').slice(0, 512)}\n`);
  process.exit(ok ? 0 : 1);
}

const [type, portS, path, timeoutS] = process.argv.slice(2);
const port = Number(portS);
const timeout = Number(timeoutS) || 1000;
setTimeout(() => done(false, `no answer within ${timeout} ms`), timeout).unref();
if (type === 'tcp') {
  const s = connect({ host: '127.0.0.1', port }, () => {
    s.destroy();
    done(true, `connected to port ${port}`);
  });
  s.on('error', (e) => done(false, `tcp port ${port}: ${e.message}`));
} else if (type === 'http') {
  const r = request({ host: '127.0.0.1', port, path: path || '/', method: 'GET', headers: { 'user-agent': 'shoal-probe/1' } }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      if (body.length < 512) body += c;
    });
    res.on('end', () => {
      const code = res.statusCode ?? 0;
      // As Kubernetes: 200 <= code < 400 is a success.
      done(code >= 200 && code < 400, `HTTP ${code}${code >= 400 ? `: ${body}` : ''}`);
    });
  });
  r.on('error', (e) => done(false, `http GET :${port}${path}: ${e.message}`));
  r.end();
} else {
  done(false, `unknown probe type ${type}`);
}
