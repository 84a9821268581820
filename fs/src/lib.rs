//! The view that the mount presents: a platform-neutral filesystem core over the portable store
//! and the upper layer, plus the thin FUSE adapter. Built out by the view issue; for now it only
//! re-exports the codec so that the dependency direction (`fs` over `sync`) is fixed.

/// The codec the view uses to expand other machines' files on read.
pub use ferry_sync::codec;
