// Sends track/identify/page/alias/group with the official @segment/analytics-node client to a
// local junctiond. Usage: node analytics_node_e2e.mjs PORT WRITE_KEY (run from the folder where
// the package was installed). Exits non-zero if the SDK reports an error.
import { Analytics } from '@segment/analytics-node';

const [port, writeKey] = process.argv.slice(2);
const analytics = new Analytics({ writeKey, host: `http://127.0.0.1:${port}`, flushAt: 5, maxRetries: 1 });
let failed = false;
analytics.on('error', (err) => {
  failed = true;
  console.error('analytics-node error:', err?.code ?? '', err?.reason ?? err);
});

analytics.identify({ userId: 'node-user-1', traits: { email: 'node@example.com', plan: 'pro' } });
analytics.track({ userId: 'node-user-1', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } });
analytics.page({ userId: 'node-user-1', name: 'Pricing', properties: { url: 'https://example.com/pricing' } });
analytics.alias({ userId: 'node-user-1', previousId: 'anon-42' });
analytics.group({ userId: 'node-user-1', groupId: 'acme', traits: { plan: 'enterprise' } });

await analytics.closeAndFlush({ timeout: 20000 });
if (failed) {
  process.exit(1);
}
console.log('sent 5 events');
