//! The view that the mount presents: a platform-neutral filesystem core over the portable store
//! and the upper layer, plus the thin FUSE adapter. Built out by the view issue; so far it holds
//! the placement of other machines' projects on this machine.

pub mod placement;
