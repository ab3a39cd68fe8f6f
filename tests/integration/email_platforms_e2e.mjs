// Sends identify and track events for PEOPLE people with the official @segment/analytics-node
// client to a local junctiond, as a shop's backend would: each person identifies with an email
// and a name, then abandons a cart. Usage: node email_platforms_e2e.mjs PORT WRITE_KEY WAVE PEOPLE
// (run from the folder where the package was installed). Exits non-zero if the SDK reports an
// error.
import { Analytics } from '@segment/analytics-node';

const [port, writeKey, wave, people] = process.argv.slice(2);
const analytics = new Analytics({ writeKey, host: `http://127.0.0.1:${port}`, flushAt: 20, maxRetries: 1 });
let failed = false;
analytics.on('error', (err) => {
  failed = true;
  console.error('analytics-node error:', err?.code ?? '', err?.reason ?? err);
});

for (let i = 0; i < Number(people); i++) {
  const userId = `w${wave}-user-${i}`;
  analytics.identify({
    userId,
    messageId: `w${wave}-identify-${i}`,
    traits: { email: `W${wave}.Person${i}@Example.com`, first_name: `Ada${i}`, last_name: 'Lovelace', plan: 'pro' },
  });
  analytics.track({
    userId,
    messageId: `w${wave}-track-${i}`,
    event: 'Cart Abandoned',
    properties: { cart_id: `cart-${wave}-${i}`, value: 42.5 + i, currency: 'EUR' },
    context: { traits: { email: `W${wave}.Person${i}@Example.com` } },
  });
}

await analytics.closeAndFlush({ timeout: 30000 });
if (failed) {
  process.exit(1);
}
console.log(`sent ${2 * Number(people)} events`);
