// The DHT topic a cluster's managers announce on for one join token:
//
//   topic = HMAC-SHA256(key = the token's secret, message = "shoal dht topic v1\n" + CA digest)
//
// (the secret and the digest exactly as the token spells them, base 36). Only a holder of the
// token can compute it: the secret is 128 random bits, and HMAC does not reveal its key, so a
// stranger who sees the topic on the DHT learns neither the secret nor the CA digest. Worker and
// manager tokens have different secrets, hence different topics; rotating a token changes its
// topic. The label makes the topic useless as anything but a shoal DHT topic.
import { createHmac } from 'node:crypto';
import { parseToken } from '../../manager/ca/tokens.js';

export const TOPIC_LABEL = 'shoal dht topic v1\n';

/** The 32-byte Hyperswarm topic of a join token (throws BadTokenError on a malformed token). */
export function dhtTopic(token: string): Buffer {
  const t = parseToken(token);
  return createHmac('sha256', t.secret).update(TOPIC_LABEL + t.digest).digest();
}

/** A short, safe name for a topic in logs (its first bytes; the topic itself is not secret). */
export function topicLabel(topic: Buffer): string {
  return topic.subarray(0, 6).toString('hex');
}
