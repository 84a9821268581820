//! The peer comparison (issue 7): the corpus every tool moves, the two machines, the tools
//! (ferry, commuter, claude-hop) behind one interface, what a run costs and what it got right.

pub mod corpus;
pub mod cost;
pub mod fidelity;
pub mod tools;
pub mod world;
