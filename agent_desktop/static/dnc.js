// The do-not-call list (免打扰名单, issue 14 §1) in the supervisor console: the numbers the
// outbound engine never dials, with reason, who and when (number_list.js); the engine reads
// the list at its next tick.
import { numberListPanel } from "./number_list.js";

export function dncPanel() {
  return numberListPanel({ id: "dnc", url: "/api/outbound/dnc", text: "dnc" });
}
