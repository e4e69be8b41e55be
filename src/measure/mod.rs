//! Figures about models rather than data: `cae bench`'s throughput and latency ([`bench`]),
//! and `cae compare`'s size, cost and speed of the lecture's classifiers ([`compare`]).

pub mod bench;
pub mod compare;
