//! Building blocks of the peer comparison (issue 7): the corpus every tool moves, and what a
//! tool's run costs.

pub mod corpus;
pub mod cost;
