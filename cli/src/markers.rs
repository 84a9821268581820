//! The files ferry's hooks leave in a session's directory (`<session id>/`), synced like any
//! file: read by `ferry sessions` and `ferry handoff` on every machine.

/// Left when the session's Claude Code ended (SessionEnd): a session without one newer than
/// its transcript was left open.
pub const ENDED: &str = "ferry-ended.json";

/// Where the session's checkout stood at its last Stop (its git state), inside
/// `<session id>/`: synced like any file, so a brief on another machine can say it.
pub const CHECKOUT: &str = "ferry-checkout.json";
