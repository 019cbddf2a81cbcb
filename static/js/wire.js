// The frame wire format, read side (pattern_lab/runs/wire.py writes it): a
// frame is one websocket message, its header as one line of JSON, then the
// HTML fragments htmx swaps by id.  A message without that first line (an
// error shown to this socket) is not a frame: parseHead returns null.
export function parseHead(message) {
  if (typeof message !== "string" || message.charCodeAt(0) !== 123 /* { */) return null;
  const end = message.indexOf("\n");
  if (end < 0) return null;
  try {
    const head = JSON.parse(message.slice(0, end));
    return head && typeof head === "object" && !Array.isArray(head) ? head : null;
  } catch (err) {
    return null;
  }
}
