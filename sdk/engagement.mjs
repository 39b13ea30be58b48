// The SDK as an ES module: runs engagement.js (which sets
// globalThis.Engagement) and exports what it made.
import "./engagement.js";

const Engagement = globalThis.Engagement;
export default Engagement;
export const attach = Engagement.attach;
export const version = Engagement.version;
