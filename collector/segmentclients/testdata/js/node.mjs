// node.mjs: sends every Segment call type with @segment/analytics-node,
// unchanged, to the collector named by SEGMENT_URL (its documented `host`
// setting). For collector/segmentclients: the Go test checks the rows.
// Exits non-zero when the library reports an error.
import { Analytics } from "@segment/analytics-node";

const { SEGMENT_URL, WRITE_KEY, RUN } = process.env;
const analytics = new Analytics({ writeKey: WRITE_KEY, host: SEGMENT_URL, flushAt: 10, flushInterval: 200, maxRetries: 3 });
const errors = [];
analytics.on("error", (e) => errors.push(e));

const userId = `node-user-${RUN}`;
const anonymousId = `node-anon-${RUN}`;
analytics.track({ userId, anonymousId, event: "Settings Changed", properties: { setting: "theme", value: "dark" }, context: { locale: "fr-FR" } });
analytics.page({ userId, anonymousId, name: "Create", properties: { url: "https://app.example.com/create" } });
analytics.screen({ userId, anonymousId, name: "Editor" });
analytics.identify({ userId, anonymousId, traits: { plan: "pro" } });
analytics.group({ userId, anonymousId, groupId: `node-org-${RUN}`, traits: { name: "Acme" } });
analytics.alias({ userId, previousId: anonymousId });
await analytics.closeAndFlush({ timeout: 20000 });

if (errors.length) {
  console.error("@segment/analytics-node reported:", errors);
  process.exit(1);
}
console.log("sent 6 calls");
