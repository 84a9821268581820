//! ferry's portable store: everything that turns one machine's session files into a form every
//! other machine can use, with no filesystem in sight.
//!
//! - [`codec`]: virtualise a machine's absolute paths into placeholders and expand them again.
//! - [`slug`]: Claude Code's directory name for a working directory.
//! - [`project_key`]: the portable name of a project, the same on every machine.
//! - [`path_style`]: another machine's paths handled as strings, whatever OS spelled them.

pub mod clock;
pub mod codec;
pub mod crypt;
pub mod engine;
pub mod merge;
mod parallel;
pub mod path_style;
pub mod project_key;
pub mod remote_url;
pub mod satellite;
pub mod secrets;
pub mod slug;
pub mod store;
pub mod upper;
pub mod view;
pub mod wrapped;
