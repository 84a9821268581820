//! The WinFsp adapter (Windows): the same core as the FUSE adapter, mounted at
//! `%USERPROFILE%\.claude\projects` with the upper layer kept apart (see `ferry_platform::relocate`).
//!
//! The adapter needs the `winfsp` crate, which is GPL-3.0, so it is built only with this crate's
//! `winfsp` feature; [`translate`] has no Windows dependency and is tested everywhere.

pub mod translate;

#[cfg(all(windows, feature = "winfsp-adapter"))]
mod adapter;
#[cfg(all(windows, feature = "winfsp-adapter"))]
pub use adapter::{Adapter, Handle, Mounted, mount};
