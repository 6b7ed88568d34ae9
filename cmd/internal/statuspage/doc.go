// Package statuspage serves the supervisor's state on the metrics port:
// GET / is a page for a person to leave open on a screen, GET /status.json
// the state as `lancelot status --json` prints it.
//
// Model. Both read one value, the supervisor's Status, on every request:
// the page holds no state of its own and changes nothing. The page
// refreshes itself every refreshSeconds with a meta refresh, runs no
// script and loads nothing else (its style is inline), so it works from a
// terminal's browser, behind a strict proxy and with JavaScript off.
//
// Invariants: whatever the page prints goes through html/template's
// contextual escaping (addresses, paths and versions come from the
// configuration and from the workers); the JSON is the same struct, with
// the same encoding, as the admin socket's status command.
package statuspage
