//! The view: what the mount shows at `~/.claude/projects`. A platform-neutral filesystem core
//! ([`core::Fs`]) over this machine's upper layer and the other machines' files in the store,
//! and a thin FUSE adapter ([`fuse`]) that only translates calls and errors.
//!
//! - [`placement`]: where another machine's project appears on this machine.
//! - [`foreign`]: every file other machines provide, placed and resolved.
//! - [`cache`]: the disk cache of their files expanded to this machine's paths.
//! - [`satellites`]: the session files outside `projects/` and the prompt history, mirrored.
//! - [`requester`]: the checkout a process calling into the mount works in.
//! - [`upper`]: the real directory underneath the mount, reached through a directory fd.
//! - [`winfsp`]: the Windows adapter over the same core.

pub mod cache;
pub mod core;
pub mod error;
pub mod foreign;
#[cfg(unix)]
pub mod fuse;
pub mod placement;
pub mod places;
pub mod requester;
pub mod satellites;
pub mod upper;
pub mod winfsp;

pub use error::{FsError, FsResult};
