// The DHT topic of a join token and shoald's DHT flags: what only a token holder can compute, and
// every bad flag value with the error the user sees.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { BadTokenError, makeToken, newSecret, parseToken } from '../../manager/ca/tokens.js';
import { DhtConfigError, NO_PUBLIC_DHT_ENV, parseBootstrapList, parseDhtFlag, publicBootstrap, resolveDht } from './config.js';
import { TOPIC_LABEL, dhtTopic, topicLabel } from './topic.js';

const bundle = '-----BEGIN CERTIFICATE-----\nnot parsed: only hashed\n-----END CERTIFICATE-----\n';

t.test('the topic is HMAC-SHA256 keyed by the secret over the label and the CA digest', async (t) => {
  const token = makeToken(bundle, newSecret());
  const { digest, secret } = parseToken(token);
  const topic = dhtTopic(token);
  t.equal(topic.length, 32, 'a 32-byte Hyperswarm topic');
  t.same(topic, createHmac('sha256', secret).update(TOPIC_LABEL + digest).digest(), 'as node/discovery/README.md documents it');
  t.same(dhtTopic(` ${token}\n`), topic, 'the same token (as read from a file) gives the same topic');
  t.notSame(dhtTopic(makeToken(bundle, newSecret())), topic, 'another secret (a wrong or rotated token): another topic');
  t.notSame(dhtTopic(makeToken(bundle + 'x', secret)), topic, 'the same secret for another CA: another topic');
  t.notOk(topic.toString('hex').includes(Buffer.from(digest).toString('hex')), 'the topic does not carry the digest');
  t.equal(topicLabel(topic), topic.subarray(0, 6).toString('hex'));
});

t.test('a malformed token has no topic', async (t) => {
  t.throws(() => dhtTopic('SHL-1-abc'), BadTokenError);
  t.throws(() => dhtTopic('hello'), /malformed/);
});

t.test('--dht-bootstrap: host:port lists, each bad entry named', async (t) => {
  t.same(parseBootstrapList('10.99.0.3:49737'), ['10.99.0.3:49737']);
  t.same(parseBootstrapList(' 127.0.0.1:1 , dht.example:49737'), ['127.0.0.1:1', 'dht.example:49737']);
  const bad: [string, RegExp][] = [
    ['', /is empty/],
    ['127.0.0.1:1,', /empty entry/],
    ['127.0.0.1', /is not host:port/],
    ['127.0.0.1:0', /port must be 1-65535/],
    ['127.0.0.1:70000', /port must be 1-65535/],
    ['[::1]:49737', /IPv6 addresses are not supported/],
    ['::1:49737', /IPv6/],
    ['300.1.1.1:1', /not an IPv4 address/],
    ['a b:1', /not host:port/],
  ];
  for (const [v, re] of bad) t.throws(() => parseBootstrapList(v), re, JSON.stringify(v));
  t.throws(() => parseBootstrapList(''), DhtConfigError);
});

t.test('--dht and the public default', async (t) => {
  t.equal(parseDhtFlag('false'), false);
  t.equal(parseDhtFlag('true'), true);
  t.throws(() => parseDhtFlag('off'), /--dht must be true or false, got off/);
  t.same(resolveDht({ enabled: false, env: {} }), {}, '--dht=false: no DHT');
  t.same(resolveDht({ enabled: true, bootstrap: '127.0.0.1:5', env: { [NO_PUBLIC_DHT_ENV]: '1' } }), { dht: { bootstrap: ['127.0.0.1:5'], public: false } }, 'an explicit bootstrap list is used even where public nodes are refused');
  const refused = resolveDht({ enabled: true, env: { [NO_PUBLIC_DHT_ENV]: '1' } });
  t.equal(refused.dht, undefined, `${NO_PUBLIC_DHT_ENV}=1: the public nodes are refused, the DHT is off`);
  t.match(refused.warning, /refusing Hyperswarm's public bootstrap nodes/);
  const pub = resolveDht({ enabled: true, env: {} });
  t.equal(pub.dht?.public, true, 'default: the public bootstrap nodes (this only computes the list, it sends nothing)');
  t.same(pub.dht?.bootstrap, publicBootstrap());
  t.ok(publicBootstrap().length > 0);
});
